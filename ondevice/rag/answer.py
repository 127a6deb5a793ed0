"""Answer a question from retrieved chunks with the local model, citing them as [1] path:lines.

Two modes. "generative": the model writes the answer from the numbered chunks (fine for larger models).
"extractive": the retrieved sentence closest to the question is the answer, verbatim with its exact file and lines,
or "not found" when no sentence is close enough (`ondevice.rag.extractive`). "auto" picks by model size, as
measured (docs/rag.md, "Answer quality"): extractive for small local models, generative for larger ones.

The generative mode uses only chunks that pass `is_relevant`; when none does, the answer says that nothing relevant
was found and the model is not asked at all, so it cannot invent one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ondevice.errors import InvalidInput
from ondevice.rag.retrieve import SearchResult, is_relevant
from ondevice.models.store import DEFAULT_MODEL

NOTHING_FOUND = "I could not find anything relevant to this question in the indexed files."
NOT_IN_FILES = "Not found in your files: none of the closest sentences answers this question."
ANSWER_MODES = ("auto", "extractive", "generative")
# `auto` answers extractively with local models below this size. Measured with the embedded 135M model on the
# project's QA set (docs/rag.md, "Answer quality"): extractive answers held the fact for 0.90-0.95 of the answerable
# questions against 0.38 for generated ones, and cited the right file as often or more. Only 135M was measured; the
# line is drawn at 1B because that is the class of model the extractive mode is for (one that cannot be trusted to
# compose an answer), and larger local models keep the generative mode until they are measured.
AUTO_EXTRACTIVE_MAX_PARAMS = 1_000_000_000
# Extractive "not found": the closest sentence's similarity (`extractive.similarities`) below this. Calibrated on
# the QA set's dev split (qa.jsonl): thresholds from 0.383 to 0.398 give its best trade (fact 0.94, right file 0.98,
# not found 0.67; a higher one loses answers faster than it refuses), and this is the middle of that gap between an
# unanswerable question's 0.382 and an answerable one's 0.398. Applied unchanged to the held-out split.
ANSWERABLE_SIMILARITY = 0.39
# And the best sentence must pass the question-focus rules (`ondevice.rag.answerable`: the names the question states
# are in it or its title, and it holds the kind of answer asked for). Measured one at a time on dev and held-out
# (docs/rag.md): together they refuse 0.75 and 0.79 of the unanswerable questions (0.67 and 0.07 without them)
# and keep the facts (0.94, 0.95). A failing best sentence means "not found": answering with the next candidate
# that passes instead admitted more wrong answers than it saved (held-out not found 0.79 -> 0.43).
ANSWERABLE_RULES = ("names", "answer_type")
QUOTE_NEIGHBOUR = True  # the best sentence's better neighbour too (measured: fact 0.90 -> 0.92 dev, 0.95 held-out)
SYSTEM_PROMPT = ("Answer the question in one or two sentences using only the numbered sources below, which come "
                 "from the user's own files. Copy names, numbers and dates exactly. Cite the source like [1]. "
                 "If the sources do not answer it, say you do not know.")
MAX_SOURCE_CHARS = 1200
ANSWER_CTX = 2048  # context the answering model is loaded with: sources + question + answer


@dataclass
class Citation:
    number: int
    path: str
    span: str

    def __str__(self) -> str:
        return f"[{self.number}] {self.path}{':' + self.span if self.span else ''}"


@dataclass
class Quote:
    """A sentence quoted verbatim in an extractive answer: for plain-text files, the file's own text, starting on
    `start_line` and ending on `end_line` (1-based, inclusive); `number` is its citation's number."""

    number: int
    text: str
    path: str
    start_line: int | None
    end_line: int | None
    page: int | None = None
    verbatim: bool = True  # False for PDF/DOCX/HTML: the reader's extracted text, cited by page or chunk span


@dataclass
class Answer:
    """A grounded answer. `found` is False when retrieval had nothing relevant (and no model was run), or, in the
    extractive mode, when the model chose "none". `mode` is the mode that answered ("extractive"/"generative")."""

    question: str
    answer: str
    citations: list[Citation] = field(default_factory=list)
    found: bool = True
    sources: list[SearchResult] = field(default_factory=list)
    routed_to: str = "local"           # "remote" when a remote model wrote it (rag ask --remote)
    route_reason: str = ""
    withheld: list[Citation] = field(default_factory=list)  # sources kept on the device (sensitive data)
    mode: str = "generative"
    quotes: list[Quote] = field(default_factory=list)  # extractive: the chosen sentences, verbatim
    lead_in: str = ""                                   # extractive: optional generated line from the quotes only
    candidates: list[str] = field(default_factory=list)  # extractive: the numbered sentences the model chose from

    def render(self) -> str:
        lines = [self.answer.strip()]
        if self.citations:
            lines.append("")
            lines.extend(str(c) for c in self.citations)
        return "\n".join(lines)


