"""Retrieval and answer quality on a QA file: recall@1, recall@5, MRR over sources; per answer mode, the share of
answers that contain the expected fact, that cite the file holding it, and that say "not found" when the files
do not answer the question, with the seconds per answer.

QA.jsonl has one object per line: {"question": ..., "answer": ..., "source": "relative/path"}; a question the
files do not answer has "answer": null and "source": null. `answer` may also be a list of accepted strings. A
retrieved chunk hits when its file path ends with `source` (so sources are written relative to whatever folder
was indexed). Modes are run interleaved, question by question, on one loaded model, so that their latencies are
measured side by side.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ondevice.errors import InvalidInput


@dataclass
class QAItem:
    question: str
    answer: str | list[str] | None  # None: the files do not answer the question
    source: str | None

    @property
    def answerable(self) -> bool:
        return self.source is not None


@dataclass
class ModeAnswer:
    """One mode's answer to one question."""

    mode: str
    answer: str
    found: bool
    not_found: bool          # the answer says the files do not answer (found=False, or words to that effect)
    contains_answer: bool | None
    cites_source: bool | None
    seconds: float
    citations: list[str] = field(default_factory=list)
    fact_in_candidates: bool | None = None  # extractive: the fact was in one of the sentences offered to the model


@dataclass
class QAResult:
    question: str
    source: str | None
    rank: int | None  # 1-based rank of the first chunk from `source`, None if not in the top k
    answer: str | None = None                  # the first mode's answer (compatibility)
    contains_answer: bool | None = None
    answers: list[ModeAnswer] = field(default_factory=list)


@dataclass
class AnswerQuality:
    """One answer mode over the QA file."""

    mode: str
    answerable: int
    retrieved: int                      # answerable questions whose source was in the top k
    contains_fact: float | None         # share of `retrieved` whose answer contains the expected fact
    cites_source: float | None          # share of `retrieved` whose answer cites the file holding it
    contains_fact_all: float | None     # share of all answerable questions
    fact_in_candidates: float | None    # extractive: share of `retrieved` whose fact was among the offered sentences
    unanswerable: int
    not_found: float | None             # share of unanswerable questions answered "not found"
    seconds_mean: float
    seconds_p50: float
    seconds_max: float


@dataclass
class EvalReport:
    n: int
    k: int
    mode: str
    recall_at_1: float
    recall_at_5: float
    mrr: float
    answer_contains: float | None
    answer_modes: list[AnswerQuality] = field(default_factory=list)
    items: list[QAResult] = field(default_factory=list)
    reranked: bool = False  # retrieval (and the answers' retrieval) went through `--rerank`


def _field(obj: dict, key: str) -> str | list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return value
    if key == "answer" and isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return value
    raise ValueError(key)


