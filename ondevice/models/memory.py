"""How much memory a model needs to run, and how long a context fits: the one memory estimator.

    estimate_memory(info, n_ctx, kv_type="f16", mmap=False) -> MemoryEstimate   weights + KV + compute + runtime
    context_that_fits(info, available_bytes, kv_type="f16")  -> int             longest context that fits
    kv_bytes(info, n_ctx, kv_type)                           -> int             the KV cache alone
    weights_read_per_token(info) / decode_bytes_per_token(info, depth, kv_type)  what one decode step reads

Everything works from a `ModelInfo` (read once from a file, or built from shapes with `ModelInfo.from_shapes`), so
auto-config, `ondevice fit`, quantize's `recommend`, bench's roofline and device predictions all use the same
arithmetic and the same KV cache type.

The terms, for llama.cpp (GGUF):
- weights: the model file (tensor data plus the vocabulary metadata llama.cpp keeps). With `mmap=True` the
  mapped file pages of tensors that llama.cpp's CPU backend repacks into its own layout stay resident beside the
  repacked copy (measured for an 8B Q4_K_M: 8.5 GB peak RSS with mmap vs 5.4 GB without): `mapped_bytes`.
- KV cache: 2 (K and V) x layers x KV heads x head dim x n_ctx x bytes per element (f32 4, f16 2, q8_0 34/32, q4_0
  18/32: one f16 scale per 32-element block). onnxruntime-genai's CPU cache is f32.
- compute: what one forward pass over a 512-token micro-batch at full depth touches — without flash attention
  the scores of every head against the whole context (n_ubatch x n_ctx x heads f32) plus the masks; with flash
  attention (which llama.cpp needs for a quantised V cache) only the f16 masks — plus a few activation rows and one
  row of logits.
- runtime: Python, numpy and libllama before any tensor (60 MiB), per-layer graph metadata and the resident
  vocabulary. Calibrated on running peaks measured with `ondevice fit MODEL --measure` (docs/bench.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.errors import InvalidInput
from ondevice.models.model_info import ModelInfo

# Bytes per cached element. q8_0: 32 int8 + one f16 scale per block; q4_0: 32 nibbles + one f16 scale.
KV_BYTES_PER_ELEMENT = {"f32": 4.0, "f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
KV_TYPES = tuple(KV_BYTES_PER_ELEMENT)
QUANTISED_KV_TYPES = ("q8_0", "q4_0")  # libllama stores a quantised V cache only with flash attention
ONNX_KV_BYTES_PER_ELEMENT = 4.0  # onnxruntime-genai on CPU keeps the cache in f32

# Resident size of a Python process with numpy, ondevice and the runtime imported, before a model loads (60 MiB
# with llama_cpp, about 100 MiB with onnxruntime-genai); what libllama keeps per layer besides weights and KV
# (tensor/graph metadata; fitted); what stays resident per vocabulary entry (measured: 46 MiB for Gemma 3's 262,144
# tokens).
RUNTIME_BYTES = {"gguf": 60 << 20, "onnx-genai": 100 << 20}
RUNTIME_BYTES_PER_LAYER = 640 << 10
RUNTIME_BYTES_PER_VOCAB_ENTRY = 184
N_UBATCH = 512

# ggml types llama.cpp's CPU backend repacks into interleaved layouts (x86 AVX2/AVX-512 and ARM): with mmap their
# file pages stay mapped beside the repacked copy.
REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})

# Least room kept beyond weights + KV cache when sizing a context from available RAM: the compute buffers and the
# runtime live in it (more is kept when the estimate of those is larger). "Available" memory already excludes
# what the OS and other programs use.
RAM_HEADROOM_BYTES = 1 << 30
MIN_AUTO_CTX = 256  # the smallest context auto-config opens (options.MIN_CTX is the smallest allowed)
CTX_STEP = 256


def check_kv_type(kv_type: str) -> str:
    """The KV cache type, or InvalidInput naming the choices."""
    if kv_type not in KV_BYTES_PER_ELEMENT:
        raise InvalidInput(f"unknown KV cache type {kv_type!r}; choose one of: {', '.join(KV_TYPES)}")
    return kv_type


def kv_bytes_per_element(info: ModelInfo, kv_type: str = "f16") -> float:
    """Bytes per cached K or V element for this model's runtime at `kv_type`."""
    check_kv_type(kv_type)
    return KV_BYTES_PER_ELEMENT[kv_type] if info.format == "gguf" else ONNX_KV_BYTES_PER_ELEMENT


def kv_bytes(info: ModelInfo, n_ctx: int, kv_type: str = "f16") -> int:
    """K and V for every layer and KV head: 2 x layers x kv_heads x head_dim x n_ctx x bytes/element."""
    return int(info.kv_bytes_per_token(kv_bytes_per_element(info, kv_type)) * n_ctx)


def uses_flash_attention(kv_type: str, flash_attn: bool | None = None) -> bool:
    """Whether llama.cpp runs flash attention: as asked, else only where a quantised V cache requires it."""
    return bool(flash_attn) if flash_attn is not None else kv_type in QUANTISED_KV_TYPES


