"""The embedding model behind an index: any model `ondevice.load` can run that has `embed(texts)`.

The default, `minilm-l6` (all-MiniLM-L6-v2), ships as a Hugging Face folder; `ondevice.load` converts it once to
ONNX int8 through the quantize package and caches it. ONNX encoder folders and GGUF embedding models work too.

Throughput (issue 27): an ONNX encoder on the CPU is run by `BucketedEncoder` instead of the generic backend loop.
Every text is tokenised once, the texts are sorted by token count and cut into batches of similar length, so a
batch is padded to its own longest text rather than to the longest of a random 64 (chunks of real files range from
20 to 500+ word pieces). Its settings (`SEQUENCE_CAP`, `BATCH_TOKENS`, the session options) were chosen by the
side-by-side measurements in docs/rag.md. Vectors match the plain path within int8 rounding (tested: cosine >=
0.999 for every text); the model name recorded in the index is unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ondevice.rag.bucketed import SEQUENCE_CAP, BucketedEncoder, SessionSettings  # noqa: F401  (public here)
from ondevice.models.store import DEFAULT_EMBED_MODEL

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


def load_embedder(name: str | None = None, threads: int | None = None, fast: bool = True) -> Embedder:
    """Load an embedding model by alias or path (GGUF models are opened in embedding mode).

    fast: run an ONNX encoder on the CPU through `BucketedEncoder` (same vectors within int8 rounding, about
    twice the throughput on real chunks); False keeps the generic backend loop (the plain path)."""
    import ondevice

    name = str(name or DEFAULT_EMBED_MODEL)
    from ondevice.rag.static import STATIC_SUFFIX, load_static

    if name.endswith(STATIC_SUFFIX):
        return Embedder(load_static(name[:-len(STATIC_SUFFIX)], threads), name)
    ref = ondevice.resolve(name)
    options = {"embedding": True} if ref.format == "gguf" else {}
    model = ondevice.load(name, threads=threads, **options)
    backend = getattr(model, "_backend", None)
    if fast and getattr(backend, "name", "") == "onnx-encoder" and getattr(backend, "device", "") == \
            "CPUExecutionProvider":
        folder = Path(backend.ref.path)
        model.close()
        return Embedder(BucketedEncoder(folder, SessionSettings(threads=threads),
                                        max_length=min(SEQUENCE_CAP, backend.n_ctx)), _name(ref))
    return Embedder(model, _name(ref))


def _name(ref) -> str:
    """An embedder's name: the alias, else the file or folder, else (a remote model) its `remote:` name."""
    return ref.alias or (ref.name if ref.path is None else str(ref.path))


def as_embedder(model: TextEmbedder | Embedder) -> Embedder:
    """Accept any object with `name` and `embed(texts)` (tests, custom models) and give it counters."""
    if isinstance(model, Embedder):
        return model
    return Embedder(model, str(getattr(model, "name")))
