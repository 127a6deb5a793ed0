"""Find the files worth indexing and turn each into structured blocks (headings, paragraphs, pages, code).

A reader returns a `Document`: a list of `Block`s, each with its text and where it came from (1-based line span,
or page for PDFs; for DOCX the "lines" are paragraph numbers, since a .docx has no lines). Readers raise
`ParseError` for a file they cannot read (corrupt PDF, encrypted DOCX); the indexer lists those and goes on.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Iterator

from ondevice.rag.encoding import BinaryContent, decode_text

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst", ".org", ".log", ".csv", ".tsv"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
CODE_SUFFIXES = {
    ".py", ".pyi", ".js", ".jsx", ".ts", ".tsx", ".go", ".rs", ".c", ".h", ".cc", ".cpp", ".hpp", ".java", ".kt",
    ".swift", ".rb", ".php", ".cs", ".scala", ".sh", ".bash", ".zsh", ".lua", ".sql", ".r", ".jl", ".m", ".toml",
    ".yaml", ".yml", ".ini", ".cfg", ".json", ".css", ".scss", ".vue", ".svelte", ".zig", ".hs", ".ml", ".ex",
}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | CODE_SUFFIXES | {".pdf", ".docx"}


class ParseError(Exception):
    """A file that looked indexable could not be read (corrupt, encrypted, not really that format)."""


@dataclass
class Block:
    """One structural unit of a document. `heading` marks a heading line (it starts a new chunk)."""

    text: str
    start_line: int | None = None
    end_line: int | None = None
    page: int | None = None
    heading: bool = False
    code: bool = False


@dataclass
class Document:
    path: Path
    kind: str  # "text", "markdown", "rst", "html", "pdf", "docx", "code"
    blocks: list[Block] = field(default_factory=list)


# --- finding files ----------------------------------------------------------------------------------------------
class IgnoreRules:
    """`.gitignore`-style rules: `*.log`, `build/`, `/top-only`, `docs/**/draft*`, `!keep.log`.

    Patterns without a slash match any path component's name; with a slash they are anchored at the folder
    that holds the rule (the walk root for `--exclude`). The last matching rule wins, as in git.
    """

    def __init__(self) -> None:
        self._rules: list[tuple[Path, str, bool, bool]] = []  # (base, pattern, negate, dir_only)

    def add(self, base: Path, pattern: str) -> None:
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            return
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if pattern:
            self._rules.append((base, pattern, negate, dir_only))

    def add_file(self, gitignore: Path) -> None:
        try:
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            self.add(gitignore.parent, line)

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict = False
        for base, pattern, negate, dir_only in self._rules:
            if dir_only and not is_dir:
                continue
            try:
                rel = path.relative_to(base).as_posix()
            except ValueError:
                continue
            if "/" in pattern:
                hit = fnmatch.fnmatchcase(rel, pattern.lstrip("/")) or \
                    fnmatch.fnmatchcase(rel, pattern.lstrip("/").replace("**/", ""))
            else:
                hit = fnmatch.fnmatchcase(path.name, pattern)
            if hit:
                verdict = not negate
        return verdict


@dataclass
class Skipped:
    path: Path
    reason: str


def iter_files(paths: Iterable[Path], exclude: Iterable[str] = (), max_bytes: int = DEFAULT_MAX_BYTES,
               skipped: list[Skipped] | None = None) -> Iterator[tuple[Path, Path]]:
    """Yield (file, root) for every indexable file under `paths`, in a stable order.

    Skips hidden files and folders, unsupported suffixes, files over `max_bytes`, and whatever `.gitignore` files
    (found during the walk) or `exclude` globs rule out. Binary files are caught later, when read.
    """
    for path, root, _ in iter_files_stat(paths, exclude, max_bytes, skipped):
        yield path, root


def iter_files_stat(paths: Iterable[Path], exclude: Iterable[str] = (), max_bytes: int = DEFAULT_MAX_BYTES,
                    skipped: list[Skipped] | None = None) -> Iterator[tuple[Path, Path, os.stat_result]]:
    """`iter_files` with each file's `stat` from the walk (the indexer compares it with the index's records, so an
    unchanged file costs one stat)."""
    for root in paths:
        root = Path(root).expanduser().resolve()
        rules = IgnoreRules()
        for pattern in exclude:
            rules.add(root if root.is_dir() else root.parent, pattern)
        if root.is_file():
            st = _wanted(root, max_bytes, skipped)
            if st is not None:
                yield root, root.parent, st
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            if (here / ".gitignore").is_file():
                rules.add_file(here / ".gitignore")
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not rules.ignored(here / d, True))
            for name in sorted(files):
                if name.startswith(".") or os.path.splitext(name)[1].lower() not in SUPPORTED_SUFFIXES:
                    continue  # before building a Path: most of a large folder's cost is per file
                path = here / name
                if rules.ignored(path, False):
                    continue
                st = _wanted(path, max_bytes, skipped)
                if st is not None:
                    yield path, root, st


def _wanted(path: Path, max_bytes: int, skipped: list[Skipped] | None) -> os.stat_result | None:
    """The file's stat when it is to be indexed, else None."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_size > max_bytes:
        if skipped is not None:
            skipped.append(Skipped(path, f"larger than {max_bytes} bytes"))
        return None
    return st


