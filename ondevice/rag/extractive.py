"""Extractive answers: the retrieved sentence that answers the question, quoted verbatim with its file and lines.

A 135M model cannot be trusted to compose an answer from several passages. So:
1. the retrieved chunks are cut into candidate sentences (pysbd, a rule-based sentence splitter that knows
   abbreviations such as "Dr." and "p.m."; list items and "Label: value" lines stand alone; titles are not
   candidates), each read from the file itself with its exact line span and the title of its section;
2. each is embedded under its title with the index's own embedder, and the closest to the question answers
   (`similarities`, `rank_candidates`), quoted with its better neighbour (`neighbour`, `joined`);
3. below a calibrated similarity the answer is "not found" (`ondevice.rag.answer.ANSWERABLE_SIMILARITY`).

The model's own constrained choice (`choose`: a JSON schema whose only values are the candidate numbers and
"none", temperature 0) was measured against that scorer on the QA set and lost (0.40 of the facts against 0.94;
it never chose "none"), so answers do not use it; it stays for the levers harness
(tests/ondevice/rag/answer_levers.py) and for models that may choose better (docs/rag.md, "Answer quality").

For plain-text files (txt, md, rst, source code) a quote is the file's own text: a substring of the file's lines
`start_line..end_line`, beginning on the first and ending on the last. For PDF, DOCX and HTML it is the text the
reader extracted, cited by page, paragraph or line span of its chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.rag.retrieve import SearchResult, span_text

MAX_CANDIDATES = 8          # numbered sentences shown to the model
MAX_CANDIDATE_CHARS = 400   # a longer unit (one huge line) is shown cut, but quoted whole
MIN_CANDIDATE_CHARS = 3
NONE = "none"

CHOOSE_SYSTEM = ("You choose the sentence that answers the user's question. The sentences come from the user's "
                 "own files. Reply with the number of the sentence that answers the question, or none if no "
                 "sentence answers it.")
LEAD_IN_SYSTEM = ("Rewrite the quoted sentence as a one-sentence answer to the question. Use only facts from the "
                  "quoted sentence.")


@dataclass
class Candidate:
    """A sentence (or list item, or short line) of a retrieved chunk, with where it is in its file."""

    text: str
    path: str
    start_line: int | None
    end_line: int | None
    page: int | None
    source: SearchResult
    verbatim: bool  # True: `text` is the file's own text at start_line..end_line
    heading: str = ""  # the title of the section it is in (scoring context only; never quoted)

    @property
    def span(self) -> str:
        return span_text(self.start_line, self.end_line, self.page)

    @property
    def key(self) -> tuple:
        return (self.path, self.start_line, self.end_line, self.page, self.text)


# --- candidates --------------------------------------------------------------------------------------------------
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")
# A list item, table row or "Label: value" line starts a unit of its own (key-value notes are often one per line).
_ITEM = re.compile(r"^\s*([-*+•]|\d{1,3}[.)]|\|)\s|^\s*[A-Za-z][\w '’()/&-]{0,40}:\s+\S")
_FENCE = re.compile(r"^\s*(```|~~~)")

_segmenter = None


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the sentences of `text`, whitespace trimmed."""
    global _segmenter
    if _segmenter is None:
        import pysbd

        _segmenter = pysbd.Segmenter(language="en", clean=False)
    spans, cursor = [], 0
    for piece in _segmenter.segment(text):
        piece = piece.strip()
        if not piece:
            continue
        start = text.find(piece, cursor)
        if start < 0:  # pysbd changed the text (it should not with clean=False): keep the rest as one sentence
            rest = text[cursor:].strip()
            if rest:
                start = text.find(rest, cursor)
                spans.append((start, start + len(rest)))
            break
        spans.append((start, start + len(piece)))
        cursor = start + len(piece)
    return spans


