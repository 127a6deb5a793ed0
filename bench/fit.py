"""Will a model fit in this machine's RAM? `ondevice.models.memory`'s estimate for a model or a probe shape, against RAM.

The arithmetic (weights + KV cache + compute buffer + runtime) lives in `ondevice.models.memory`, shared with context
auto-sizing and quantize's recommend. `bench.runner.measure_rss` checks the estimate against the peak RSS of a
fresh process that fills the context (docs/bench.md has the comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.errors import InvalidInput
from ondevice.models.memory import estimate_memory, kv_bytes  # noqa: F401 (kv_bytes: part of fit's arithmetic)
from ondevice.models.model_info import ModelInfo

DEFAULT_FIT_CTX = 4096


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


def shapes_from_model(model: str, info: ModelInfo | None = None) -> ModelInfo:
    """The ModelInfo of a model on disk (read once, or the one given), refused when fit cannot estimate it."""
    if info is None:
        from ondevice.models.catalog import model_info

        info = model_info(model)
    if info.format not in ("gguf", "onnx-genai"):
        raise InvalidInput(f"{model}: fit needs a GGUF file or an ONNX LLM folder, not a {info.format!r} model")
    return info


def shapes_from_probe(name: str, quant: str) -> ModelInfo:
    """The ModelInfo of a named 7-10B model at a quant type, from the probe table (no file needed)."""
    from bench.probe import probe_info

    return probe_info(name, quant)


def estimate_fit(info: ModelInfo, n_ctx: int | None = None, kv_type: str = "f16",
                 mmap: bool = False) -> FitEstimate:
    """Estimate memory for `info` at `n_ctx` (default 4096, capped at the trained length) and compare with RAM."""
    from ondevice.machine.autoconfig import memory

    if n_ctx is not None and n_ctx < 16:
        raise InvalidInput(f"--ctx must be at least 16, got {n_ctx}")
    n_ctx = n_ctx or min(DEFAULT_FIT_CTX, info.context_length or DEFAULT_FIT_CTX)
    e = estimate_memory(info, n_ctx, kv_type, mmap)
    total = e.total_bytes
    ram = memory()
    verdict = "fits" if total <= ram.available_bytes else "tight" if total <= ram.total_bytes else "does not fit"
    return FitEstimate(info.name, n_ctx, kv_type, e.weights_bytes + e.mapped_bytes, e.kv_bytes, e.compute_bytes,
                       e.runtime_bytes, total, ram.total_bytes, ram.available_bytes, verdict,
                       ram.available_bytes - total)


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

    info = shapes_from_model(model)  # read once for the estimate and the measuring process
    estimate = estimate_fit(info, n_ctx, kv_type)
    measured = measure_rss(model, estimate.n_ctx, kv_type, threads, progress, info)
    error = 100.0 * (estimate.total_bytes - measured.run_peak_rss_bytes) / measured.run_peak_rss_bytes
    return FitCheck(estimate, measured.peak_rss_bytes, measured.run_peak_rss_bytes, round(error, 1))
