"""GET /v1/models and GET /health (the latter answers even while the model is busy, and needs no API key)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request

from ondevice.server import schemas
from ondevice.server.state import ServerState

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    state: ServerState = request.app.state.server
    cards = [schemas.ModelCard(id=state.model_id, created=state.created)]
    if state.embed_model_id:
        cards.append(schemas.ModelCard(id=state.embed_model_id, created=state.created))
    return schemas.ModelList(data=cards).model_dump()


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict:
    state: ServerState = request.app.state.server
    if state.embed_model_id and model_id == state.embed_model_id:
        return schemas.ModelCard(id=model_id, created=state.created).model_dump()
    state.check_model(model_id)
    return schemas.ModelCard(id=state.model_id, created=state.created).model_dump()


@router.get("/health")
async def health(request: Request) -> dict:
    state: ServerState = request.app.state.server
    worker = state.llm
    return {
        "status": "ok", "model": state.model_id, "embed_model": state.embed_model_id, "rag": state.rag is not None,
        "busy": worker.busy or (state.batcher is not None and state.batcher.busy),
        "waiting": worker.waiting + (state.batcher.waiting if state.batcher is not None else 0),
        "max_queue": worker.max_queue, "batch": state.batcher.info() if state.batcher is not None else None,
        "stats": dataclasses.asdict(worker.stats),
        "prefix_cache": state.prefix_cache.to_dict() if state.prefix_cache is not None else None,
        "routing": state.router.stats.summary() if state.router is not None else None,
    }