# --- reading ----------------------------------------------------------------------------------------------------
def read_document(path: Path, data: bytes) -> Document:
    """Parse `data` (the bytes of `path`) into blocks. Raises ParseError when the file cannot be read."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return Document(path, "pdf", _pdf_blocks(path, data))
    if suffix == ".docx":
        return Document(path, "docx", _docx_blocks(path, data))
    try:
        text, _ = decode_text(data)  # UTF-8, or the legacy encoding (cp1252, Latin-1, ...) a note was saved in
    except BinaryContent as exc:
        raise ParseError(str(exc)) from None
    if suffix in HTML_SUFFIXES:
        return Document(path, "html", _html_blocks(text))
    if suffix in {".md", ".markdown"}:
        return Document(path, "markdown", _markdown_blocks(text))
    if suffix == ".rst":
        return Document(path, "rst", _rst_blocks(text))
    if suffix in CODE_SUFFIXES:
        return Document(path, "code", _code_blocks(text))
    return Document(path, "text", _paragraph_blocks(text.splitlines()))


def _paragraph_blocks(lines: list[str], first_line: int = 1, page: int | None = None) -> list[Block]:
    """Blank-line separated paragraphs with their 1-based line spans."""
    blocks, start, buf = [], None, []
    for i, line in enumerate(lines + [""], start=first_line):
        if line.strip():
            if start is None:
                start = i
            buf.append(line.rstrip())
        elif buf:
            blocks.append(Block("\n".join(buf), start, i - 1, page))
            start, buf = None, []
    return blocks


_MD_HEADING = re.compile(r"^#{1,6}\s+\S")
_FENCE = re.compile(r"^(```|~~~)")


def _markdown_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    para: list[str] = []
    para_start = 0
    i = 0

    def flush(end: int) -> None:
        nonlocal para
        if para:
            blocks.extend(_paragraph_blocks(para, para_start))
            para = []

    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line.strip()):  # a fenced code block stays whole
            flush(i)
            fence, start = line.strip()[:3], i
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                i += 1
            blocks.append(Block("\n".join(lines[start:i + 1]), start + 1, min(i, len(lines) - 1) + 1, code=True))
        elif _MD_HEADING.match(line):
            flush(i)
            blocks.append(Block(line.strip(), i + 1, i + 1, heading=True))
        else:
            if not para:
                para_start = i + 1
            para.append(line)
        i += 1
    flush(len(lines))
    return blocks


_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


def _rst_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    heading_lines = {i for i in range(1, len(lines))
                     if _RST_UNDERLINE.match(lines[i]) and lines[i - 1].strip()
                     and len(lines[i].strip()) >= len(lines[i - 1].strip())}
    blocks: list[Block] = []
    start = 0
    for h in sorted(heading_lines):
        blocks.extend(_paragraph_blocks(
            [ln for ln in lines[start:h - 1]], start + 1))
        blocks.append(Block(lines[h - 1].strip(), h, h + 1, heading=True))
        start = h + 1
    blocks.extend(_paragraph_blocks(lines[start:], start + 1))
    # over-lines (=== above a title) come out as one-line paragraphs of punctuation: drop them
    return [b for b in blocks if not _RST_UNDERLINE.match(b.text)]


_CODE_START = re.compile(r"^(def |class |async def |function |func |fn |pub |impl |struct |interface |"
                         r"export |const |public |private |static |type |module |package )")


def _code_blocks(text: str) -> list[Block]:
    """Split source at top-level definitions (no indentation); keep each definition with its body."""
    lines = text.splitlines()
    blocks: list[Block] = []
    start = 0
    for i, line in enumerate(lines):
        if i > start and _CODE_START.match(line):
            # leading comments/decorators just above belong to the definition
            cut = i
            while cut > start and lines[cut - 1].strip().startswith(("#", "//", "@", "/*", "*")):
                cut -= 1
            if cut > start:
                blocks.extend(_code_chunk(lines, start, cut))
                start = cut
    blocks.extend(_code_chunk(lines, start, len(lines)))
    return blocks


def _code_chunk(lines: list[str], start: int, end: int) -> list[Block]:
    body = lines[start:end]
    while body and not body[-1].strip():
        body.pop()
    lead = 0
    while lead < len(body) and not body[lead].strip():
        lead += 1
    body = body[lead:]
    if not body:
        return []
    return [Block("\n".join(body), start + lead + 1, start + lead + len(body), code=True)]


class _HTMLText(HTMLParser):
    """Collects text per block-level element, with the source line where it starts."""

    BLOCK = {"p", "div", "li", "pre", "blockquote", "tr", "section", "article", "br", "table", "dd", "dt"}
    HEAD = {"h1", "h2", "h3", "h4", "h5", "h6", "title"}
    SKIP = {"script", "style", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._buf: list[str] = []
        self._start: int | None = None
        self._skip = 0
        self._heading = False

    def _flush(self) -> None:
        text = re.sub(r"[ \t]+", " ", "".join(self._buf)).strip()
        text = re.sub(r"\s*\n\s*", "\n", text)
        if text:
            line = self.getpos()[0]
            self.blocks.append(Block(text, self._start or line, max(line, self._start or line),
                                     heading=self._heading))
        self._buf, self._start, self._heading = [], None, False

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCK or tag in self.HEAD:
            self._flush()
            self._heading = tag in self.HEAD

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCK or tag in self.HEAD:
            self._flush()

    def handle_data(self, data):
        if self._skip or not data.strip():
            if data and not self._skip and self._buf:
                self._buf.append(" ")
            return
        if self._start is None:
            self._start = self.getpos()[0]
        self._buf.append(data)


def _html_blocks(text: str) -> list[Block]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser._flush()
    return parser.blocks


def _pdf_blocks(path: Path, data: bytes) -> list[Block]:
    import io
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns loudly on every odd PDF
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ParseError("encrypted PDF")
        blocks = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            blocks.extend(_paragraph_blocks(text.splitlines(), 1, page=number) or [])
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        raise ParseError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    for block in blocks:  # line numbers inside an extracted page mean little; pages are the citation
        block.start_line = block.end_line = None
    return blocks


def _docx_blocks(path: Path, data: bytes) -> list[Block]:
    import io

    try:
        import docx

        document = docx.Document(io.BytesIO(data))
        paragraphs = [(p.text, (p.style.name if p.style is not None else "") or "") for p in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                paragraphs.append((" | ".join(cell.text for cell in row.cells), ""))
    except Exception as exc:  # zip errors, encrypted (OLE container) files, missing parts
        raise ParseError(f"unreadable DOCX ({type(exc).__name__}: {exc})") from None
    blocks = []
    for number, (text, style) in enumerate(paragraphs, start=1):
        if text.strip():
            blocks.append(Block(text.strip(), number, number, heading=style.lower().startswith(("heading", "title"))))
    return blocks
