"""Shape probes: GGUF files with the exact shapes of 7-10B models and random weights, to measure them here.

Decode speed and memory depend on tensor shapes and quant types, not on weight values. A probe has the named
model's architecture metadata and tensor table, a minimal vocabulary (dummy pieces, but the full vocab *size*, so
the embedding and output matrices are the real size), and random blocks written directly in the quantised format
(no f16 intermediate): random quant bytes with small finite f16 scales, so activations and logits stay finite.
Probes are cached under `store_dir()/probes/` and reused.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ondevice.errors import InvalidInput
from ondevice.models.model_info import ModelInfo
from ondevice.models.store import store_dir
from quantize.gguf_writer import TensorPlan, plan_nbytes, write_gguf

from bench.ftype import assign_types, quantized_info

PROBE_FORMAT_VERSION = 1  # bump when data or metadata change (a changed tensor table is caught by ensure_probe)


def _shape(name: str, arch: str, n_layers: int, n_embd: int, n_ff: int, n_heads: int, n_kv_heads: int,
           head_dim: int, vocab_size: int, context_length: int, rope_theta: float, norm_eps: float,
           **facts) -> ModelInfo:
    return ModelInfo.from_shapes(name, arch, n_layers=n_layers, n_embd=n_embd, n_ff=n_ff, n_heads=n_heads,
                                 n_kv_heads=n_kv_heads, head_dim=head_dim, vocab_size=vocab_size,
                                 context_length=context_length, rope_theta=rope_theta, norm_eps=norm_eps, **facts)


# The probe shapes, as ModelInfos (architecture facts as llama.cpp's GGUF metadata states them).
PROBES: dict[str, ModelInfo] = {
    s.name: s for s in (
        _shape("llama3-8b", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 8192, 500000.0, 1e-5),
        _shape("qwen2.5-7b", "qwen2", 28, 3584, 18944, 28, 4, 128, 152064, 32768, 1000000.0, 1e-6, qkv_bias=True),
        _shape("mistral-7b", "llama", 32, 4096, 14336, 32, 8, 128, 32768, 32768, 1000000.0, 1e-5),
        _shape("gemma2-9b", "gemma2", 42, 3584, 14336, 16, 8, 256, 256000, 8192, 10000.0, 1e-6,
               tied_embeddings=True, sliding_window=4096,
               arch_config={"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}),
    )
}


# Quant types a probe can be written in: those whose tensor mix (`bench.ftype.assign_types`, llama.cpp's rules)
# uses only types with a scale layout in _SCALES below.
PROBE_QUANTS = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K")

# Offsets of the f16 scale fields inside one block, and the value written there. The values keep the effective
# weights around 0.01-0.03 (like trained weights), so K/V fit in an f16 cache and logits stay finite.
_SCALES: dict[str, list[tuple[int, float]]] = {
    "Q4_0": [(0, 5e-3)], "Q4_1": [(0, 3e-3), (2, -2e-2)], "Q5_0": [(0, 2e-3)], "Q5_1": [(0, 1.5e-3), (2, -2e-2)],
    "Q8_0": [(0, 2e-4)], "Q3_K": [(108, 1e-3)], "Q4_K": [(0, 1e-4), (2, 1e-4)], "Q5_K": [(0, 5e-5), (2, 5e-5)],
    "Q6_K": [(208, 2e-5)],
}


def check_probe_args(name: str, quant: str) -> tuple[ModelInfo, str]:
    """The shapes and canonical quant name for a probe, or InvalidInput naming the choices."""
    if name not in PROBES:
        raise InvalidInput(f"unknown probe {name!r}; choose one of: {', '.join(PROBES)}")
    key = quant.upper()
    if key not in PROBE_QUANTS:
        raise InvalidInput(f"unknown quant type {quant!r} for a probe; choose one of: {', '.join(PROBE_QUANTS)}")
    return PROBES[name], key


def tensor_plan(spec: ModelInfo, quant: str) -> list[TensorPlan]:
    """Every tensor of a GGUF of these shapes at `quant`, in file order, with llama.cpp's names, shapes and the
    per-tensor types llama.cpp's quantiser would choose (`bench.ftype.assign_types`)."""
    return [TensorPlan(t.name, (t.ne0,) if t.ne1 == 1 else (t.ne0, t.ne1), t.type)
            for t in assign_types(spec, quant)]


