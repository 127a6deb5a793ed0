"""The embedding model behind an index: any model `ondevice.load` can run that has `embed(texts)`.

The default, `minilm-l6` (all-MiniLM-L6-v2), ships as a Hugging Face folder; `ondevice.load` converts it once to
ONNX int8 through the quantize package and caches it. ONNX encoder folders and GGUF embedding models work too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from ondevice.store import DEFAULT_EMBED_MODEL


class TextEmbedder(Protocol):
    """What an index needs from an embedding model. `name` is recorded in the index."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class EmbedStats:
    calls: int = 0
    texts: int = 0
    seconds: float = 0.0


@dataclass
class Embedder:
    """Wraps a loaded model: records its name and dimension and counts the work it does."""

    model: object
    name: str
    stats: EmbedStats = field(default_factory=EmbedStats)
    _dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(np.asarray(self.model.embed(["dimension probe"])).shape[1])  # not counted in stats
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        t0 = time.perf_counter()
        vectors = np.asarray(self.model.embed(list(texts)), dtype=np.float32)
        self.stats.calls += 1
        self.stats.texts += len(texts)
        self.stats.seconds += time.perf_counter() - t0
        self._dim = vectors.shape[1]
        return vectors

    def close(self) -> None:
        close = getattr(self.model, "close", None)
        if close:
            close()


def load_embedder(name: str | None = None, threads: int | None = None) -> Embedder:
    """Load an embedding model by alias or path (GGUF models are opened in embedding mode)."""
    import ondevice

    name = str(name or DEFAULT_EMBED_MODEL)
    ref = ondevice.resolve(name)
    options = {"embedding": True} if ref.format == "gguf" else {}
    model = ondevice.load(name, threads=threads, **options)
    return Embedder(model, ref.alias or (ref.name if ref.path is None else str(ref.path)))


def as_embedder(model: TextEmbedder | Embedder) -> Embedder:
    """Accept any object with `name` and `embed(texts)` (tests, custom models) and give it counters."""
    if isinstance(model, Embedder):
        return model
    return Embedder(model, str(getattr(model, "name")))
