"""The length-bucketed ONNX encoder behind RAG's default embedder (`BucketedEncoder`) and its session settings.

Every text is tokenised once, the texts are sorted by token count and cut into batches of similar length, so a
batch is padded to its own longest text rather than to the longest of a random 64. Used by
`ondevice.rag.embedder.load_embedder` (the default MiniLM on the CPU) and by `ondevice.rag.static` (distilling the
static table). Settings measured side by side in docs/rag.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.backends.onnx_encoder_backend import sentence_vectors

# The encoder's sequence cap in word pieces. all-MiniLM-L6-v2 was trained on 128 and sentence-transformers caps it at
# 256; chunks of ~900 characters are ~195 pieces at the median here, 15% are longer than 256 (code, symbols).
# Measured (docs/rag.md): a cap of 128 embeds 2.7x faster than the plain loop but changes long chunks' vectors
# (cosine down to 0.59 against the 256 cap) and lost paraphrase recall, so the cap stays at 256.
SEQUENCE_CAP = 256
# Word pieces per batch (texts x padded length), measured side by side (docs/rag.md): 4,096 was 1.64x the plain loop
# per CPU-second, 8,192 1.47x; smaller batches keep the activations in cache.
BATCH_TOKENS = 4096
MAX_BATCH_TEXTS = 128


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
        return sentence_vectors(outputs, mask)  # the encoder backend's own pooling

    def close(self) -> None:
        self._session_ = None