def n_params(spec: ModelInfo) -> int:
    """Parameter count of the named model (Llama-3-8B: 8,030,261,248)."""
    return sum(t.n_elements for t in tensor_plan(spec, "Q8_0"))


def probe_nbytes(spec: ModelInfo, quant: str) -> int:
    """Bytes of tensor data a probe of this quant holds (the file adds metadata and alignment padding)."""
    return plan_nbytes(tensor_plan(spec, quant))


def probe_info(name_or_info: str | ModelInfo, quant: str) -> ModelInfo:
    """The ModelInfo of a GGUF with these shapes at `quant`, from shapes alone (no file is read or written).

    `name_or_info` is a probe name (`PROBES`) or any shape-only ModelInfo (`ModelInfo.from_shapes`, a row of
    `bench.families`). The result carries the per-tensor types and bytes llama.cpp's quantiser would give
    (`bench.ftype.quantized_info`), so `ondevice.models.memory` can estimate its RAM and its bytes read per decoded token;
    `size_bytes` is the tensor data (a real file adds a few MB of vocabulary metadata). Named "<name> <QUANT>".
    """
    if isinstance(name_or_info, str):
        if name_or_info not in PROBES:
            raise InvalidInput(f"unknown probe {name_or_info!r}; choose one of: {', '.join(PROBES)}")
        name_or_info = PROBES[name_or_info]
    info = quantized_info(name_or_info, quant)
    return replace(info, name=f"{name_or_info.name} {info.quant}", format="gguf")


def probe_path(spec: ModelInfo, quant: str) -> Path:
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


def _add_metadata(writer, spec: ModelInfo, quant: str) -> None:
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
    writer.add_layer_norm_rms_eps(spec.norm_eps)
    writer.add_vocab_size(spec.vocab_size)
    if "attn_logit_softcapping" in spec.arch_config:
        writer.add_attn_logit_softcapping(spec.arch_config["attn_logit_softcapping"])
        writer.add_final_logit_softcapping(spec.arch_config["final_logit_softcapping"])
        writer.add_sliding_window(spec.sliding_window)
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


def _tensor_data(plan: list[TensorPlan], buffers: dict[str, np.ndarray]) -> Iterator[np.ndarray]:
    for t in plan:
        if t.type == "F32":  # norms at 1, biases at 0: the identity the graph expects
            yield np.full(t.shape[::-1], 0.0 if t.name.endswith(".bias") else 1.0, dtype=np.float32)
        else:
            yield buffers[t.type][:t.nbytes]


def write_probe(spec: ModelInfo, quant: str, path: Path, seed: int = 0) -> Path:
    """Write the probe GGUF to `path` (via a temporary name, renamed when complete) and return the path."""
    quant = quant.upper()
    plan = tensor_plan(spec, quant)
    buffers = _block_buffers(plan, seed)
    return write_gguf(path, spec.architecture, plan, lambda writer: _add_metadata(writer, spec, quant),
                      _tensor_data(plan, buffers))


def ensure_probe(name: str, quant: str, on_status: Callable[[str], None] | None = None) -> Path:
    """The cached probe file for (name, quant), written on first use (a few GB; about a minute).

    A cached file whose tensor table differs from today's plan (the type rules changed) is written again.
    """
    spec, quant = check_probe_args(name, quant)
    path = probe_path(spec, quant)
    if path.exists() and _matches_plan(path, spec, quant):
        return path
    if on_status:
        on_status(f"writing {spec.name} {quant} probe ({probe_nbytes(spec, quant) / 2**30:.2f} GiB, once)")
    return write_probe(spec, quant, path)


def _matches_plan(path: Path, spec: ModelInfo, quant: str) -> bool:
    from ondevice.errors import InvalidModelFile
    from ondevice.models.gguf_file import read_gguf

    try:
        table = [(t.name, t.type) for t in read_gguf(path).tensors]
    except InvalidModelFile:
        return False
    return table == [(t.name, t.type) for t in tensor_plan(spec, quant)]


def scaled(spec: ModelInfo, **changes) -> ModelInfo:
    """A copy of `spec` with some shapes changed (tests write small probes of each architecture)."""
    return replace(spec, **changes)
