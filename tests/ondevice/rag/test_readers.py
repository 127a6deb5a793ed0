"""Readers and chunking: structure, spans for citations, and what gets skipped."""

from __future__ import annotations

from pathlib import Path

from ondevice.rag.chunking import chunk_document
from ondevice.rag.readers import Skipped, iter_files, read_document


def _chunks(path: Path, **kw):
    return chunk_document(read_document(path, path.read_bytes()), **kw)


def test_markdown_chunks_follow_headings_and_keep_line_spans(tmp_path):
    text = ("# Trip\n\nFlights booked.\n\n## Hotel\n\nCheck-in after 3pm.\nRoom 512.\n\n"
            "```python\nprint('code stays whole')\n\nx = 1\n```\n")
    (tmp_path / "t.md").write_text(text)
    chunks = _chunks(tmp_path / "t.md")
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 3), (5, 14)]
    assert chunks[1].text.startswith("Hotel\n\n## Hotel") or chunks[1].text.startswith("## Hotel")
    assert "print('code stays whole')\n\nx = 1" in chunks[1].text


def test_long_text_is_split_with_overlap(tmp_path):
    paragraphs = [f"Paragraph {i} " + "word " * 40 for i in range(12)]
    (tmp_path / "long.txt").write_text("\n\n".join(paragraphs) + "\n")
    chunks = _chunks(tmp_path / "long.txt", max_chars=600, overlap_chars=300)
    assert len(chunks) > 3 and all(len(c.text) <= 900 for c in chunks)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert prev.text.split("\n\n")[-1] == nxt.text.split("\n\n")[0]  # last paragraph repeated
        assert nxt.start_line <= prev.end_line
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 23


def test_rst_html_and_code_have_their_structure(tmp_path):
    (tmp_path / "a.rst").write_text("Title\n=====\n\nBody text.\n\nSection\n-------\n\nMore text.\n")
    rst = _chunks(tmp_path / "a.rst")
    assert [c.text for c in rst] == ["Title\n\nBody text.", "Section\n\nMore text."]
    (tmp_path / "p.html").write_text("<html><head><style>p{}</style></head><body>\n<h1>Notes</h1>\n"
                                     "<p>Alarm code &amp; gate: 2291.</p>\n<script>x()</script></body></html>\n")
    html = _chunks(tmp_path / "p.html")
    assert html[0].text == "Notes\n\nAlarm code & gate: 2291." and "x()" not in html[0].text
    assert (html[0].start_line, html[0].end_line) == (2, 3)
    (tmp_path / "m.py").write_text("import os\n\n\ndef one():\n    return 1\n\n\n@cache\ndef two():\n    return 2\n")
    blocks = read_document(tmp_path / "m.py", (tmp_path / "m.py").read_bytes()).blocks
    assert [(b.start_line, b.end_line) for b in blocks] == [(1, 1), (4, 5), (8, 10)]


def test_hidden_binary_oversized_and_ignored_files_are_skipped(tmp_path):
    root = tmp_path / "docs"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "notes.txt").write_text("hidden folder")
    (root / ".secret.md").write_text("hidden file")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("ignored by .gitignore")
    (root / ".gitignore").write_text("build/\n*.log\n!keep.log\n")
    (root / "debug.log").write_text("ignored")
    (root / "keep.log").write_text("re-included")
    (root / "big.txt").write_text("x" * 5000)
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    (root / "draft.md").write_text("excluded by --exclude")
    (root / "note.md").write_text("kept")
    skipped: list[Skipped] = []
    found = [p.name for p, _ in iter_files([root], exclude=["draft*"], max_bytes=4000, skipped=skipped)]
    assert found == ["keep.log", "note.md"]
    assert [s.path.name for s in skipped] == ["big.txt"]


def test_binary_content_with_a_text_suffix_is_rejected(tmp_path):
    import pytest

    from ondevice.rag.readers import ParseError

    (tmp_path / "x.txt").write_bytes(b"abc\x00\x01\x02" * 50)
    with pytest.raises(ParseError, match="binary"):
        read_document(tmp_path / "x.txt", (tmp_path / "x.txt").read_bytes())