def compute_bytes(info: ModelInfo, n_ctx: int, kv_type: str = "f16", flash_attn: bool | None = None) -> int:
    """Working memory of one forward pass over a micro-batch at full depth (see the module docstring)."""
    ub = min(N_UBATCH, n_ctx)
    n_ff = info.n_ff or 4 * info.n_embd
    n_masks = 2 if info.sliding_window else 1  # sliding-window models keep a second attention mask
    activations = ub * (2 * n_ff + 2 * info.n_embd) * 4
    if uses_flash_attention(kv_type, flash_attn):
        attention = ub * n_ctx * n_masks * 2
    else:
        attention = ub * n_ctx * (info.n_heads + n_masks) * 4
    return int(attention + activations + info.vocab_size * 4)


def runtime_bytes(info: ModelInfo) -> int:
    """The process before and around the tensors: interpreter and libraries, per-layer metadata, vocabulary."""
    return (RUNTIME_BYTES.get(info.format, RUNTIME_BYTES["gguf"]) + RUNTIME_BYTES_PER_LAYER * info.n_layers
            + RUNTIME_BYTES_PER_VOCAB_ENTRY * info.vocab_size)


def mapped_bytes(info: ModelInfo, mmap: bool) -> int:
    """File pages that stay resident beside llama.cpp's repacked copy when the model is memory-mapped."""
    if not mmap or not info.tensor_types or not info.tensor_bytes:
        return 0
    return sum(info.tensor_bytes[name] for name, t in info.tensor_types.items()
               if t in REPACKED_TYPES and name != "token_embd.weight")  # the embedding is only gathered from


@dataclass
class MemoryEstimate:
    """Bytes needed to run a model at `n_ctx` tokens of context, by term."""

    n_ctx: int
    kv_type: str
    mmap: bool
    weights_bytes: int
    mapped_bytes: int   # extra resident file pages with mmap (0 without)
    kv_bytes: int
    compute_bytes: int
    runtime_bytes: int

    @property
    def model_bytes(self) -> int:
        """What the model itself holds: weights (with mapped pages) and the KV cache."""
        return self.weights_bytes + self.mapped_bytes + self.kv_bytes

    @property
    def total_bytes(self) -> int:
        """The model plus the compute buffers and the runtime around it."""
        return self.model_bytes + self.compute_bytes + self.runtime_bytes


def estimate_memory(info: ModelInfo, n_ctx: int, kv_type: str = "f16", mmap: bool = False,
                    flash_attn: bool | None = None) -> MemoryEstimate:
    """Memory to run `info` with a filled context of `n_ctx` tokens and a `kv_type` cache."""
    if n_ctx < 1:
        raise InvalidInput(f"n_ctx must be positive, got {n_ctx}")
    return MemoryEstimate(n_ctx, check_kv_type(kv_type), mmap, info.size_bytes, mapped_bytes(info, mmap),
                          kv_bytes(info, n_ctx, kv_type), compute_bytes(info, n_ctx, kv_type, flash_attn),
                          runtime_bytes(info))


def context_that_fits(info: ModelInfo, available_bytes: int, kv_type: str = "f16", mmap: bool = False,
                      headroom_bytes: int = RAM_HEADROOM_BYTES) -> int:
    """The longest context (a multiple of 256, at most the trained length, at least 256) that fits.

    Fits means: weights (+ mapped pages) + KV cache + the larger of `headroom_bytes` and the estimated compute and
    runtime bytes stay within `available_bytes`.
    """
    trained = info.context_length or 2048

    def needed(n_ctx: int) -> int:
        e = estimate_memory(info, n_ctx, kv_type, mmap)
        return e.model_bytes + max(headroom_bytes, e.compute_bytes + e.runtime_bytes)

    if needed(trained) <= available_bytes:
        return trained
    fixed = needed(1) - kv_bytes(info, 1, kv_type)  # everything but the KV cache, at the smallest context
    per_token = kv_bytes(info, 1, kv_type) or 1
    ctx = max(MIN_AUTO_CTX, min(trained, int((available_bytes - fixed) // per_token)))
    ctx = ctx - ctx % CTX_STEP if ctx > CTX_STEP else ctx
    while ctx > MIN_AUTO_CTX and needed(ctx) > available_bytes:  # the compute term grows with n_ctx too
        ctx -= CTX_STEP
    return max(MIN_AUTO_CTX, ctx)


def weights_read_per_token(info: ModelInfo) -> int:
    """Bytes of weights one decode step reads: every tensor, but of the token-embedding table only the one row it
    gathers — unless the table doubles as the output head (tied embeddings), which reads it in full.

    Needs the tensor table (GGUF files, shape tables); for other formats, the model's size on disk.
    """
    if not info.tensor_bytes:
        return info.size_bytes
    total = sum(info.tensor_bytes.values())
    embd = info.tensor_bytes.get("token_embd.weight", 0)
    if "output.weight" not in info.tensor_bytes or not info.vocab_size:  # tied: the output head reads it all
        return total
    return total - embd + embd // info.vocab_size


def decode_bytes_per_token(info: ModelInfo, depth: int, kv_type: str = "f16") -> int:
    """Bytes one decode step reads at `depth` tokens of context: weights plus the KV cache so far."""
    return int(weights_read_per_token(info) + kv_bytes(info, depth, kv_type))
