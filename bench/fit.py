"""Will a model fit in this machine's RAM? weights + KV cache + compute buffer + runtime, against RAM.

The compute-buffer term follows what llama.cpp actually touches when generating (outputs for the last token only,
no flash attention): the attention scores of one micro-batch against the whole context (n_ubatch x n_ctx x
n_heads f32, plus the f32 mask) and a few activation rows. With the q8_0 KV cache, llama.cpp needs flash
attention, which has no n_ctx x n_heads score matrix. `bench.runner.measure_rss` checks the estimate against the
peak RSS of a fresh process that fills the context (docs/bench.md has the comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.errors import InvalidInput

KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32}  # q8_0: 32 int8 + one f16 scale per block
# Resident size of a Python process with numpy, ondevice and the runtime imported, before a model loads (bench's
# measuring process: 60 MiB with llama_cpp, about 100 MiB with onnxruntime-genai); what stays resident per
# vocabulary entry after the GGUF metadata was read (measured: 46 MiB for Gemma 3's 262,144 tokens); and what
# libllama keeps per layer besides weights and KV (tensor/graph metadata; fitted). Calibrated on running peaks
# measured here with `ondevice fit MODEL --measure --ctx 1024`; see docs/bench.md.
RUNTIME_BYTES = {"gguf": 60 << 20, "onnx-genai": 100 << 20}
RUNTIME_BYTES_PER_LAYER = 640 << 10
RUNTIME_BYTES_PER_VOCAB_ENTRY = 184
N_UBATCH = 512
DEFAULT_FIT_CTX = 4096


@dataclass
class Shapes:
    """The numbers the memory estimate needs."""

    name: str
    format: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_embd: int
    n_ff: int
    vocab_size: int
    context_length: int
    weights_bytes: int
    n_masks: int = 1  # gemma2/gemma3 keep a second (sliding-window) attention mask


@dataclass
class FitEstimate:
    """Memory needed to run a model at a context length, and whether this machine has it."""

    model: str
    n_ctx: int
    kv_type: str
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    runtime_bytes: int
    total_bytes: int
    ram_total_bytes: int
    ram_available_bytes: int
    verdict: str       # "fits", "tight" (fits in total RAM, not in what is free now) or "does not fit"
    headroom_bytes: int  # available - total (negative when it does not fit now)


def shapes_from_model(model: str) -> Shapes:
    """Shapes of a model on disk (GGUF metadata, or an ONNX folder's config)."""
    from ondevice.model_info import read_info
    from ondevice.store import resolve

    ref = resolve(model)
    info = read_info(ref)
    n_ff, weights, masks = 4 * info.n_embd, info.size_bytes, 1
    if info.format == "gguf":
        from ondevice.gguf_file import read_gguf

        contents = read_gguf(ref.path)
        n_ff = int(contents.arch_value("feed_forward_length", n_ff) or n_ff)
        masks = 2 if contents.arch_value("attention.sliding_window") else 1
    elif info.format != "onnx-genai":
        raise InvalidInput(f"{model}: fit needs a GGUF file or an ONNX LLM folder, not a {info.format!r} model")
    return Shapes(info.name, info.format, info.n_layers, info.n_heads, info.n_kv_heads, info.head_dim, info.n_embd,
                  n_ff, info.vocab_size, info.context_length, weights, masks)


def shapes_from_probe(name: str, quant: str) -> Shapes:
    """Shapes of a named 7-10B model at a quant type, from the probe table (no file needed)."""
    from bench.probe import check_probe_args, probe_nbytes

    spec, _ = check_probe_args(name, quant)
    return Shapes(f"{spec.name} {quant.upper()}", "gguf", spec.n_layers, spec.n_heads, spec.n_kv_heads,
                  spec.head_dim, spec.n_embd, spec.n_ff, spec.vocab_size, spec.context_length,
                  probe_nbytes(spec, quant), 2 if "sliding_window" in spec.extra else 1)


def kv_bytes(s: Shapes, n_ctx: int, kv_type: str = "f16") -> int:
    """K and V for every layer and KV head: 2 x layers x kv_heads x head_dim x n_ctx x bytes/element."""
    if kv_type not in KV_BYTES_PER_ELEMENT:
        raise InvalidInput(f"unknown KV cache type {kv_type!r}; choose one of: {', '.join(KV_BYTES_PER_ELEMENT)}")
    per_element = KV_BYTES_PER_ELEMENT[kv_type] if s.format == "gguf" else 4.0  # onnxruntime-genai CPU: f32
    return int(2 * s.n_layers * s.n_kv_heads * s.head_dim * n_ctx * per_element)


def compute_bytes(s: Shapes, n_ctx: int, kv_type: str = "f16") -> int:
    """Working memory of one forward pass over a micro-batch at full depth (see the module docstring)."""
    ub = min(N_UBATCH, n_ctx)
    activations = ub * (2 * s.n_ff + 2 * s.n_embd) * 4
    if kv_type == "f16":  # scores for every head against the whole context, plus the f32 masks
        attention = ub * n_ctx * (s.n_heads + s.n_masks) * 4
    else:                 # flash attention: f16 masks only
        attention = ub * n_ctx * s.n_masks * 2
    return int(attention + activations + s.vocab_size * 4)  # + one row of logits


def estimate_fit(s: Shapes, n_ctx: int | None = None, kv_type: str = "f16") -> FitEstimate:
    """Estimate memory for `s` at `n_ctx` (default 4096, capped at the trained length) and compare with RAM."""
    from ondevice.autoconfig import memory

    if n_ctx is not None and n_ctx < 16:
        raise InvalidInput(f"--ctx must be at least 16, got {n_ctx}")
    n_ctx = n_ctx or min(DEFAULT_FIT_CTX, s.context_length or DEFAULT_FIT_CTX)
    kv = kv_bytes(s, n_ctx, kv_type)
    compute = compute_bytes(s, n_ctx, kv_type)
    runtime = RUNTIME_BYTES.get(s.format, RUNTIME_BYTES["gguf"]) + RUNTIME_BYTES_PER_LAYER * s.n_layers \
        + RUNTIME_BYTES_PER_VOCAB_ENTRY * s.vocab_size
    total = s.weights_bytes + kv + compute + runtime
    ram = memory()
    verdict = "fits" if total <= ram.available_bytes else "tight" if total <= ram.total_bytes else "does not fit"
    return FitEstimate(s.name, n_ctx, kv_type, s.weights_bytes, kv, compute, runtime, total, ram.total_bytes,
                       ram.available_bytes, verdict, ram.available_bytes - total)


def fit(model: str | None = None, probe: str | None = None, quant: str | None = None, n_ctx: int | None = None,
        kv_type: str = "f16") -> FitEstimate:
    """`ondevice fit`: a model on disk, or a named probe shape at a quant type."""
    if (model is None) == (probe is None):
        raise InvalidInput("give either a MODEL or --probe NAME --quant TYPE")
    if probe is not None:
        return estimate_fit(shapes_from_probe(probe, quant or "Q4_K_M"), n_ctx, kv_type)
    return estimate_fit(shapes_from_model(model), n_ctx, kv_type)


@dataclass
class FitCheck:
    """An estimate next to the measured peak RSS of a fresh process that filled the same context."""

    estimate: FitEstimate
    measured_peak_rss_bytes: int      # whole process, loading included
    measured_run_peak_rss_bytes: int  # after the load: what running the model keeps resident
    error_pct: float  # (estimate - measured run peak) / measured run peak, in %


def fit_and_measure(model: str, n_ctx: int | None = None, kv_type: str = "f16", threads: int | None = None,
                    progress=None) -> FitCheck:
    """Estimate, then measure peak RSS in a fresh subprocess at the same context, and compare."""
    from bench.runner import measure_rss

    estimate = fit(model=model, n_ctx=n_ctx, kv_type=kv_type)
    measured = measure_rss(model, estimate.n_ctx, kv_type, threads, progress)
    error = 100.0 * (estimate.total_bytes - measured.run_peak_rss_bytes) / measured.run_peak_rss_bytes
    return FitCheck(estimate, measured.peak_rss_bytes, measured.run_peak_rss_bytes, round(error, 1))
