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


def test_rerank_scores_every_candidate_and_orders_by_the_llm(notes_index, smollm2):
    results = notes_index.search("Which purchase was number 84075?", k=3, rerank_model=smollm2)
    assert len(results) == 3 and all(r.relevance is not None for r in results)
    assert [r.relevance for r in results] == sorted((r.relevance for r in results), reverse=True)
