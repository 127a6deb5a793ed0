"""Notes saved in a legacy encoding (Windows-1252, Latin-1) are read as the text they are; real binaries are not."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import pytest

from ondevice.rag import Index
from ondevice.rag.encoding import decode_text
from ondevice.rag.readers import ParseError, read_document

DIARY = ("Dear diary,\n\nToday I went to the café and ordered a crème brûlée. It was “great”, and the waiter’s "
         "résumé said he trained in Zürich.\n\nThe weather was fine and the walk home along the river was long.\n")
SPANISH = "Señor Muñoz pagó la cuenta en el café de la esquina. ¿Qué tal la señora Peña? Mañana volvemos.\n"


@pytest.mark.parametrize("text, encoding", [(DIARY, "cp1252"), (SPANISH, "latin-1")])
def test_a_legacy_encoded_note_reads_as_its_text(tmp_path, text, encoding):
    path = tmp_path / "note.txt"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # the premise: these bytes are not UTF-8
    document = read_document(path, path.read_bytes())
    assert "\n\n".join(b.text for b in document.blocks) == text.strip()


def test_utf8_with_one_stray_byte_stays_utf8():
    data = "naïve café, “quoted”, déjà vu — all UTF-8 ".encode() + b"\xff" + b" and one bad byte.\n"
    text, encoding = decode_text(data)
    assert encoding == "utf-8" and "déjà vu" in text and text.count("\ufffd") == 1


def test_utf16_with_a_bom_is_text():
    text, _ = decode_text("Grüße aus München\n".encode("utf-16"))
    assert text == "Grüße aus München\n"


def test_real_binaries_are_still_binary(tmp_path):
    executable = Path(sys.executable).resolve().read_bytes()[:65536]  # an ELF/Mach-O/PE file: NUL bytes
    compressed = zlib.compress(DIARY.encode() * 200, 9).replace(b"\x00", b"")  # no NUL: the detector decides
    for name, data in (("python.txt", executable), ("archive.txt", compressed)):
        with pytest.raises(ParseError, match="binary"):
            read_document(tmp_path / name, data)


def test_rag_index_indexes_a_cp1252_note_and_finds_its_accented_words(tmp_path, embedder):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "diary.txt").write_bytes(DIARY.encode("cp1252"))
    (notes / "photo.txt").write_bytes(Path(sys.executable).resolve().read_bytes()[:4096])
    with Index(tmp_path / "idx.sqlite", embedder=embedder) as index:
        summary = index.add([notes])
        assert summary.added == 1 and [Path(f.path).name for f in summary.failed] == ["photo.txt"]
        assert "binary" in summary.failed[0].reason
        hits = index.search("crème brûlée", k=1, mode="bm25")
    assert hits[0].path.endswith("diary.txt") and "crème brûlée" in hits[0].text
