"""POST /v1/rerank: a query and documents -> relevance scores and indices (the Jina/Cohere shape llama-server uses).

The scores come from the same local reranker RAG uses (`ondevice.rag.rerank`: the served model's log-odds that a
passage answers the question), run on the served model's own thread while holding its lease, so a reranking never
interleaves with a generation on the same context. Bad input is an OpenAI-shaped 400.
"""

from __future__ import annotations

from typing import Any, Union

from fastapi import APIRouter
from fastapi import Request as HTTPRequest
from pydantic import BaseModel, Field

from ondevice.server.errors import APIError

router = APIRouter()
MAX_DOCUMENTS = 256  # one prompt evaluation per document: a request beyond this is a batch job, not an API call


class RerankRequest(BaseModel):
    model: str
    query: str = Field(min_length=1)
    documents: list[Union[str, dict[str, Any]]] = Field(min_length=1)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = True


def _texts(documents: list) -> list[str]:
    texts = []
    for i, doc in enumerate(documents):
        text = doc if isinstance(doc, str) else doc.get("text")
        if not isinstance(text, str):
            raise APIError(400, f"documents[{i}] must be a string or {{'text': ...}}", "invalid_value", "documents")
        texts.append(text)
    if len(texts) > MAX_DOCUMENTS:
        raise APIError(400, f"At most {MAX_DOCUMENTS} documents per request (this server's limit: one model pass "
                            f"per document).", "invalid_value", "documents")
    return texts


@router.post("/v1/rerank")
async def rerank_documents(body: RerankRequest, request: HTTPRequest):
    try:
        from ondevice.rag.rerank import rerank  # RAG's one reranker
    except ImportError:
        raise APIError(501, "reranking needs the rag extra (pip install 'ondevice-toolkit[rag]')",
                       "not_implemented", None) from None
    state = request.app.state.server
    state.check_model(body.model)
    texts = _texts(body.documents)
    async with await state.llm.acquire():
        ranked = await state.llm.call(rerank, body.query, texts, state.model, body.top_n)
    results = [{"index": i, "relevance_score": score, **({"document": {"text": texts[i]}}
                                                          if body.return_documents else {})} for i, score in ranked]
    tokens = sum(len(t) for t in texts) // 4  # a rough count: the API reports usage, the model has no billing
    return {"object": "list", "model": state.model_id, "results": results, "usage": {"total_tokens": tokens}}