def answer_model(model) -> tuple[object, bool]:
    """The LLM that writes answers, and whether the caller owns it (must close it): a name or path is loaded with
    the answer context, a loaded model is used as given, None means the default model."""
    from ondevice.model import load_or_use

    return load_or_use(model or DEFAULT_MODEL, n_ctx=ANSWER_CTX)


def resolve_mode(mode: str | None, model, remote=None) -> str:
    """"extractive" or "generative" for `mode` ("auto", "extractive", "generative") and the answering model:
    auto is generative when a remote model may answer, extractive for local models below
    AUTO_EXTRACTIVE_MAX_PARAMS parameters (see its comment), else generative."""
    mode = mode or "auto"
    if mode not in ANSWER_MODES:
        raise InvalidInput(f"unknown answer mode {mode!r}; choose from {', '.join(ANSWER_MODES)}")
    if mode == "extractive" and remote is not None:
        raise InvalidInput("a remote model writes generated answers: use the generative (or auto) mode with remote")
    if mode != "auto":
        return mode
    if remote is not None:
        return "generative"
    info = getattr(model, "info", None)
    n_params = getattr(info, "n_params", 0) or 0
    return "extractive" if 0 < n_params < AUTO_EXTRACTIVE_MAX_PARAMS else "generative"


def answer_extractive(question: str, sources: Sequence[SearchResult], model=None, embedder=None,
                      with_lead_in: bool = False, on_text: Callable[[str], None] | None = None) -> Answer:
    """The retrieved sentence closest to the question (`extractive.similarities`: MiniLM cosine, each sentence
    read under its section title), quoted verbatim with its exact lines together with its better neighbour in the
    file; "not found" (`NOT_IN_FILES`, found=False) when even the closest is below ANSWERABLE_SIMILARITY, or when
    it lacks what the question asks for (ANSWERABLE_RULES: a name the question states, the kind of answer).

    `sources` are all the retrieved chunks (the sentence threshold decides, not `is_relevant`: that chunk-level
    check dropped the answering note for 6 of the 90 answerable questions of the QA set). The model is not asked
    to choose: on the QA set the scorer alone picked the right sentence far more often than SmolLM2-135M's
    constrained choice among the top candidates (docs/rag.md, "Answer quality"). `model` writes the optional
    lead-in only (with_lead_in: one generated line before the quote, written from the quoted text alone)."""
    from ondevice.rag.extractive import MAX_CANDIDATES, candidates, joined, lead_in, neighbour, rank_candidates

    if not sources:
        if on_text:
            on_text(NOTHING_FOUND)
        return Answer(question, NOTHING_FOUND, [], found=False, mode="extractive")
    if embedder is None:
        raise InvalidInput("the extractive answer mode needs the index's embedding model")
    cache: dict = {}
    found = candidates(sources, cache)
    ranked = rank_candidates(question, found, embedder, limit=len(found))
    offered = [c.text for c, _ in ranked[:MAX_CANDIDATES]]
    if ranked and ranked[0][1] >= ANSWERABLE_SIMILARITY and not _answers_focus(question, ranked[0][0], cache):
        if on_text:
            on_text(NOT_IN_FILES)  # on topic (close enough), but without what the question asks for
        return Answer(question, NOT_IN_FILES, [], found=False, sources=list(sources), mode="extractive",
                      candidates=offered)
    if not ranked or ranked[0][1] < ANSWERABLE_SIMILARITY:
        # no chunk even about the question: the same words as the generative mode's
        message = NOT_IN_FILES if any(is_relevant(question, s, embedder) for s in sources) else NOTHING_FOUND
        if on_text:
            on_text(message)
        return Answer(question, message, [], found=False, sources=list(sources), mode="extractive",
                      candidates=offered)
    best = ranked[0][0]
    scores = {id(c): score for c, score in ranked}
    beside = neighbour(best, found, [scores[id(c)] for c in found]) if QUOTE_NEIGHBOUR else None
    chosen = joined(best, beside, cache) if beside is not None else best
    path = display_path(chosen.path)
    quote = Quote(1, chosen.text, path, chosen.start_line, chosen.end_line, chosen.page, chosen.verbatim)
    lead = lead_in(question, chosen, model) if with_lead_in and model is not None else ""
    text = (f"{lead}\n" if lead else "") + f"{chosen.text} [1]"
    if on_text:
        on_text(text)
    return Answer(question, text, [Citation(1, path, chosen.span)], True, [chosen.source], mode="extractive",
                  quotes=[quote], lead_in=lead, candidates=offered)