def read_qa(path: str | os.PathLike) -> list[QAItem]:
    """Parse QA.jsonl; a bad line raises InvalidInput naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such QA file: {path}")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{number}: not JSON ({exc.msg})") from None
        where = f"{path}:{number}"
        need = f"{where}: needs a string question, and either a string answer and source or both null"
        if not isinstance(obj, dict) or not isinstance(obj.get("question"), str) or not obj["question"].strip():
            raise InvalidInput(need)
        try:
            answer, source = _field(obj, "answer"), _field(obj, "source")
        except ValueError:
            raise InvalidInput(need) from None
        if ("answer" not in obj or "source" not in obj) or (answer is None) != (source is None):
            raise InvalidInput(need)
        items.append(QAItem(obj["question"], answer, source))
    if not items:
        raise InvalidInput(f"{path}: no questions")
    return items


def _matches(path: str, source: str) -> bool:
    source = source.replace("\\", "/").lstrip("./")
    return Path(path).as_posix() == source or Path(path).as_posix().endswith("/" + source)


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def contains_fact(answer: str, expected: str | list[str]) -> bool:
    """Whether `answer` holds the expected text (any of a list), ignoring case and line breaks."""
    accepted = [expected] if isinstance(expected, str) else expected
    return any(_normal(e) in _normal(answer) for e in accepted)


# What an answer says when the files do not answer: our own messages, and a generated "I don't know".
_NOT_FOUND = re.compile(r"\b(not found|could not find|cannot find|can't find|couldn't find|do not know|don't know|"
                        r"no information|not mentioned|does not (say|mention|contain|answer)|doesn't (say|mention|"
                        r"contain)|not (stated|specified|provided) in)\b", re.IGNORECASE)


def says_not_found(answer) -> bool:
    return not answer.found or bool(_NOT_FOUND.search(answer.answer))


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def evaluate(index, qa_path: str | os.PathLike, k: int = 5, mode: str = "hybrid", model=None,
             answer_modes: Sequence[str] = ("extractive", "generative"), lead_in: bool = False,
             on_progress: Callable[[int, int], None] | None = None, max_tokens: int = 160,
             threads: int | None = None, rerank: bool = False) -> EvalReport:
    """Search each question in `index`; with `model`, also answer it in each of `answer_modes` (interleaved,
    alternating which mode goes first) and check the answers against the QA file. max_tokens bounds generated
    answers; threads is the LLM's (when `model` is a name). rerank: search and answer as `--rerank` does, the
    reranker being `model` (or the default LLM when no model answers)."""
    from ondevice.rag.answer import ANSWER_MODES

    items = read_qa(qa_path)
    for answer_mode in answer_modes:
        if answer_mode not in ANSWER_MODES:
            raise InvalidInput(f"unknown answer mode {answer_mode!r}; choose from {', '.join(ANSWER_MODES)}")
    depth = max(k, 5)
    results = []
    from ondevice.model import load_or_use

    llm, owned = None, False
    if model is not None:
        from ondevice.rag.answer import ANSWER_CTX

        llm, owned = load_or_use(model, n_ctx=ANSWER_CTX, threads=threads)
    reranker, reranker_owned = None, False  # --rerank's model: the answering one, else the default LLM
    if rerank:
        from ondevice.models.store import DEFAULT_MODEL

        reranker, reranker_owned = (llm, False) if llm is not None else load_or_use(DEFAULT_MODEL, threads=threads)
    try:
        for number, item in enumerate(items):
            hits = index.search(item.question, depth, mode, rerank_model=reranker)
            rank = None if not item.answerable else \
                next((i for i, h in enumerate(hits, start=1) if _matches(h.path, item.source)), None)
            result = QAResult(item.question, item.source, rank)
            order = list(answer_modes) if number % 2 == 0 else list(reversed(answer_modes))
            outcomes = {}
            for answer_mode in order if llm is not None else ():
                start = time.perf_counter()
                answer = index.ask(item.question, model=llm, k=k, mode=answer_mode, lead_in=lead_in,
                                   max_tokens=max_tokens, rerank=rerank)
                seconds = time.perf_counter() - start
                outcomes[answer_mode] = ModeAnswer(
                    answer_mode, answer.answer, answer.found, says_not_found(answer),
                    contains_fact(answer.answer, item.answer) if item.answerable else None,
                    any(_matches(c.path, item.source) for c in answer.citations) if item.answerable else None,
                    round(seconds, 3), [str(c) for c in answer.citations],
                    any(contains_fact(c, item.answer) for c in answer.candidates)
                    if item.answerable and answer.mode == "extractive" else None)
            result.answers = [outcomes[m] for m in answer_modes if m in outcomes]
            if result.answers:
                result.answer = result.answers[0].answer
                result.contains_answer = result.answers[0].contains_answer
            results.append(result)
            if on_progress:
                on_progress(number + 1, len(items))
    finally:
        if llm is not None and owned:
            llm.close()
        if reranker_owned:
            reranker.close()
    answerable = [r for r in results if r.source is not None]
    n = len(answerable) or 1
    ranks = [r.rank for r in answerable]
    qualities = [_quality(m, results, k) for m in answer_modes] if llm is not None else []
    return EvalReport(
        len(results), k, mode,
        recall_at_1=sum(1 for r in ranks if r == 1) / n,
        recall_at_5=sum(1 for r in ranks if r is not None and r <= 5) / n,
        mrr=sum(1.0 / r for r in ranks if r is not None) / n,
        answer_contains=qualities[0].contains_fact_all if qualities else None,
        answer_modes=qualities,
        items=results,
        reranked=rerank,
    )


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _quality(answer_mode: str, results: list[QAResult], k: int) -> AnswerQuality:
    def outcome(result: QAResult) -> ModeAnswer:
        return next(a for a in result.answers if a.mode == answer_mode)

    answerable = [r for r in results if r.source is not None]
    retrieved = [r for r in answerable if r.rank is not None and r.rank <= k]
    unanswerable = [r for r in results if r.source is None]
    seconds = [outcome(r).seconds for r in results]
    return AnswerQuality(
        answer_mode, len(answerable), len(retrieved),
        contains_fact=_share([bool(outcome(r).contains_answer) for r in retrieved]),
        cites_source=_share([bool(outcome(r).cites_source) for r in retrieved]),
        contains_fact_all=_share([bool(outcome(r).contains_answer) for r in answerable]),
        fact_in_candidates=_share([bool(outcome(r).fact_in_candidates) for r in retrieved
                                   if outcome(r).fact_in_candidates is not None]),
        unanswerable=len(unanswerable),
        not_found=_share([outcome(r).not_found for r in unanswerable]),
        seconds_mean=round(sum(seconds) / len(seconds), 3) if seconds else 0.0,
        seconds_p50=round(_percentile(seconds, 0.5), 3),
        seconds_max=round(max(seconds), 3) if seconds else 0.0,
    )
