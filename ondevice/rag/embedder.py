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

from ondevice.store import DEFAULT_EMBED_MODEL

# The encoder's sequence cap in word pieces. all-MiniLM-L6-v2 was trained on 128 and sentence-transformers caps it at
# 256; chunks of ~900 characters are ~195 pieces at the median here, 15% are longer than 256 (code, symbols).
# Measured (docs/rag.md): a cap of 128 embeds 2.7x faster than the plain loop but changes long chunks' vectors
# (cosine down to 0.59 against the 256 cap) and lost paraphrase recall, so the cap stays at 256.
SEQUENCE_CAP = 256
# Word pieces per batch (texts x padded length), measured side by side (docs/rag.md): 4,096 was 1.64x the plain loop
# per CPU-second, 8,192 1.47x; smaller batches keep the activations in cache.
BATCH_TOKENS = 4096
MAX_BATCH_TEXTS = 128


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


@dataclass
class SessionSettings:
    """onnxruntime settings for the encoder session (each measured on its own in docs/rag.md)."""

    threads: int | None = None        # intra-op threads; None: onnxruntime's default (one per core)
    spinning: bool = False            # intra-op threads spin between ops: faster alone, worse on a shared machine
    optimization: str = "all"         # graph optimisation level: basic | extended | all
    memory_arena: bool = True


def _session(onnx_file: Path, settings: SessionSettings):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if settings.threads:
        so.intra_op_num_threads = int(settings.threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                   "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[settings.optimization]
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
    so.enable_cpu_mem_arena = settings.memory_arena
    return ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])


class BucketedEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from an ONNX encoder, batched by length (see module doc)."""

    def __init__(self, folder: Path, settings: SessionSettings | None = None, max_length: int = SEQUENCE_CAP,
                 batch_tokens: int = BATCH_TOKENS, max_batch: int = MAX_BATCH_TEXTS):
        import json

        from tokenizers import Tokenizer

        folder = Path(folder)
        onnx_file = folder if folder.is_file() else folder / "model.onnx"
        folder = onnx_file.parent
        self.settings = settings or SessionSettings()
        self._session_ = _session(onnx_file, self.settings)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(max_length))
        self._tokenizer.no_padding()
        config = folder / "config.json"
        self._pad_id = int(json.loads(config.read_text()).get("pad_token_id") or 0) if config.exists() else 0
        self._inputs = {i.name for i in self._session_.get_inputs()}
        self._outputs = [o.name for o in self._session_.get_outputs()]
        self.max_length, self.batch_tokens, self.max_batch = int(max_length), int(batch_tokens), int(max_batch)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def batches(self, lengths: Sequence[int]) -> list[np.ndarray]:
        """Indices into `lengths`, grouped into batches of similar length within the token budget."""
        order = np.argsort(np.asarray(lengths), kind="stable")
        out: list[np.ndarray] = []
        current: list[int] = []
        for i in order:  # ascending: the text being added is the batch's longest
            if current and (lengths[i] * (len(current) + 1) > self.batch_tokens or len(current) >= self.max_batch):
                out.append(np.array(current))
                current = []
            current.append(int(i))
        if current:
            out.append(np.array(current))
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        result = None
        for batch in self.batches(lengths):
            width = max(lengths[i] for i in batch)
            ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                ids[row, :lengths[i]] = encodings[i].ids
                mask[row, :lengths[i]] = 1
            pooled = self._run(ids, mask)
            if result is None:
                result = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            result[batch] = pooled
        return result if result is not None else np.zeros((0, 0), np.float32)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        outputs = dict(zip(self._outputs, self._session_.run(None, {k: v for k, v in feeds.items()
                                                                     if k in self._inputs})))
        if "sentence_embedding" in outputs:
            pooled = outputs["sentence_embedding"]
        else:
            hidden = outputs.get("last_hidden_state", next(iter(outputs.values())))
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def close(self) -> None:
        self._session_ = None


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
                                        max_length=min(SEQUENCE_CAP, backend.n_ctx)), ref.alias or str(ref.path))
    return Embedder(model, ref.alias or str(ref.path))


def as_embedder(model: TextEmbedder | Embedder) -> Embedder:
    """Accept any object with `name` and `embed(texts)` (tests, custom models) and give it counters."""
    if isinstance(model, Embedder):
        return model
    return Embedder(model, str(getattr(model, "name")))
