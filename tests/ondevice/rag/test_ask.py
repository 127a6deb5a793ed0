"""A grounded answer from the embedded SmolLM2 at temperature 0, with citations of the right file."""

from __future__ import annotations


def test_ask_answers_from_the_note_with_a_citation(notes_index, smollm2, corpus, monkeypatch):
    monkeypatch.chdir(corpus[0])  # sources are labelled relative to the working folder: a stable prompt
    streamed = []
    answer = notes_index.ask("How often does my puppy need his pill?", model=smollm2, max_tokens=48,
                             on_text=streamed.append, mode="generative")
    assert answer.found and answer.mode == "generative"
    assert answer.answer and "".join(streamed).strip() == answer.answer
    assert answer.citations[0].number == 1
    assert answer.citations[0].path == "pets/biscuit.md" and answer.citations[0].span == "1-4"
    assert "first day of every month" in answer.answer, (answer.answer, [str(c) for c in answer.citations])
    assert str(answer.citations[0]).startswith("[1] ") and answer.render().endswith(str(answer.citations[-1]))


def test_rerank_orders_the_top_ten_by_fusion_plus_query_likelihood(notes_index, smollm2):
    from ondevice.rag.retrieve import LIKELIHOOD_WEIGHT, rerank, search

    question = "Which purchase was number 84075?"
    candidates = search(notes_index.store, notes_index.embedder, question, 10)
    reranked = rerank(candidates, question, smollm2)
    assert all(r.relevance is not None and r.relevance < 0 for r in reranked)

    def z(values):
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        return [(v - mean) / spread for v in values]
    combined = [f + LIKELIHOOD_WEIGHT * lik for f, lik in zip(z([r.score for r in reranked]),
                                                             z([r.relevance for r in reranked]))]
    assert combined == sorted(combined, reverse=True)
    results = notes_index.search(question, k=3, rerank_model=smollm2)  # what `--rerank` does: the top 10, cut to k
    assert [r.chunk_id for r in results] == [r.chunk_id for r in reranked[:3]]
    assert "84075" in results[0].text
