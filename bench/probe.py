"""Shape probes: GGUF files with the exact shapes of 7-10B models and random weights, to measure them here.

Decode speed and memory depend on tensor shapes and quant types, not on weight values. A probe has the named
model's architecture metadata and tensor table, a minimal vocabulary (dummy pieces, but the full vocab *size*, so
the embedding and output matrices are the real size), and random blocks written directly in the quantised format
(no f16 intermediate): random quant bytes with small finite f16 scales, so activations and logits stay finite.
Probes are cached under `store_dir()/probes/` and reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ondevice.errors import InvalidInput
from ondevice.store import store_dir

PROBE_FORMAT_VERSION = 1  # bump when the writer changes what a probe file contains


@dataclass(frozen=True)
class ProbeSpec:
    """Architecture facts of one model, as llama.cpp's GGUF metadata states them."""

    name: str
    arch: str              # general.architecture: llama, qwen2, gemma2
    n_layers: int
    n_embd: int
    n_ff: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    context_length: int
    rope_theta: float
    rms_eps: float
    tied_embeddings: bool = False
    qkv_bias: bool = False   # Qwen2 has biases on Q, K and V
    extra: dict = field(default_factory=dict)  # arch-specific metadata (gemma2 soft-capping, sliding window)


PROBES: dict[str, ProbeSpec] = {
    s.name: s for s in (
        ProbeSpec("llama3-8b", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 8192, 500000.0, 1e-5),
        ProbeSpec("qwen2.5-7b", "qwen2", 28, 3584, 18944, 28, 4, 128, 152064, 32768, 1000000.0, 1e-6,
                  qkv_bias=True),
        ProbeSpec("mistral-7b", "llama", 32, 4096, 14336, 32, 8, 128, 32768, 32768, 1000000.0, 1e-5),
        ProbeSpec("gemma2-9b", "gemma2", 42, 3584, 14336, 16, 8, 256, 256000, 8192, 10000.0, 1e-6,
                  tied_embeddings=True,
                  extra={"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 4096}),
    )
}


# --- quant presets: which GGML type each tensor gets (llama.cpp's llama_tensor_get_type rules, simplified) -----

def _use_more_bits(layer: int, n_layers: int) -> bool:
    """llama.cpp gives attn_v/ffn_down more bits in the first and last eighth and every third layer between."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


@dataclass(frozen=True)
class QuantPreset:
    base: str             # type of most matrices
    output: str           # output.weight (llama.cpp keeps it at Q6_K unless the file is Q8_0 or wider)
    more_bits: str | None = None  # type of attn_v / ffn_down in the `_use_more_bits` layers (the *_M mixes)


QUANTS: dict[str, QuantPreset] = {
    "Q4_0": QuantPreset("Q4_0", "Q6_K"),
    "Q4_1": QuantPreset("Q4_1", "Q6_K"),
    "Q5_0": QuantPreset("Q5_0", "Q6_K"),
    "Q5_1": QuantPreset("Q5_1", "Q6_K"),
    "Q8_0": QuantPreset("Q8_0", "Q8_0"),
    "Q3_K_M": QuantPreset("Q3_K", "Q6_K", "Q4_K"),
    "Q4_K_S": QuantPreset("Q4_K", "Q6_K"),
    "Q4_K_M": QuantPreset("Q4_K", "Q6_K", "Q6_K"),
    "Q5_K_M": QuantPreset("Q5_K", "Q6_K", "Q6_K"),
    "Q6_K": QuantPreset("Q6_K", "Q6_K"),
}

# Offsets of the f16 scale fields inside one block, and the value written there. The values keep the effective
# weights around 0.01-0.03 (like trained weights), so K/V fit in an f16 cache and logits stay finite.
_SCALES: dict[str, list[tuple[int, float]]] = {
    "Q4_0": [(0, 5e-3)], "Q4_1": [(0, 3e-3), (2, -2e-2)], "Q5_0": [(0, 2e-3)], "Q5_1": [(0, 1.5e-3), (2, -2e-2)],
    "Q8_0": [(0, 2e-4)], "Q3_K": [(108, 1e-3)], "Q4_K": [(0, 1e-4), (2, 1e-4)], "Q5_K": [(0, 5e-5), (2, 5e-5)],
    "Q6_K": [(208, 2e-5)],
}


def check_probe_args(name: str, quant: str) -> tuple[ProbeSpec, QuantPreset]:
    """The spec and preset for a probe name and quant type, or InvalidInput naming the choices."""
    if name not in PROBES:
        raise InvalidInput(f"unknown probe {name!r}; choose one of: {', '.join(PROBES)}")
    key = quant.upper()
    if key not in QUANTS:
        raise InvalidInput(f"unknown quant type {quant!r} for a probe; choose one of: {', '.join(QUANTS)}")
    return PROBES[name], QUANTS[key]


@dataclass(frozen=True)
class TensorPlan:
    """One tensor of a probe: GGUF name, ggml shape (ne0 = row length, ne1 = rows) and type name."""

    name: str
    shape: tuple[int, ...]
    type: str

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        import gguf

        if self.type == "F32":
            return self.n_elements * 4
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[self.type]]
        return self.n_elements // block * size


def tensor_plan(spec: ProbeSpec, quant: str) -> list[TensorPlan]:
    """Every tensor of the probe, in file order, with llama.cpp's names and shapes for this architecture."""
    preset = QUANTS[quant.upper()]
    d, q_dim, kv_dim = spec.n_embd, spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim
    plan = [TensorPlan("token_embd.weight", (d, spec.vocab_size), preset.base),
            TensorPlan("output_norm.weight", (d,), "F32")]
    if not spec.tied_embeddings:
        plan.append(TensorPlan("output.weight", (d, spec.vocab_size), preset.output))
    for i in range(spec.n_layers):
        more = preset.more_bits if preset.more_bits and _use_more_bits(i, spec.n_layers) else preset.base
        b = f"blk.{i}."
        plan += [TensorPlan(b + "attn_norm.weight", (d,), "F32"),
                 TensorPlan(b + "attn_q.weight", (d, q_dim), preset.base),
                 TensorPlan(b + "attn_k.weight", (d, kv_dim), preset.base),
                 TensorPlan(b + "attn_v.weight", (d, kv_dim), more),
                 TensorPlan(b + "attn_output.weight", (q_dim, d), preset.base)]
        if spec.qkv_bias:
            plan += [TensorPlan(b + "attn_q.bias", (q_dim,), "F32"), TensorPlan(b + "attn_k.bias", (kv_dim,), "F32"),
                     TensorPlan(b + "attn_v.bias", (kv_dim,), "F32")]
        if spec.arch == "gemma2":
            plan.append(TensorPlan(b + "post_attention_norm.weight", (d,), "F32"))
        plan += [TensorPlan(b + "ffn_norm.weight", (d,), "F32"),
                 TensorPlan(b + "ffn_gate.weight", (d, spec.n_ff), preset.base),
                 TensorPlan(b + "ffn_up.weight", (d, spec.n_ff), preset.base),
                 TensorPlan(b + "ffn_down.weight", (spec.n_ff, d), more)]
        if spec.arch == "gemma2":
            plan.append(TensorPlan(b + "post_ffw_norm.weight", (d,), "F32"))
    return plan


def n_params(spec: ProbeSpec) -> int:
    """Parameter count of the named model (Llama-3-8B: 8,030,261,248)."""
    return sum(t.n_elements for t in tensor_plan(spec, "Q8_0"))


def probe_nbytes(spec: ProbeSpec, quant: str) -> int:
    """Bytes of tensor data a probe of this quant holds (the file adds metadata and alignment padding)."""
    return sum(t.nbytes for t in tensor_plan(spec, quant))


def probe_path(spec: ProbeSpec, quant: str) -> Path:
    """Where the probe for (spec, quant) is cached: store_dir()/probes/<name>-<quant>.v<N>.gguf."""
    folder = store_dir() / "probes"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{spec.name}-{quant.upper()}.v{PROBE_FORMAT_VERSION}.gguf"


# --- writing ------------------------------------------------------------------------------------------------------

def _block_buffers(plan: list[TensorPlan], seed: int) -> dict[str, np.ndarray]:
    """One random uint8 buffer per quant type, as large as that type's largest tensor, with valid scales.

    Tensors of the same type are views of the same buffer: random-but-finite is all a probe needs, and this keeps
    the writer's memory at a few hundred MB however large the model.
    """
    import gguf

    rng = np.random.default_rng(seed)
    largest: dict[str, int] = {}
    for t in plan:
        if t.type != "F32":
            largest[t.type] = max(largest.get(t.type, 0), t.nbytes)
    buffers = {}
    for type_name, nbytes in largest.items():
        _, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
        blocks = rng.integers(0, 256, size=(nbytes // block_bytes, block_bytes), dtype=np.uint8)
        for offset, value in _SCALES[type_name]:
            blocks[:, offset:offset + 2] = np.frombuffer(np.float16(value).tobytes(), dtype=np.uint8)
        buffers[type_name] = blocks.reshape(-1)
    return buffers


def _add_metadata(writer, spec: ProbeSpec, quant: str) -> None:
    import gguf

    writer.add_name(f"{spec.name} shape probe (random weights)")
    writer.add_file_type(int(gguf.LlamaFileType[f"MOSTLY_{quant.upper()}"]))
    writer.add_block_count(spec.n_layers)
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.n_embd)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_heads)
    writer.add_head_count_kv(spec.n_kv_heads)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_rope_freq_base(spec.rope_theta)
    writer.add_layer_norm_rms_eps(spec.rms_eps)
    writer.add_vocab_size(spec.vocab_size)
    if "attn_logit_softcapping" in spec.extra:
        writer.add_attn_logit_softcapping(spec.extra["attn_logit_softcapping"])
        writer.add_final_logit_softcapping(spec.extra["final_logit_softcapping"])
        writer.add_sliding_window(spec.extra["sliding_window"])
    _add_vocab(writer, spec.vocab_size)


def _add_vocab(writer, vocab_size: int) -> None:
    """A minimal SentencePiece-style vocabulary of the right size: <unk>, <s>, </s>, 256 byte pieces, dummies."""
    import gguf

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581t{i}" for i in range(vocab_size - len(tokens))]
    types = np.full(vocab_size, int(gguf.TokenType.NORMAL), dtype=np.int32)
    types[0] = int(gguf.TokenType.UNKNOWN)
    types[1:3] = int(gguf.TokenType.CONTROL)
    types[3:259] = int(gguf.TokenType.BYTE)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * vocab_size)
    writer.add_token_types(types.tolist())
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)


