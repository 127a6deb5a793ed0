"""Retrieval and answer quality on a QA file: recall@1, recall@5, MRR over sources, answer-contains share.

QA.jsonl has one object per line: {"question": ..., "answer": ..., "source": "relative/path"}. A retrieved chunk
hits when its file path ends with `source` (so sources are written relative to whatever folder was indexed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ondevice.errors import InvalidInput


@dataclass
class QAItem:
    question: str
    answer: str
    source: str


@dataclass
class QAResult:
    question: str
    source: str
    rank: int | None  # 1-based rank of the first chunk from `source`, None if not in the top k
    answer: str | None = None
    contains_answer: bool | None = None


@dataclass
class EvalReport:
    n: int
    k: int
    mode: str
    recall_at_1: float
    recall_at_5: float
    mrr: float
    answer_contains: float | None
    items: list[QAResult] = field(default_factory=list)


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
        if not isinstance(obj, dict) or not all(isinstance(obj.get(key), str) and obj[key].strip()
                                                for key in ("question", "answer", "source")):
            raise InvalidInput(f"{path}:{number}: needs string fields question, answer and source")
        items.append(QAItem(obj["question"], obj["answer"], obj["source"]))
    if not items:
        raise InvalidInput(f"{path}: no questions")
    return items


def _matches(path: str, source: str) -> bool:
    source = source.replace("\\", "/").lstrip("./")
    return Path(path).as_posix() == source or Path(path).as_posix().endswith("/" + source)


def evaluate(index, qa_path: str | os.PathLike, k: int = 5, mode: str = "hybrid", model=None) -> EvalReport:
    """Search each question in `index`; with `model`, also answer it and check the expected text is in it."""
    items = read_qa(qa_path)
    depth = max(k, 5)
    results = []
    llm = None
    if model is not None:
        from ondevice.rag.answer import answer_model

        llm, owned = answer_model(model)
    try:
        for item in items:
            hits = index.search(item.question, depth, mode)
            rank = next((i for i, h in enumerate(hits, start=1) if _matches(h.path, item.source)), None)
            result = QAResult(item.question, item.source, rank)
            if llm is not None:
                answer = index.ask(item.question, model=llm, k=k)
                result.answer = answer.answer
                result.contains_answer = item.answer.lower() in answer.answer.lower()
            results.append(result)
    finally:
        if llm is not None and owned:
            llm.close()
    n = len(results)
    ranks = [r.rank for r in results]
    contains = [r.contains_answer for r in results if r.contains_answer is not None]
    return EvalReport(
        n, k, mode,
        recall_at_1=sum(1 for r in ranks if r == 1) / n,
        recall_at_5=sum(1 for r in ranks if r is not None and r <= 5) / n,
        mrr=sum(1.0 / r for r in ranks if r is not None) / n,
        answer_contains=(sum(contains) / len(contains)) if contains else None,
        items=results,
    )
