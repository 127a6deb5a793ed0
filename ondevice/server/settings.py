"""One settings object for the server: the CLI builds it from flags, tests and embedders build it directly."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ondevice.backends.options import MIN_CTX
from ondevice.models.store import DEFAULT_EMBED_MODEL, DEFAULT_MODEL


class ServerSettings(BaseModel):
    """What to serve and how. Defaults are the safe ones: loopback only, no CORS, a bounded queue."""

    model: str = Field(DEFAULT_MODEL, description="Alias or path of the chat/completion model.")
    embed_model: str | None = Field(DEFAULT_EMBED_MODEL,
                                    description="Alias or path of the embedding model (loaded on first use).")
    rag_index: str | None = Field(None, description="Path of an `ondevice rag` index; enables /v1/rag/query.")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    api_key: str | None = Field(None, description="When set, every /v1 request needs `Authorization: Bearer KEY`.")
    max_queue: int = Field(16, ge=0, description="Requests allowed to wait for the model; more get 429.")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get 413.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins; empty = CORS off.")
    n_ctx: int | None = Field(None, ge=MIN_CTX)
    threads: int | None = Field(None, ge=1)
    device: str = "auto"
    kv_type: str = Field("f16", description="KV cache element type of the served model (RuntimeOptions.kv_type).")
    cache_reuse: str = Field("exact", description="Which cached positions a prompt may keep (RuntimeOptions.cache_reuse).")
    tool_format: str = Field("auto", description="Tool-call format: auto (from the chat template) or a name from "
                                                 "ondevice.decoding.tool_formats.FORMATS.")
    default_max_tokens: int = Field(512, ge=1, description="max_tokens when a request gives none.")
    remote: str | None = Field(None, description="A remote OpenAI-compatible model (remote:MODEL@URL or a URL) that "
                                                 "answers what the routing policies send away (ondevice.Router).")
    route: str = Field("privacy,size", description="Routing policies with --remote: privacy, size, confidence.")
    parallel: int | None = Field(None, ge=1, le=64, description="Requests decoded together in one batch (slots); "
                                 "None sizes it from RAM (up to 4); 1 = one request at a time.")

    max_stored_responses: int = Field(256, ge=0, description="Responses API responses kept for "
                                      "previous_response_id and GET (least recently used evicted); 0 keeps none.")
    ollama_port: int | None = Field(None, ge=0, le=65535, description="Also answer on 127.0.0.1:PORT (Ollama's "
                                    "default port 11434 with `serve --ollama`), the same app, so apps find it.")

    model_config = {"extra": "forbid"}