def write_probe(spec: ProbeSpec, quant: str, path: Path, seed: int = 0) -> Path:
    """Write the probe GGUF to `path` (via a temporary name, renamed when complete) and return the path."""
    import gguf

    from ondevice.files import atomic_output, check_free_space

    quant = quant.upper()
    plan = tensor_plan(spec, quant)
    buffers = _block_buffers(plan, seed)
    check_free_space(path, probe_nbytes(spec, quant))
    with atomic_output(path) as partial:
        writer = gguf.GGUFWriter(partial, spec.arch)
        try:
            _add_metadata(writer, spec, quant)
            for t in plan:
                if t.type == "F32":  # norms at 1, biases at 0: the identity the graph expects
                    value = 0.0 if t.name.endswith(".bias") else 1.0
                    writer.add_tensor(t.name, np.full(t.shape[::-1], value, dtype=np.float32))
                    continue
                rows = t.n_elements // t.shape[0]
                data = buffers[t.type][:t.nbytes].reshape(rows, t.nbytes // rows)
                writer.add_tensor(t.name, data, raw_dtype=gguf.GGMLQuantizationType[t.type])
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    return path


def ensure_probe(name: str, quant: str, on_status: Callable[[str], None] | None = None) -> Path:
    """The cached probe file for (name, quant), written on first use (a few GB; about a minute)."""
    spec, _ = check_probe_args(name, quant)
    path = probe_path(spec, quant)
    if path.exists():
        return path
    if on_status:
        on_status(f"writing {spec.name} {quant.upper()} probe ({probe_nbytes(spec, quant) / 2**30:.2f} GiB, once)")
    return write_probe(spec, quant, path)


def scaled(spec: ProbeSpec, **changes) -> ProbeSpec:
    """A copy of `spec` with some shapes changed (tests write small probes of each architecture)."""
    return replace(spec, **changes)
