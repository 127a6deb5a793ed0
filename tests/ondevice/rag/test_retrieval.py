"""Hybrid retrieval on a corpus with planted facts: recall, fusion beating either retriever, citations, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ondevice.errors import InvalidInput
from ondevice.rag import NOTHING_FOUND, EmbeddingModelMismatch, Index, IndexError_


def test_hybrid_recall_at_5_is_at_least_0_9(notes_index, corpus):
    report = notes_index.evaluate(corpus[2], mode="hybrid")
    assert report.n == len(corpus[1])
    assert report.recall_at_5 >= 0.9, [(i.question, i.rank) for i in report.items]


def test_hybrid_beats_bm25_only_and_vector_only(notes_index, corpus):
    reports = {mode: notes_index.evaluate(corpus[2], mode=mode) for mode in ("hybrid", "bm25", "vector")}
    hybrid = reports["hybrid"]
    for mode in ("bm25", "vector"):
        assert hybrid.recall_at_5 > reports[mode].recall_at_5, mode
        assert hybrid.mrr > reports[mode].mrr, mode


def test_each_retriever_wins_its_own_kind_of_question(notes_index, corpus):
    """Paraphrases are found by vectors and not BM25; identifiers by BM25 rank 1 and not always by vectors."""
    _, qa, qa_path = corpus
    ranks = {mode: [i.rank for i in notes_index.evaluate(qa_path, mode=mode).items] for mode in ("bm25", "vector")}
    kinds = [item["kind"] for item in qa]
    para = [i for i, kind in enumerate(kinds) if kind == "paraphrase"]
    ident = [i for i, kind in enumerate(kinds) if kind == "identifier"]
    assert all(ranks["bm25"][i] is None for i in para)
    assert all(ranks["vector"][i] is not None and ranks["vector"][i] <= 5 for i in para)
    assert all(ranks["bm25"][i] == 1 for i in ident)
    assert any(ranks["vector"][i] is None or ranks["vector"][i] > 1 for i in ident)


def test_results_cite_the_file_and_the_lines_of_the_fact(notes_index):
    hits = notes_index.search("Which purchase was number 65590?", k=3)
    top = hits[0]
    assert top.path.endswith("receipts/order-65590.md")
    lines = Path(top.path).read_text().splitlines()
    fact_line = next(n for n, line in enumerate(lines, start=1) if "65590" in line)
    assert top.start_line <= fact_line <= top.end_line
    assert "65590" in top.text and top.span == f"{top.start_line}-{top.end_line}"


def test_relevant_keeps_the_answering_note_and_drops_lexical_distractors(notes_index):
    question = "When is my next visit to the dental hygienist?"
    hits = notes_index.search(question, k=5)
    assert any(h.path.endswith("misc/museum.md") for h in hits)  # shares "next visit"
    kept = notes_index.relevant(question, hits)
    assert [Path(h.path).name for h in kept] == ["dentist.md"]


@pytest.mark.parametrize("question", ["What is the boiling point of mercury?",
                                      "Who won the football world cup in 1998?"])
def test_nothing_relevant_is_said_instead_of_invented(notes_index, question):
    assert notes_index.relevant(question, notes_index.search(question, k=5)) == []
    answer = notes_index.ask(question, model="no-such-model-is-ever-loaded")
    assert answer.found is False and answer.answer == NOTHING_FOUND and answer.citations == []


def test_query_with_other_embedding_model_is_an_error(notes_index):
    with pytest.raises(EmbeddingModelMismatch, match="minilm-l6"):
        Index(notes_index.path, embed_model="smollm2-135m")


def test_empty_query_and_missing_index_are_user_errors(notes_index, tmp_path):
    with pytest.raises(InvalidInput):
        notes_index.search("   ")
    with pytest.raises(IndexError_):
        Index(tmp_path / "absent.sqlite", create=False)


def test_in_memory_vector_search_matches_sqlite_vec(notes_index, embedder):
    query = embedder.embed(["how much was the winter tyre change"])[0]
    fast = notes_index.store.nearest(query, 10)
    exact = notes_index.store.nearest_sqlite_vec(query, 10)
    assert [i for i, _ in fast] == [i for i, _ in exact]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(fast, exact))
