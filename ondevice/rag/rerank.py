"""One local reranker for RAG and the server's `/v1/rerank`: `rerank(query, documents) -> [(index, score)]`.

Query likelihood from the local LLM (no reranker weights ship with the project, and none may be downloaded): for
each document the model reads the passage and is asked for "one question that this text answers"; the score is the
mean log-probability of the query's own tokens as that question. A passage that states what the question asks
about makes the question likely; one on a neighbouring subject does not. (The earlier form, the log-odds of "yes"
to "does the passage contain the answer?", ordered the RAG sets worse than retrieval alone; query likelihood
ordered them better: docs/rag.md, "Fourth pass".) Deterministic: no sampling, temperature 0 by construction.
Cost: one prompt evaluation per document (about 100-400 tokens each), so rerank tens of candidates, not thousands.

    from ondevice.rag.rerank import rerank
    rerank("when is the dentist?", ["Tooth cleaning on Tuesday 9 April.", "The museum reopens in autumn."])
    # -> [(0, -4.76), (1, -5.71)]
"""

from __future__ import annotations

from typing import Sequence

from ondevice.errors import InvalidInput

PROMPT = "{passage}\n\nWrite one question that this text answers."
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
    """Mean log-probability of the query's tokens as the question the model writes after reading `document`."""
    prompt = llm.render_chat([{"role": "user", "content": PROMPT.format(passage=document[:max_chars])}])
    question = llm.tokenize(query.strip(), add_special=False)[:llm.n_ctx // 2]
    passage = llm.tokenize(prompt, add_special=False)
    # a passage too long for the context loses its start, never the question being scored
    passage = passage[max(0, len(passage) + len(question) - (llm.n_ctx - 1)):]
    return llm.mean_logprob(passage, question)
