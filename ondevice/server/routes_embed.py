"""POST /v1/embeddings: the embedding model (default the embedded MiniLM) on its own worker thread."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request

from ondevice.server import schemas
from ondevice.server.errors import APIError
from ondevice.server.state import ServerState

router = APIRouter()
MAX_INPUTS = 2048  # as OpenAI


def _texts(inp) -> list[str]:
    texts = [inp] if isinstance(inp, str) else list(inp)
    if not texts:
        raise APIError(400, "input must not be empty.", "invalid_value", "input")
    if not all(isinstance(t, str) for t in texts):
        raise APIError(400, "Token-id input is not supported: send the text itself.", "unsupported_parameter",
                       "input")
    if len(texts) > MAX_INPUTS:
        raise APIError(400, f"At most {MAX_INPUTS} inputs per request.", "invalid_value", "input")
    if any(not t for t in texts):
        raise APIError(400, "input must not contain empty strings.", "invalid_value", "input")
    return texts


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # little-endian float32, what the openai client decodes
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(float).tolist()


@router.post("/v1/embeddings", response_model=None)
async def embeddings(body: schemas.EmbeddingRequest, request: Request):
    state: ServerState = request.app.state.server
    state.check_embed_model(body.model)
    texts = _texts(body.input)
    async with await state.embed_worker.acquire():
        vectors, n_tokens = await state.embed_worker.call(state.embed, texts)
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise APIError(400, f"{state.embed_model_id} gives {vectors.shape[1]}-dimensional vectors; it cannot "
                            f"shorten them to {body.dimensions}.", "invalid_value", "dimensions")
    data = [schemas.EmbeddingItem(index=i, embedding=_encode(v, body.encoding_format)) for i, v in enumerate(vectors)]
    return schemas.EmbeddingList(data=data, model=state.embed_model_id,
                                 usage=schemas.Usage(prompt_tokens=n_tokens, total_tokens=n_tokens)).model_dump()