def _answers_focus(question: str, best, file_cache: dict) -> bool:
    """Whether the best sentence passes ANSWERABLE_RULES for `question` (names read in its file too)."""
    from ondevice.rag.answerable import check, question_focus
    from ondevice.rag.extractive import _read_lines

    lines = _read_lines(best.path, file_cache) if best.verbatim else None
    file_text = "\n".join(lines) if lines is not None else best.source.text
    return check(question_focus(question), best.text, best.heading, file_text, ANSWERABLE_RULES).passes


def display_path(path: str) -> str:
    """Relative to the working folder when the file is under it, else as stored."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def build_messages(question: str, sources: Sequence[SearchResult]) -> list[dict]:
    parts = []
    for number, source in enumerate(sources, start=1):
        where = f"{display_path(source.path)}{':' + source.span if source.span else ''}"
        parts.append(f"[{number}] ({where})\n{source.text[:MAX_SOURCE_CHARS].strip()}")
    user = "Sources:\n\n" + "\n\n".join(parts) + f"\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def screen_sources(sources: Sequence[SearchResult], detector) -> tuple[list[SearchResult], list[SearchResult]]:
    """Split retrieved sources into those that may leave the device and those withheld (sensitive data found by
    `detector`, e.g. `ondevice.routing.privacy.default_detector()`): what `rag ask --remote` sends, and what it keeps."""
    clean, withheld = [], []
    for source in sources:
        (withheld if detector(source.text) or detector(source.path) else clean).append(source)
    return clean, withheld


def answer_question(question: str, sources: Sequence[SearchResult], model, max_tokens: int = 160,
                    on_text: Callable[[str], None] | None = None) -> Answer:
    """Stream an answer grounded in `sources` (already filtered to relevant ones) from `model` at temperature 0."""
    if not sources:
        if on_text:
            on_text(NOTHING_FOUND)
        return Answer(question, NOTHING_FOUND, [], found=False)
    messages = build_messages(question, sources)
    # Keep the prompt inside the context: drop the weakest sources until it fits.
    sources = list(sources)
    while len(sources) > 1 and len(model.tokenize(model.render_chat(messages), add_special=False)) \
            + max_tokens > model.n_ctx:
        sources.pop()
        messages = build_messages(question, sources)
    pieces = []
    stream = model.chat(messages, max_tokens=max_tokens, temperature=0.0, stream=True)
    for piece in stream:
        pieces.append(piece)
        if on_text:
            on_text(piece)
    citations = [Citation(i, display_path(s.path), s.span) for i, s in enumerate(sources, start=1)]
    result = getattr(stream, "result", None)  # a Router's stream says who answered
    return Answer(question, "".join(pieces).strip(), citations, True, list(sources),
                  routed_to=getattr(result, "routed_to", "local"), route_reason=getattr(result, "route_reason", ""))


def answer_routed(question: str, sources: Sequence[SearchResult], local, remote, max_tokens: int = 160,
                  on_text: Callable[[str], None] | None = None) -> Answer:
    """Answer through a `Router(local, remote, "privacy", prefer="remote")`, screening every retrieved source first.

    Sources holding sensitive data never leave the device: the remote model answers from the clean ones, and the
    withheld ones are listed on the answer. When no clean source remains (or the question itself is sensitive),
    the local model answers from all of them. A failing remote gives a local answer (the router's availability
    rule)."""
    from ondevice.routing.privacy import default_detector
    from ondevice.routing.router import Router

    detector = default_detector()
    clean, withheld = screen_sources(sources, detector)
    router = Router(local, remote, policy="privacy", detector=detector, prefer="remote")
    if clean and not detector(question):
        answer = answer_question(question, clean, router, max_tokens, on_text)
    else:
        answer = answer_question(question, sources, local, max_tokens, on_text)
        answer.route_reason = "privacy: every relevant source holds sensitive data; answered on the device" \
            if sources and not clean else "privacy: the question holds sensitive data; answered on the device"
        withheld = []
    answer.withheld = [Citation(0, display_path(s.path), s.span) for s in withheld]
    return answer
