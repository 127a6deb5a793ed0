"""A synthetic personal library with known facts, for `ondevice rag bench --library N` and the tests.

`write_library(root, n)` writes `n` files in the mix of a real personal folder: Markdown notes (40%), plain-text
notes (20%), code (20%), PDFs (10%, two pages) and DOCX documents (10%). Their prose is sentences from the English
documentation that ships with CPython (`pydoc_data.topics`), so chunks have real lengths and real word statistics;
each file also carries one planted fact about a uniquely named subject ("the locker code for Amber Heron 100482
is 7316"), at a random place in the file. The returned `Fact`s hold the question to ask, the expected answer and the
file; the tests check that every one of them is retrieved.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

ADJECTIVES = ("amber azure brisk cedar coral dusky ember fern gilded hazel indigo jade kestrel linen maple "
              "misty noble ochre pewter quartz russet sable tawny umber velvet willow").split()
NOUNS = ("heron otter falcon lynx badger marten plover wren finch osprey stoat raven egret vole ibis "
         "petrel curlew dunlin gannet shrike").split()

# (statement, question, answer) templates; {s} is the subject's name, {v} the value.
TEMPLATES = [
    ("The locker code for {s} is {v}.", "What is the locker code for {s}?", "{v}"),
    ("Booking reference for the {s} trip: {v}.", "What is the booking reference of the {s} trip?", "{v}"),
    ("The warranty on the {s} dishwasher runs until {v}.", "Until when is the {s} dishwasher under warranty?",
     "{v}"),
    ("{s} invoice was paid on {v}, by bank transfer.", "When was the {s} invoice paid?", "{v}"),
    ("The meeting room for the {s} review is {v}.", "Which room is the {s} review in?", "{v}"),
    ("Support ticket for the {s} printer: {v}.", "What is the ticket number for the {s} printer?", "{v}"),
]
# A subject's number is 100000 + its file's index: six digits or more, so it is never a value (at most five
# digits), a day, a year or a number of the prose, and stays the one token that names a single file at any size
# (subjects share their words every 260 files; numbers from 0 collided with days, years and other facts' codes).
SUBJECT_NUMBER_BASE = 100_000
MONTHS = "January February March April May June July August September October November December".split()


@dataclass
class Fact:
    path: str          # relative to the library root
    question: str
    answer: str


def _sentences() -> list[str]:
    from pydoc_data.topics import topics

    text = " ".join(topics[name] for name in sorted(topics))
    found = [" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", text)]
    return [s for s in found if 40 <= len(s) <= 300 and not s.startswith((">>>", "..."))]


def _value(rng: random.Random, template: int) -> str:
    if template in (2, 3):
        return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(2025, 2030)}"
    if template == 4:
        return f"room {rng.choice('ABCDEFG')}{rng.randint(100, 499)}"
    if template == 1:
        return f"{rng.choice('BKMQRTXZ')}{rng.choice('ABCDEFGH')}-{rng.randint(1000, 9999)}"
    return str(rng.randint(1000, 99999))


def write_library(root: Path, n_files: int, seed: int = 0, paragraphs: tuple[int, int] = (3, 8),
                  names: int = 260) -> list[Fact]:
    """Write `n_files` files under `root` (in 50 folders); return one Fact per file.

    names: how many word pairs the subjects' names cycle through (every pair, 260, by default); fewer makes many
    files of a small library share their subject's words, as every 260th file of a large one does."""
    rng = random.Random(seed)
    sentences = _sentences()
    facts: list[Fact] = []
    root = Path(root)
    for i in range(n_files):
        subject, statement, question, answer = plant(i, rng, names)
        paras = [" ".join(rng.choices(sentences, k=rng.randint(2, 5)))
                 for _ in range(rng.randint(*paragraphs))]
        at = rng.randrange(len(paras))
        paras[at] = f"{paras[at]} {statement}"
        kind = rng.random()
        folder = root / f"folder{i % 50:02d}"
        if kind < 0.4:
            path = folder / f"note{i}.md"
            body = [f"# {subject}"] + [p if j % 3 else f"## Part {j}\n\n{p}" for j, p in enumerate(paras)]
            _write(path, "\n\n".join(body) + "\n")
        elif kind < 0.6:
            path = folder / f"note{i}.txt"
            _write(path, "\n\n".join(paras) + "\n")
        elif kind < 0.8:
            path = folder / f"tool{i}.py"
            _write(path, _code(subject, paras, rng))
        elif kind < 0.9:
            path = folder / f"doc{i}.pdf"
            half = max(1, len(paras) // 2)
            write_pdf(path, [_wrap(" ".join(paras[:half])), _wrap(" ".join(paras[half:]) or subject)])
        else:
            path = folder / f"doc{i}.docx"
            write_docx(path, subject, paras)
        facts.append(Fact(str(path.relative_to(root)), question, answer))
    return facts


def plant(i: int, rng: random.Random, names: int = 260) -> tuple[str, str, str, str]:
    """The fact of file `i`: (subject, statement, question, answer)."""
    # names differ in words, not only in the number, for the first 260 files (as two real projects would)
    pair = i % names
    subject = f"{ADJECTIVES[pair % len(ADJECTIVES)].title()} {NOUNS[pair % len(NOUNS)].title()} " \
              f"{SUBJECT_NUMBER_BASE + i}"
    t = rng.randrange(len(TEMPLATES))
    value = _value(rng, t)
    statement, question, answer = (part.format(s=subject, v=value) for part in TEMPLATES[t])
    return subject, statement, question, answer


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _code(subject: str, paras: list[str], rng: random.Random) -> str:
    name = re.sub(r"\W+", "_", subject.lower())
    lines = [f'"""Helpers for {subject}.', "", *(_wrap(paras[0], 100)), '"""', "", "import os", ""]
    for j, para in enumerate(paras[1:], start=1):
        lines += [f"def {name}_step{j}(value):", '    """' + "\n    ".join(_wrap(para, 96)) + '"""',
                  f"    return value * {rng.randint(2, 9)} + {j}", ""]
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 90) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A valid PDF with one text line per entry on each page (Helvetica, Latin-1), readable by pypdf."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 10 Tf", "12 TL", "50 750 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", errors="replace")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode())
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def write_docx(path: Path, title: str, paragraphs: list[str]) -> Path:
    """A .docx with a heading and paragraphs (python-docx)."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path
