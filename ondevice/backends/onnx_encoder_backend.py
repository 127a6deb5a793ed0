"""ONNX encoder models (sentence embeddings) through onnxruntime, with a HF `tokenizers` tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from ondevice.machine.autoconfig import resolve_onnx_device
from ondevice.backends.base import Backend
from ondevice.errors import InvalidModelFile, UnsupportedOperation
from ondevice.models.model_info import ModelInfo
from ondevice.backends.options import RuntimeOptions
from ondevice.machine.providers import inference_session
from ondevice.models.store import ModelRef

DEFAULT_MAX_LENGTH = 256
BATCH_SIZE = 32


def _onnx_file(path: Path) -> Path:
    if path.is_file():
        return path
    for name in ("model.onnx", "model_quantized.onnx"):
        if (path / name).exists():
            return path / name
    return sorted(path.glob("*.onnx"))[0]


class OnnxEncoderBackend(Backend):
    """Mean-pooled, L2-normalised sentence embeddings from an ONNX encoder (BERT-style)."""

    name = "onnx-encoder"
    formats = ("onnx-encoder",)
    options = frozenset({"embedding"})

    def __init__(self, ref: ModelRef, info: ModelInfo, options: RuntimeOptions):
        super().__init__(ref, info, options)
        from tokenizers import Tokenizer

        folder = ref.path if ref.path.is_dir() else ref.path.parent
        choice = resolve_onnx_device(options.device)

        def session_options() -> ort.SessionOptions:
            so = ort.SessionOptions()
            if options.threads:
                so.intra_op_num_threads = options.threads
            return so

        try:
            # A provider that cannot take the model falls back to the CPU provider with one warning.
            self._session, provider, note = inference_session(str(_onnx_file(ref.path)), session_options,
                                                              choice.provider, choice.kind)
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:
            raise InvalidModelFile(f"{ref.path}: could not load ONNX encoder ({exc})") from None
        self.device = provider
        self.device_note = choice.note or note  # why the requested provider is not the one used ("" when it is)
        self.n_ctx = min(options.n_ctx or DEFAULT_MAX_LENGTH, info.context_length or DEFAULT_MAX_LENGTH)
        self._tokenizer.enable_truncation(self.n_ctx)
        pad_id = self._pad_id(folder)
        self._tokenizer.enable_padding(pad_id=pad_id)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._outputs = [o.name for o in self._session.get_outputs()]

    @staticmethod
    def _pad_id(folder: Path) -> int:
        config = folder / "config.json"
        return int(json.loads(config.read_text()).get("pad_token_id") or 0) if config.exists() else 0

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special).ids)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._tokenizer.decode(list(tokens))

    def _no_generation(self) -> UnsupportedOperation:
        folder = self.ref.path if self.ref.path.is_dir() else self.ref.path.parent
        return UnsupportedOperation(f"{folder} has no genai_config.json, so it is read as an ONNX encoder "
                                    f"(embeddings only); to generate text, an ONNX folder needs onnxruntime-genai's "
                                    f"genai_config.json beside its model.onnx")

    def stream(self, prompt, params):
        raise self._no_generation()

    def render_chat(self, messages: list[dict]) -> str:
        raise self._no_generation()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), BATCH_SIZE):
            encodings = self._tokenizer.encode_batch(list(texts[start:start + BATCH_SIZE]))
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            outputs = dict(zip(self._outputs, self._session.run(None, {k: v for k, v in feeds.items()
                                                                        if k in self._inputs})))
            rows.append(sentence_vectors(outputs, mask))
        return np.concatenate(rows).astype(np.float32)

    def close(self) -> None:
        self._session = None


def sentence_vectors(outputs: dict, mask: np.ndarray) -> np.ndarray:
    """One L2-normalised vector per text from an encoder's outputs: its own `sentence_embedding` if it has one,
    else the mean of `last_hidden_state` over the attention mask (sentence-transformers' mean pooling)."""
    if "sentence_embedding" in outputs:
        pooled = outputs["sentence_embedding"]
    else:
        hidden = outputs.get("last_hidden_state", next(iter(outputs.values())))
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
