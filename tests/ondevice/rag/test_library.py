"""The generated library (`ondevice rag bench --library N`): real files of every kind, and every fact is found."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ondevice.rag.library import write_library


def test_every_planted_fact_is_retrieved_in_the_top_5(embedder, tmp_path):
    from ondevice.rag import Index

    facts = write_library(tmp_path / "lib", 24, seed=5)
    kinds = Counter(Path(f.path).suffix for f in facts)
    assert set(kinds) == {".md", ".txt", ".py", ".pdf", ".docx"}, kinds
    with Index(tmp_path / "lib.sqlite", embedder=embedder) as index:
        summary = index.add([tmp_path / "lib"])
        assert summary.added == 24 and not summary.failed
        for fact in facts:
            results = index.search(fact.question, 5)
            hit = next((r for r in results if r.path.endswith(fact.path)), None)
            assert hit is not None, (fact, [r.path for r in results])
            # the chunk found holds the answer (a PDF's text may wrap it onto the next line)
            assert fact.answer.split()[-1] in " ".join(r.text for r in results if r.path.endswith(fact.path))


def test_the_same_seed_writes_the_same_library(tmp_path):
    a = write_library(tmp_path / "a", 12, seed=1)
    b = write_library(tmp_path / "b", 12, seed=1)
    assert a == b
    for fact in a:
        if not fact.path.endswith((".pdf", ".docx")):
            assert (tmp_path / "a" / fact.path).read_bytes() == (tmp_path / "b" / fact.path).read_bytes()
