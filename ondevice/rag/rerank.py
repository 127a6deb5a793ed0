"""One local reranker for RAG and the server's `/v1/rerank`: `rerank(query, documents) -> [(index, score)]`.

A cross-encoder judgement from the local LLM (no reranker weights ship with the project, and none may be
downloaded): for each document the model reads "Passage: ... Question: ... Does the passage contain the answer to
the question? Answer yes or no." and the score is the log-odds of its next token being "yes" rather than "no"
(the best-scoring spelling of each: " yes", "Yes", ...). Deterministic: no sampling, temperature 0 by
construction. Cost: one prompt evaluation per document (about 100-400 tokens each), so rerank tens of candidates,
not thousands. How much it helps is measured in docs/rag.md ("levers").

    from ondevice.rag.rerank import rerank
    rerank("when is the dentist?", ["Tooth cleaning on Tuesday 9 April.", "The museum reopens in autumn."])
    # -> [(0, 3.1), (1, -2.4)]
"""

from __future__ import annotations

from typing import Sequence

from ondevice.errors import InvalidInput

PROMPT = ("Passage:\n{passage}\n\nQuestion: {question}\n"
          "Does the passage contain the answer to the question? Answer yes or no.")
MAX_PASSAGE_CHARS = 1500
MAX_DOCUMENTS = 1000


def rerank(query: str, documents: Sequence[str], model=None, top_n: int | None = None,
           max_chars: int = MAX_PASSAGE_CHARS) -> list[tuple[int, float]]:
    """(index into `documents`, relevance score: higher is more relevant), best first; `top_n` keeps the first n.

    model: a loaded `ondevice.Model` with `logits` (a GGUF LLM) or a model name; default the project's default
    LLM (SmolLM2-135M-Instruct). Ties keep the documents' order. Bad input raises InvalidInput."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("rerank needs a non-empty query")
    if not isinstance(documents, (list, tuple)) or not all(isinstance(d, str) for d in documents):
        raise InvalidInput("documents must be a list of strings")
    if len(documents) > MAX_DOCUMENTS:
        raise InvalidInput(f"at most {MAX_DOCUMENTS} documents per call, got {len(documents)}")
    if top_n is not None and top_n < 1:
        raise InvalidInput(f"top_n must be at least 1, got {top_n}")
    if not documents:
        return []
    from ondevice.model import load_or_use
    from ondevice.models.store import DEFAULT_MODEL

    llm, owned = load_or_use(model or DEFAULT_MODEL)
    try:
        scores = [relevance(llm, query, doc, max_chars) for doc in documents]
    finally:
        if owned:
            llm.close()
    order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))
    return [(i, scores[i]) for i in order[:top_n]]


def relevance(llm, query: str, document: str, max_chars: int = MAX_PASSAGE_CHARS) -> float:
    """Log-odds of "yes" over "no" for one (query, document) pair."""
    yes, no = _answer_tokens(llm)
    prompt = llm.render_chat([{"role": "user", "content": PROMPT.format(passage=document[:max_chars],
                                                                        question=query.strip())}])
    tokens = llm.tokenize(prompt, add_special=False)[-(llm.n_ctx - 1):]
    last = llm.logits(tokens)[-1]
    return float(max(last[t] for t in yes) - max(last[t] for t in no))


def _answer_tokens(llm) -> tuple[list[int], list[int]]:
    cached = getattr(llm, "_rerank_tokens", None)
    if cached is None:
        cached = (_first_tokens(llm, [" yes", "yes", " Yes", "Yes"]), _first_tokens(llm, [" no", "no", " No", "No"]))
        try:
            llm._rerank_tokens = cached
        except AttributeError:
            pass
    return cached


def _first_tokens(llm, words: Sequence[str]) -> list[int]:
    return sorted({llm.tokenize(w, add_special=False)[0] for w in words if llm.tokenize(w, add_special=False)})