def _units(lines: list[str], first_line: int, extracted: bool = False) -> list[tuple[str, int, int]]:
    """(verbatim text, start line, end line) of the sentence-like units in `lines` (line 1 is `first_line`).

    A title is not an answer: the first line of a file, when it looks like one (short, no final stop) and a blank
    line follows, is left out; `extracted` (text a reader pulled from a PDF or DOCX page, which keeps no blank
    lines) leaves out such a first line without the blank line.

    Blank lines end paragraphs; headings, rst underlines and code fences are not candidates; list items and
    table rows stand alone; inside a paragraph, sentences can cross line breaks (the quote keeps them)."""
    units: list[tuple[str, int, int]] = []
    para: list[tuple[int, str]] = []

    def flush() -> None:
        if not para:
            return
        text = "\n".join(line for _, line in para)
        starts, offset = [], 0  # character offset of each line in `text`
        for _, line in para:
            starts.append(offset)
            offset += len(line) + 1
        # The splitter sees soft line breaks as spaces (same offsets): a wrapped sentence stays one sentence.
        for a, b in split_sentences(text.replace("\n", " ")):
            sentence = text[a:b]
            if len(sentence) < MIN_CANDIDATE_CHARS or not re.search(r"\w", sentence):
                continue
            first = max(i for i, s in enumerate(starts) if s <= a)
            last = max(i for i, s in enumerate(starts) if s <= b - 1)
            units.append((sentence, para[first][0], para[last][0]))
        para.clear()

    in_fence = False
    for i, line in enumerate(lines):
        number = first_line + i
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:  # code inside a fence: one unit per non-blank line
            if line.strip():
                units.append((line.strip(), number, number))
            continue
        if not line.strip() or _MD_HEADING.match(line) or _RST_UNDERLINE.match(line):
            flush()
            continue
        if line.strip() and _RST_UNDERLINE.match(nxt) and len(nxt.strip()) >= len(line.strip()):
            flush()  # an rst title: its underline follows
            continue
        if number == 1 and (extracted or not nxt.strip()) and _title(line, ""):
            continue  # a text note's title line (the section title every candidate is read under, not an answer)
        if _ITEM.match(line):
            flush()
            para.append((number, line))
            if not nxt.startswith((" ", "\t")):  # "Label: value" and list items stand alone unless continued
                flush()
            continue
        para.append((number, line))
    flush()
    return units


def _is_plain_text(path: str) -> bool:
    """Whether the reader indexed the file's own lines (everything but PDF, DOCX and HTML)."""
    from ondevice.rag.readers import HTML_SUFFIXES

    suffix = Path(path).suffix.lower()
    return suffix not in HTML_SUFFIXES and suffix not in {".pdf", ".docx"}


def _normal(text: str) -> str:
    return " ".join(text.split())


def _read_lines(path: str, cache: dict) -> list[str] | None:
    if path not in cache:
        from ondevice.rag.encoding import BinaryContent, decode_text

        try:
            cache[path] = decode_text(Path(path).read_bytes())[0].splitlines()
        except (OSError, BinaryContent):
            cache[path] = None
    return cache[path]


def _title(line: str, after: str) -> str | None:
    """`line` as a section title: a Markdown heading, or a short line without a final stop above a blank line or
    an rst underline (the first line of a text note)."""
    if _MD_HEADING.match(line):
        return line.strip().lstrip("#").strip()
    if _RST_UNDERLINE.match(line):
        return None
    text = line.strip()
    if text and len(text) <= 60 and not text.endswith((".", ",", ";", ":")) and not _ITEM.match(line) \
            and (not after.strip() or _RST_UNDERLINE.match(after)):
        return text
    return None


def heading_above(lines: Sequence[str], line: int) -> str:
    """The title of the section that 1-based `line` is in (the nearest title above it), or ""."""
    for i in range(line - 2, -1, -1):
        title = _title(lines[i], lines[i + 1] if i + 1 < len(lines) else "")
        if title:
            return title
    return ""


def candidates(sources: Sequence[SearchResult], file_cache: dict | None = None) -> list[Candidate]:
    """Every candidate sentence of `sources`, in order, without duplicates (neighbouring chunks overlap).

    Plain-text files are read again so that each sentence is the file's own text at exact lines; a sentence that
    is no longer in the chunk the index holds (the file changed since it was indexed) is not a candidate."""
    cache = {} if file_cache is None else file_cache
    seen: set = set()
    out: list[Candidate] = []
    for source in sources:
        found: list[Candidate] = []
        lines = _read_lines(source.path, cache) if source.page is None and source.start_line is not None \
            and _is_plain_text(source.path) else None
        if lines is not None:
            chunk = _normal(source.text)
            region = lines[source.start_line - 1:source.end_line]
            for text, a, b in _units(region, source.start_line):
                if _normal(text) in chunk:
                    found.append(Candidate(text, source.path, a, b, None, source, True, heading_above(lines, a)))
        if lines is None:  # PDF, DOCX, HTML, or a file no longer readable: the indexed text, the chunk's span
            chunk_lines = source.text.splitlines()
            for text, a, _ in _units(chunk_lines, 1, extracted=True):
                found.append(Candidate(text, source.path, source.start_line, source.end_line, source.page,
                                       source, False, heading_above(chunk_lines, a)))
        for candidate in found:
            if candidate.key not in seen:
                seen.add(candidate.key)
                out.append(candidate)
    return out


def _lexical_scores(question: str, found: Sequence[Candidate]) -> list[float]:
    """How many of the question's content words each candidate has, rarer words (among the candidates) counting
    more; a word with digits (a code, an order number) counts as the rarest."""
    from ondevice.rag.retrieve import content_terms

    terms = content_terms(question)
    if not terms:
        return [0.0] * len(found)
    bags = [content_terms(c.text) for c in found]

    def has(bag: set, term: str) -> bool:
        return term in bag or term.rstrip("s") in bag or term + "s" in bag

    scores = []
    for bag in bags:
        score = 0.0
        for term in terms:
            if has(bag, term):
                df = sum(1 for other in bags if has(other, term))
                score += np.log(1 + len(bags) / df) * (2.0 if any(ch.isdigit() for ch in term) else 1.0)
        scores.append(score)
    return scores


