"""Which ggml type each tensor gets for a GGUF file type, the way `llama-quantize` decides it.

A "Q4_K_M" file is not all Q4_K: llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp) gives the output
matrix Q6_K, gives attn_v and ffn_down more bits in some layers, and falls back to a legacy type where a row is
not a multiple of the 256-wide k-quant block (Qwen2.5-0.5B's 896). The rules below are that function's, for the
file types listed in `FTYPES`, without an importance matrix; bytes per block come from the `gguf` package's
`GGML_QUANT_SIZES`, so sizes match real files (tests compare with published file sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.errors import InvalidInput
from ondevice.models.model_info import ModelInfo

# file type -> base ggml type of the weight matrices. F16/BF16/F32 files are not mixed.
FTYPES: dict[str, str] = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q6_K": "Q6_K",
    "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q5_1": "Q5_1", "Q5_0": "Q5_0",
    "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_1": "Q4_1", "Q4_0": "Q4_0", "IQ4_XS": "IQ4_XS", "IQ4_NL": "IQ4_NL",
    "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q2_K": "Q2_K",
}
_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q2_K": "IQ4_NL", "Q3_K": "IQ4_NL",
             "IQ4_XS": "IQ4_NL"}


@dataclass(frozen=True)
class Tensor:
    """One tensor: GGUF name, ggml shape (ne0 = row length, ne1 = rows), layer index (-1 outside blocks)."""

    name: str
    ne0: int
    ne1: int = 1
    layer: int = -1
    type: str = "F32"

    @property
    def n_elements(self) -> int:
        return self.ne0 * self.ne1

    @property
    def nbytes(self) -> int:
        return type_bytes(self.type, self.n_elements)


def type_bytes(type_name: str, n_elements: int) -> int:
    """Bytes of `n_elements` values stored as ggml type `type_name` (blocks of the gguf package's sizes)."""
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
    return n_elements // block * size


def check_ftype(ftype: str) -> str:
    """The canonical file-type name, or InvalidInput naming close ones."""
    key = ftype.strip().upper()
    if key in FTYPES:
        return key
    import difflib

    close = difflib.get_close_matches(key, list(FTYPES), n=4, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise InvalidInput(f"unknown quant type {ftype!r}{hint} (choose one of: {', '.join(FTYPES)})")


def tensor_shapes(spec: ModelInfo) -> list[Tensor]:
    """Every tensor of a model with these shapes, llama.cpp names, F32 (types are assigned by `assign_types`)."""
    d, q_dim, kv_dim = spec.n_embd, spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim
    out = [Tensor("token_embd.weight", d, spec.vocab_size), Tensor("output_norm.weight", d)]
    if not spec.tied_embeddings:
        out.append(Tensor("output.weight", d, spec.vocab_size))
    for i in range(spec.n_layers):
        b = f"blk.{i}."
        out.append(Tensor(b + "attn_norm.weight", d, 1, i))
        if spec.architecture == "phi3":  # fused projections
            out.append(Tensor(b + "attn_qkv.weight", d, q_dim + 2 * kv_dim, i))
        else:
            out += [Tensor(b + "attn_q.weight", d, q_dim, i), Tensor(b + "attn_k.weight", d, kv_dim, i),
                    Tensor(b + "attn_v.weight", d, kv_dim, i)]
        out.append(Tensor(b + "attn_output.weight", q_dim, d, i))
        if spec.qkv_bias:
            out += [Tensor(b + "attn_q.bias", q_dim, 1, i), Tensor(b + "attn_k.bias", kv_dim, 1, i),
                    Tensor(b + "attn_v.bias", kv_dim, 1, i)]
        if spec.architecture == "gemma2":
            out.append(Tensor(b + "post_attention_norm.weight", d, 1, i))
        out.append(Tensor(b + "ffn_norm.weight", d, 1, i))
        if spec.architecture == "phi3":
            out.append(Tensor(b + "ffn_up.weight", d, 2 * spec.n_ff, i))
        else:
            out += [Tensor(b + "ffn_gate.weight", d, spec.n_ff, i), Tensor(b + "ffn_up.weight", d, spec.n_ff, i)]
        out.append(Tensor(b + "ffn_down.weight", spec.n_ff, d, i))
        if spec.architecture == "gemma2":
            out.append(Tensor(b + "post_ffw_norm.weight", d, 1, i))
    return out


def _more_bits(i: int, n: int) -> bool:
    """llama.cpp's use_more_bits: the first and last eighth of the layers and every third layer between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _type_for(t: Tensor, ftype: str, spec: ModelInfo) -> str:
    """llama_tensor_get_type for one 2-D tensor (no importance matrix, not a MoE, not Falcon)."""
    base = FTYPES[ftype]
    n, i = spec.n_layers, t.layer
    gqa = spec.n_heads // max(spec.n_kv_heads, 1)
    name = t.name
    is_output = name == "output.weight" or (spec.tied_embeddings and name == "token_embd.weight")
    new = base
    if is_output:
        import gguf

        block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[base]][0]
        new = "Q8_0" if t.ne0 % block else ("Q6_K" if base != "Q8_0" else "Q8_0")
    elif "attn_v.weight" in name:
        if ftype == "Q2_K":
            new = "Q4_K" if gqa >= 4 else "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype in ("IQ4_XS", "IQ4_NL") and gqa >= 4:
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _more_bits(i, n):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
    elif "attn_qkv.weight" in name:
        new = {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(ftype, base)
    elif "ffn_down" in name:
        if ftype == "Q2_K":
            new = "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < n // 16 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _more_bits(i, n):
            new = "Q6_K"
        elif ftype in ("IQ4_XS", "IQ4_NL", "Q4_K_S") and i < n // 8:
            new = "Q5_K"
    elif "attn_output.weight" in name:
        new = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, base)
    if new in _FALLBACK and t.ne0 % 256:  # rows not a multiple of the k-quant super-block
        new = _FALLBACK[new]
    return new


def assign_types(spec: ModelInfo, ftype: str) -> list[Tensor]:
    """Every tensor with the ggml type `llama-quantize` would give it for `ftype` (1-D tensors stay F32)."""
    from dataclasses import replace

    ftype = check_ftype(ftype)
    mixed = ftype not in ("F32", "F16", "BF16")
    out = []
    for t in tensor_shapes(spec):
        if t.ne1 == 1:
            out.append(t)
        else:
            out.append(replace(t, type=_type_for(t, ftype, spec) if mixed else FTYPES[ftype]))
    return out


def weights_bytes(tensors: list[Tensor]) -> int:
    """Bytes of tensor data (a GGUF file adds a few MB of metadata and padding)."""
    return sum(t.nbytes for t in tensors)


def weights_read_per_token(tensors: list[Tensor]) -> int:
    """Bytes one decode step reads: every tensor, but only one row of an untied token-embedding table."""
    names = {t.name for t in tensors}
    total = 0
    for t in tensors:
        if t.name == "token_embd.weight" and "output.weight" in names:
            total += t.nbytes // t.ne1
        else:
            total += t.nbytes
    return total


def quantized_info(info: ModelInfo, ftype: str) -> ModelInfo:
    """`info` (shapes) as a GGUF of file type `ftype`: quant, per-tensor types and bytes, size, parameters.

    The result feeds `ondevice.models.memory` (RAM estimate, bytes read per decode step) like a ModelInfo read from a file.
    """
    from dataclasses import replace

    tensors = assign_types(info, ftype)
    size = weights_bytes(tensors)
    params = sum(t.n_elements for t in tensors)
    return replace(info, quant=check_ftype(ftype), size_bytes=size, n_params=params,
                   bits_per_weight=round(size * 8 / params, 3),
                   tensor_types={t.name: t.type for t in tensors}, tensor_bytes={t.name: t.nbytes for t in tensors})
