"""Bytes of a plain-text file -> text: UTF-8 first, then the legacy encoding the file was saved in.

Notes saved by older editors are often Windows-1252 or Latin-1 ("café" as the single byte 0xE9). Decoding those as
UTF-8 either drops the file as binary or fills it with U+FFFD, so a word like "café" can no longer be found. We
decode UTF-8 (and BOM-marked UTF-16/32) ourselves and ask chardet (7.x, 0BSD; its detector tells code pages apart
by language statistics, where charset-normalizer picked cp775 / mac_latin2 for short cp1252 notes here) only when
the bytes are not UTF-8. Real binaries (NUL bytes, no text encoding fits, control characters) stay "binary".
"""

from __future__ import annotations

import codecs

# BOM -> codec, longest first (the UTF-32 LE BOM begins with the UTF-16 LE one).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DETECT_BYTES = 64 * 1024  # enough text for the detector; the whole file is then decoded with its answer
TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")


class BinaryContent(ValueError):
    """The bytes are not text in any encoding we recognise."""


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a plain-text file's bytes; BinaryContent when they are not text."""
    for bom, codec in BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace"), codec
    if b"\x00" in data[:8192]:
        raise BinaryContent("binary content")
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    # UTF-8 with a stray bad byte still has its multi-byte characters intact; a legacy file has none of them.
    if bad == 0 or sum(1 for c in text if c > "\x7f" and c != "\ufffd") > bad:
        encoding = "utf-8"
    else:
        import chardet

        guess = chardet.detect(data[:DETECT_BYTES])
        if not guess.get("encoding"):
            raise BinaryContent("binary content (no text encoding fits)")
        encoding = codecs.lookup(guess["encoding"]).name
        text = data.decode(encoding, errors="replace")
        bad = text.count("\ufffd")
    controls = sum(1 for c in text if c < " " and c not in TEXT_CONTROLS)
    if bad + controls > max(8, len(text) // 100):
        raise BinaryContent(f"binary content (not {encoding} text)")
    return text, encoding
