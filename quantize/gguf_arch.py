"""Per-architecture knowledge for writing GGUF: the llama.cpp architecture, its hyperparameter keys and the tensor
edits llama.cpp expects. Handlers register by Hugging Face `model_type` in ARCHITECTURES; the writer looks them up.

Tensor names map through gguf's own `TensorNameMap` (the table llama.cpp's converter uses), so a handler only
states what differs from "copy the tensor under its GGUF name".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gguf
import numpy as np

from ondevice.errors import InvalidInput
from ondevice.models.model_info import ModelInfo


# Hyperparameters come as a ModelInfo (`ondevice.models.model_info.hf_config_info` of the config.json); architecture
# specifics not in its fields are read from `ModelInfo.arch_config`, the text config itself.
# A tensor edit: (HF tensor name, data as float32, hparams) -> data. Shapes never change, so the writer can
# declare every tensor's size before reading any weights.
TensorEdit = Callable[[str, np.ndarray, ModelInfo], np.ndarray]


def _write_common(writer: gguf.GGUFWriter, hp: ModelInfo) -> None:
    writer.add_block_count(hp.n_layers)
    writer.add_context_length(hp.context_length or 2048)
    writer.add_embedding_length(hp.n_embd)
    writer.add_feed_forward_length(hp.n_ff)
    writer.add_head_count(hp.n_heads)
    writer.add_head_count_kv(hp.n_kv_heads)
    writer.add_layer_norm_rms_eps(hp.norm_eps)
    writer.add_rope_freq_base(hp.rope_theta)
    writer.add_vocab_size(hp.vocab_size)
    if hp.head_dim != hp.n_embd // hp.n_heads:  # llama.cpp assumes n_embd / n_head unless told
        writer.add_key_length(hp.head_dim)
        writer.add_value_length(hp.head_dim)
    _write_rope_scaling(writer, hp.arch_config.get("rope_scaling"))


def _write_rope_scaling(writer: gguf.GGUFWriter, scaling: dict | None) -> None:
    if not scaling:
        return
    kind, factor = scaling.get("rope_type", scaling.get("type")), scaling.get("factor")
    if kind == "linear" and factor:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(factor))
    elif kind == "yarn" and factor:
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(factor))
        writer.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
    elif kind not in (None, "default"):
        raise InvalidInput(f"rope scaling {kind!r} is not supported by this converter")


def _permute_for_rope(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF llama stores q/k rows as two rotary halves per head; llama.cpp's llama graph rotates adjacent pairs.

    Same reordering as llama.cpp's convert_hf_to_gguf `permute` (rows only; biases permute the same way).
    """
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _llama_edit(name: str, data: np.ndarray, hp: ModelInfo) -> np.ndarray:
    if name.endswith("self_attn.q_proj.weight") or name.endswith("self_attn.q_proj.bias"):
        return _permute_for_rope(data, hp.n_heads)
    if name.endswith("self_attn.k_proj.weight") or name.endswith("self_attn.k_proj.bias"):
        return _permute_for_rope(data, hp.n_kv_heads)
    return data


def _no_edit(name: str, data: np.ndarray, hp: ModelInfo) -> np.ndarray:
    return data


def _gemma_edit(name: str, data: np.ndarray, hp: ModelInfo) -> np.ndarray:
    # Gemma's RMSNorm computes x * (1 + w); llama.cpp's computes x * w, so store w + 1 (all norms, q/k norms too).
    # The sqrt(n_embd) embedding scale is applied by llama.cpp's gemma3 graph itself: embeddings stay as they are.
    if name.endswith("norm.weight"):
        return data + 1.0
    return data


def _llama_hparams(writer: gguf.GGUFWriter, hp: ModelInfo) -> None:
    _write_common(writer, hp)
    writer.add_rope_dimension_count(hp.head_dim)


def _gemma3_hparams(writer: gguf.GGUFWriter, hp: ModelInfo) -> None:
    _write_common(writer, hp)
    if hp.head_dim == hp.n_embd // hp.n_heads:  # else _write_common wrote them; llama.cpp's gemma3 wants them always
        writer.add_key_length(hp.head_dim)
        writer.add_value_length(hp.head_dim)
    if hp.arch_config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(float(hp.arch_config["final_logit_softcapping"]))
    if hp.sliding_window:
        writer.add_sliding_window(hp.sliding_window)
        # Local (sliding) layers use their own rope base; llama.cpp reads it from this key.
        writer.add_rope_freq_base_swa(float(hp.arch_config.get("rope_local_base_freq", 10000.0)))
        layer_types = hp.arch_config.get("layer_types")
        if layer_types:
            writer.add_sliding_window_pattern([t == "sliding_attention" for t in layer_types])
    scalar = hp.arch_config.get("query_pre_attn_scalar")
    if scalar and int(scalar) != hp.head_dim and hp.n_layers != 62:
        # llama.cpp's gemma3 scales queries by 1/sqrt(head_dim) (1/sqrt(n_embd/n_head) for the 27B); any other
        # query_pre_attn_scalar would silently give different attention.
        raise InvalidInput(f"gemma3 with query_pre_attn_scalar={scalar} != head_dim={hp.head_dim} is not "
                           f"supported by llama.cpp")


@dataclass(frozen=True)
class ArchHandler:
    """How one HF model_type becomes one llama.cpp architecture."""

    model_type: str
    gguf_arch: gguf.MODEL_ARCH
    write_hparams: Callable[[gguf.GGUFWriter, ModelInfo], None]
    edit: TensorEdit = _no_edit
    # HF tensors with no GGUF counterpart (rotary caches some checkpoints save)
    skip_suffixes: tuple[str, ...] = ("rotary_emb.inv_freq",)

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.gguf_arch]

    def tensor_name_map(self, n_layers: int) -> gguf.TensorNameMap:
        return gguf.get_tensor_name_map(self.gguf_arch, n_layers)


ARCHITECTURES: dict[str, ArchHandler] = {
    h.model_type: h
    for h in (
        ArchHandler("llama", gguf.MODEL_ARCH.LLAMA, _llama_hparams, _llama_edit),
        ArchHandler("qwen2", gguf.MODEL_ARCH.QWEN2, _write_common),
        ArchHandler("gemma3_text", gguf.MODEL_ARCH.GEMMA3, _gemma3_hparams, _gemma_edit),
    )
}


def handler_for(config: dict) -> ArchHandler:
    """The handler for a config.json; InvalidInput naming the supported model types if there is none."""
    model_type = str(config.get("model_type", "unknown"))
    handler = ARCHITECTURES.get(model_type)
    if handler is None:
        raise InvalidInput(f"architecture {model_type!r} is not supported by the GGUF converter; supported: "
                           f"{', '.join(sorted(ARCHITECTURES))}")
    return handler