def similarities(question: str, found: Sequence[Candidate], embedder) -> list[float]:
    """Cosine of the question and each candidate read under its section title ("Health insurance\nMember number:
    HC-4471-0923"), with the index's own embedder. The title tells a bare line what it is about; measured on the QA
    set it moved the right sentence to the top for 0.94 of the questions against 0.81 without it."""
    if not found:
        return []
    texts = [f"{c.heading}\n{c.text[:MAX_CANDIDATE_CHARS]}" if c.heading else c.text[:MAX_CANDIDATE_CHARS]
             for c in found]
    vectors = np.asarray(embedder.embed([question] + texts), dtype=np.float32)
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return [float(v) for v in vectors[1:] @ vectors[0]]


def rank_candidates(question: str, found: Sequence[Candidate], embedder, limit: int = MAX_CANDIDATES
                    ) -> list[tuple[Candidate, float]]:
    """The `limit` best candidates for `question` with their similarity (`similarities`), best first."""
    scores = similarities(question, found, embedder)
    order = sorted(range(len(found)), key=lambda i: (-scores[i], i))[:limit]
    return [(found[i], scores[i]) for i in order]


def neighbour(best: Candidate, found: Sequence[Candidate], scores: Sequence[float]) -> Candidate | None:
    """The better-scoring of the sentences right before and after `best` in its file (on the same or the next
    line), or None. Quoting it beside the best one helps when a fact is split over two sentences ("Next up is
    Klara and the Sun." after "Currently reading Piranesi.")."""
    i = next(n for n, c in enumerate(found) if c is best)
    near = [j for j in (i - 1, i + 1) if 0 <= j < len(found) and found[j].path == best.path
            and found[j].verbatim == best.verbatim and found[j].start_line is not None
            and best.start_line is not None and (found[j].start_line - best.end_line in (0, 1)
                                                 or best.start_line - found[j].end_line in (0, 1))]
    return found[max(near, key=lambda j: scores[j])] if near else None


def joined(first: Candidate, second: Candidate, file_cache: dict | None = None) -> Candidate:
    """One quote spanning two neighbouring candidates of a plain-text file, in file order: the file's own text
    from the start of the first to the end of the second (what lies between them, such as a line break, kept)."""
    a, b = sorted((first, second), key=lambda c: (c.start_line, c.end_line))
    lines = _read_lines(a.path, {} if file_cache is None else file_cache)
    if not (a.verbatim and b.verbatim) or lines is None:
        return first
    region = "\n".join(lines[a.start_line - 1:b.end_line])
    start = region.find(a.text)
    end = region.find(b.text, start + len(a.text)) if start >= 0 else -1
    if start < 0 or end < 0:
        return first
    return Candidate(region[start:end + len(b.text)], a.path, a.start_line, b.end_line, None, first.source, True,
                     a.heading)


# --- choosing ----------------------------------------------------------------------------------------------------
def choice_schema(n: int) -> dict:
    """The only answers the model can give: a candidate number ("1".."n") or "none"."""
    return {"enum": [str(i) for i in range(1, n + 1)] + [NONE]}


def choice_messages(question: str, shown: Sequence[Candidate]) -> list[dict]:
    listing = "\n".join(f"{i}. {' '.join(c.text[:MAX_CANDIDATE_CHARS].split())}" for i, c in enumerate(shown, 1))
    user = (f"Question: {question}\n\nSentences:\n{listing}\n\n"
            f"Which sentence answers the question \"{question}\"? Reply with its number, or none.")
    return [{"role": "system", "content": CHOOSE_SYSTEM}, {"role": "user", "content": user}]


def choose(question: str, shown: Sequence[Candidate], model) -> Candidate | None:
    """The candidate the model picks (constrained to the numbers or "none", temperature 0), or None."""
    if not shown:
        return None
    result = model.chat(choice_messages(question, shown), max_tokens=8, temperature=0.0,
                        schema=choice_schema(len(shown)))
    picked = result.parsed
    if picked is None or picked == NONE:
        return None
    return shown[int(picked) - 1]


def lead_in(question: str, chosen: Candidate, model, max_tokens: int = 48) -> str:
    """One generated line that restates the chosen sentence as an answer (it sees nothing else)."""
    messages = [{"role": "system", "content": LEAD_IN_SYSTEM},
                {"role": "user", "content": f"Quoted sentence: {_normal(chosen.text)}\n\nQuestion: {question}"}]
    text = model.chat(messages, max_tokens=max_tokens, temperature=0.0, stop=["\n"]).text
    return text.strip().splitlines()[0].strip() if text.strip() else ""
