"""What one server instance holds: its settings, its models and their workers. Lives on `app.state.server`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import ondevice
from ondevice.model import Model
from ondevice.server.errors import APIError
from ondevice.server.response_store import ResponseStore
from ondevice.server.scheduler import ModelWorker
from ondevice.server.settings import ServerSettings

# Snapshots of past contexts kept for prefix reuse: a few conversations' worth, capped in memory (a 135M model's
# cache is ~23 KB per token, an 8B model's 128 KB: 256 MiB holds 2,000 tokens of the latter).
PREFIX_SLOTS = 4
PREFIX_MAX_BYTES = 256 << 20


def _names(given: str, model: Model | None) -> set[str]:
    """Every name a client may use for a served model: as configured, its alias, its file name with and without
    extension."""
    if given.startswith("remote:"):  # a remote model's name is its spec; its URL is no file name
        names = {given}
    else:
        names = {given, Path(given).name, Path(given).stem}
    if model is not None:
        names |= {model.name, model.ref.name}
        if model.ref.path is not None:
            names |= {model.ref.path.name, model.ref.path.stem}
    return {n for n in names if n}


class ServerState:
    """The served models and their one-request-at-a-time workers (one thread each)."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.model: Model | None = None
        self.router = None  # an ondevice.Router over the local model when --remote is given
        self.embedder: Model | None = None
        self.rag = None  # an ondevice.rag.Index when --rag-index is given
        self.prefix_cache = None  # ondevice.backends.cache.PrefixCache of the served model, when it has one
        self.batcher = None  # ondevice.server.batching.Batcher with --parallel N > 1
        self.llm = ModelWorker("llm", settings.max_queue)
        self.embed_worker = ModelWorker("embed", settings.max_queue)
        self.created = int(time.time())
        self.responses = ResponseStore(settings.max_stored_responses)  # the Responses API's `store`

    # --- lifetime (called on the workers' threads) -----------------------------------------------------------
    def load(self) -> None:
        s = self.settings
        self.model = ondevice.load(s.model, n_ctx=s.n_ctx, threads=s.threads, device=s.device,
                                   tool_format=s.tool_format, kv_type=s.kv_type,
                                   cache_reuse=s.cache_reuse)
        keep = getattr(self.model.backend, "keep_prefixes", None)
        if keep is not None:  # requests sharing a prefix with any recent one (system prompt, a conversation) reuse it
            self.prefix_cache = keep(PREFIX_SLOTS, PREFIX_MAX_BYTES)
        if s.rag_index:
            from ondevice.rag import Index  # optional extra: only needed with --rag-index

            self.rag = Index(s.rag_index, create=False, threads=s.threads)  # a typo is an error, not a new index
        self.load_router()
        if self.router is None:  # a routed server answers one request at a time (the router decides per request)
            from ondevice.server.batching import Batcher  # --parallel: decode concurrent requests in one batch

            self.batcher = Batcher.create(self.model, self.llm, s.parallel, s.max_queue)

    def load_router(self) -> None:
        """With --remote: route every generation through `Router(local, remote, policy=route)`. The remote is not
        contacted here, so a remote that is down at start-up only makes answers local (availability)."""
        s = self.settings
        if s.remote:
            spec = s.remote if s.remote.startswith("remote:") else f"remote:{s.remote}"
            self.router = ondevice.Router(self.model, ondevice.load(spec), policy=s.route)

    @property
    def answerer(self):
        """What generations run on: the router when there is one, else the local model."""
        return self.router if self.router is not None else self.model

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        if self.router is not None:
            self.router.remote.close()
        if self.model is not None:
            self.model.close()
        close_rag = getattr(self.rag, "close", None)
        if close_rag:
            close_rag()

    def close_embedder(self) -> None:
        if self.embedder is not None:
            self.embedder.close()

    # --- names ------------------------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.model.name if self.model is not None else self.settings.model

    @property
    def embed_model_id(self) -> str | None:
        return self.settings.embed_model

    def check_model(self, requested: str) -> None:
        if requested not in _names(self.settings.model, self.model):
            raise APIError(404, f"The model {requested!r} does not exist on this server; it serves "
                                f"{self.model_id!r}.", "model_not_found", "model")

    def check_embed_model(self, requested: str) -> None:
        if not self.settings.embed_model:
            raise APIError(404, "This server has no embedding model (start it with --embed-model).",
                           "model_not_found", "model")
        if requested not in _names(self.settings.embed_model, self.embedder):
            raise APIError(404, f"The embedding model {requested!r} does not exist on this server; it serves "
                                f"{self.embed_model_id!r}.", "model_not_found", "model")

    # --- embeddings (on the embed worker's thread) ------------------------------------------------------------
    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors and the number of input tokens. Loads the embedding model on first use (a MiniLM is converted
        to ONNX once, which takes a while; later starts reuse the converted copy)."""
        if self.embedder is None:
            self.embedder = ondevice.load(self.settings.embed_model, threads=self.settings.threads,
                                          device=self.settings.device, embedding=True)
        n_tokens = sum(len(self.embedder.tokenize(t)) for t in texts)
        return self.embedder.embed(texts), n_tokens
