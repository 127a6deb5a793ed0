"""`ondevice.rag.rerank.rerank`: the one local reranker RAG and `/v1/rerank` share (SmolLM2's query likelihood)."""

from __future__ import annotations

import pytest

from ondevice.errors import InvalidInput
from ondevice.rag.rerank import rerank

DOCS = [
    "The science museum's dinosaur hall reopens in autumn.",
    "Tooth cleaning booked with Dr. Alvarez for Tuesday 9 April at 10:30.",
    "Plant garlic in October; tomatoes go against the south fence in May.",
]


@pytest.mark.parametrize("question, best", [("When is my appointment with the dentist?", 1),
                                            ("When does the dinosaur hall open again?", 0),
                                            ("garlic planting month", 2)])
def test_the_passage_that_answers_comes_first(smollm2, question, best):
    from ondevice.rag.rerank import relevance

    ranked = rerank(question, DOCS, model=smollm2)
    assert ranked[0][0] == best  # the yes/no form this replaced put the museum first for the dentist question
    assert sorted(i for i, _ in ranked) == [0, 1, 2]
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    # each score is that document's own mean log-probability of the question, whatever the other documents are
    assert dict(ranked)[best] == relevance(smollm2, question, DOCS[best])
    assert all(s < 0 for _, s in ranked)
    assert rerank(question, DOCS, model=smollm2, top_n=1) == ranked[:1]


def test_a_passage_longer_than_the_context_keeps_the_question_scored(smollm2):
    from ondevice.rag.rerank import relevance

    long = "Filler words about nothing in particular. " * 2000  # far past the context window
    score = relevance(smollm2, "When is my appointment with the dentist?", long, max_chars=len(long))
    assert score < 0 and score == score  # a finite log-probability, not an overflow


def test_same_input_same_scores(smollm2):
    assert rerank("garlic planting month", DOCS, model=smollm2) == rerank("garlic planting month", DOCS,
                                                                         model=smollm2)


@pytest.mark.parametrize("query, documents, top_n", [("", DOCS, None), ("q", "not a list", None),
                                                     ("q", [1, 2], None), ("q", DOCS, 0)])
def test_bad_input_is_a_user_error(query, documents, top_n):
    with pytest.raises(InvalidInput):
        rerank(query, documents, top_n=top_n)


def test_no_documents_no_model_load():
    assert rerank("anything", []) == []
