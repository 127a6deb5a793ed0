"""With `--rag-index`: POST /v1/rag/query (answer + citations) and opt-in grounding of chat requests.

The index lives on the LLM worker's thread (it was opened there) and every use holds the LLM's lease, so retrieval
and answering queue like any other request.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ondevice.server import schemas
from ondevice.server.errors import APIError
from ondevice.server.state import ServerState

router = APIRouter()
DEFAULT_ANSWER_TOKENS = 160


def _citations(sources) -> list[schemas.Citation]:
    from ondevice.rag.answer import display_path

    return [schemas.Citation(source=f"[{i}] {display_path(s.path)}{':' + s.span if s.span else ''}", text=s.text,
                             score=s.score) for i, s in enumerate(sources, start=1)]


def _require_index(state: ServerState):
    if state.rag is None:
        raise APIError(400, "This server has no RAG index: start it with --rag-index.", "rag_unavailable", "rag")
    return state.rag


@router.post("/v1/rag/query")
async def rag_query(body: schemas.RagQueryRequest, request: Request) -> dict:
    state: ServerState = request.app.state.server
    index = _require_index(state)
    if body.model is not None:
        state.check_model(body.model)
    max_tokens = body.max_tokens or DEFAULT_ANSWER_TOKENS
    async with await state.llm.acquire():
        answer = await state.llm.call(lambda: index.ask(body.query, model=state.model, k=body.k,
                                                        max_tokens=max_tokens, mode=body.mode,
                                                        lead_in=body.lead_in, rerank=body.rerank))
    if answer.mode == "extractive":  # cite the quoted sentences' exact lines, with the chunk they came from
        citations = [schemas.Citation(source=str(c), text=s.text, score=s.score)
                     for c, s in zip(answer.citations, answer.sources)]
    else:
        citations = _citations(answer.sources)
    quotes = [schemas.RagQuote(source=str(c), text=q.text, path=q.path, start_line=q.start_line,
                               end_line=q.end_line, page=q.page) for q, c in zip(answer.quotes, answer.citations)]
    return schemas.RagAnswer(answer=answer.answer, citations=citations, model=state.model_id, mode=answer.mode,
                             found=answer.found, quotes=quotes, lead_in=answer.lead_in).model_dump()


async def ground(state: ServerState, messages: list[dict], options) -> tuple[list[dict], list[schemas.Citation]]:
    """Put the sources relevant to the last user message into the conversation (system prompt + numbered
    sources), as `ondevice rag ask` does; no relevant source leaves the conversation as it was."""
    from ondevice.rag.answer import build_messages

    index = _require_index(state)
    k = options.k if isinstance(options, schemas.RagOptions) else schemas.RagOptions().k
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if not question.strip():
        raise APIError(400, "Grounding needs a user message to search for.", "invalid_value", "messages")
    async with await state.llm.acquire():
        sources = await state.llm.call(lambda: index.relevant(question, index.search(question, k)))
    if not sources:
        return messages, []
    system, user = build_messages(question, sources)
    history = [m for m in messages if m["role"] != "system"]
    last_user = max(i for i, m in enumerate(history) if m["role"] == "user")
    return [system] + history[:last_user] + [user] + history[last_user + 1:], _citations(sources)
