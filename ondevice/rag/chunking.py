"""Pack a document's blocks into chunks that follow its structure, with a little overlap between neighbours.

Rules: a heading starts a new chunk (and is carried as a prefix into the chunks of its section, so a chunk knows
what it is about); a page break starts a new chunk; blocks are packed up to `max_chars`; a block too long on its
own is split at line, then sentence, boundaries; the last block of a full chunk is repeated at the start of the
next when it is short (`overlap_chars`), so a fact that straddles two paragraphs is still found whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ondevice.rag.readers import Block, Document

DEFAULT_MAX_CHARS = 900  # about 200 word-pieces: inside all-MiniLM-L6-v2's 256-token window
DEFAULT_OVERLAP_CHARS = 200


@dataclass
class Chunk:
    """A piece of a document to embed and search, with its source span for citations."""

    text: str
    ordinal: int
    start_line: int | None = None
    end_line: int | None = None
    page: int | None = None
    context: str = ""  # what the embedding sees before the text (the file's title), "" for none

    @property
    def embed_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text

    @property
    def key(self) -> str:
        """Content key: chunks with the same embedded text share one embedding (renames, copies, untouched
        sections)."""
        return hashlib.sha256(self.embed_text.encode()).hexdigest()[:32]


def title_context(path) -> str:
    """A file's folder and name as words ("bike/fit.md" -> "bike fit"): what a chunk is about when its text
    does not say."""
    from pathlib import Path

    path = Path(path)
    words = [path.parent.name, path.stem]
    return " ".join(re.sub(r"[-_.]+", " ", w).strip() for w in words if w).strip()


def chunk_document(document: Document, max_chars: int = DEFAULT_MAX_CHARS,
                   overlap_chars: int = DEFAULT_OVERLAP_CHARS) -> list[Chunk]:
    """Split `document` into chunks of at most about `max_chars` characters."""
    chunks: list[Chunk] = []
    heading = ""
    current: list[Block] = []

    def emit(carry_overlap: bool) -> list[Block]:
        if not current or all(b.heading for b in current):
            return []
        body = "\n\n".join(b.text for b in current)
        prefix = heading if heading and not current[0].heading else ""
        text = f"{prefix}\n\n{body}" if prefix else body
        lines = [n for b in current for n in (b.start_line, b.end_line) if n is not None]
        chunks.append(Chunk(text, len(chunks), min(lines) if lines else None, max(lines) if lines else None,
                            current[0].page))
        last = current[-1]
        return [last] if carry_overlap and not last.heading and len(last.text) <= overlap_chars else []

    for block in _split_long(document.blocks, max_chars):
        if block.heading:
            emit(False)
            heading = block.text.lstrip("#").strip()
            current = [block]
            continue
        new_page = current and block.page != current[-1].page
        size = sum(len(b.text) + 2 for b in current) + len(block.text)
        if new_page:
            emit(False)
            current = []
        elif current and size > max_chars and not all(b.heading for b in current):
            current = emit(True)
        current.append(block)
    emit(False)
    return chunks


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split_long(blocks: list[Block], max_chars: int) -> list[Block]:
    """Blocks longer than max_chars, split by lines (keeping line numbers) or, for one long line, by sentences."""
    out: list[Block] = []
    for block in blocks:
        if len(block.text) <= max_chars:
            out.append(block)
            continue
        lines = block.text.split("\n")
        piece: list[str] = []
        first = block.start_line
        for offset, line in enumerate(lines):
            for part in _split_line(line, max_chars):
                if piece and sum(len(p) + 1 for p in piece) + len(part) > max_chars:
                    line_no = None if block.start_line is None else block.start_line + offset
                    end = None if line_no is None else max(first, line_no - (1 if part is line else 0))
                    out.append(Block("\n".join(piece), first, end, block.page, code=block.code))
                    piece, first = [], line_no
                piece.append(part)
        if piece:
            out.append(Block("\n".join(piece), first, block.end_line, block.page, code=block.code))
    return out


def _split_line(line: str, max_chars: int) -> list[str]:
    if len(line) <= max_chars:
        return [line]
    parts, buf = [], ""
    for sentence in _SENTENCE_END.split(line):
        while len(sentence) > max_chars:  # no sentence breaks at all: hard cut
            parts.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if buf and len(buf) + len(sentence) + 1 > max_chars:
            parts.append(buf)
            buf = ""
        buf = f"{buf} {sentence}".strip()
    if buf:
        parts.append(buf)
    return parts
