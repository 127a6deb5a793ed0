"""Real PDF and DOCX files for tests and the example folder: a hand-written minimal PDF, python-docx for DOCX
(both from `ondevice.rag.library`), and broken ones."""

from __future__ import annotations

from pathlib import Path

from ondevice.rag.library import write_docx, write_pdf  # noqa: F401  (the generator's writers, shared)


def write_corrupt_pdf(path: Path) -> Path:
    """Starts like a PDF, then garbage: no objects, no xref."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R\n" + bytes(range(256)) * 4)
    return path


def write_encrypted_docx(path: Path) -> Path:
    """What Word writes for a password-protected .docx: an OLE compound file (not a zip) holding the
    encrypted package. python-docx cannot open it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff" +
                     b"EncryptedPackage".ljust(512, b"\x00"))
    return path
