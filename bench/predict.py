"""Will a model hit the targets on *that* device? Predicted decode speed and RAM fit from shapes and the catalog.

    predict_for(info, device, backend=None, threads=None, n_ctx=4096, ram_gb=None) -> Prediction
    predict(model=None, probe=None, quant=None, device=..., ...)                   -> Prediction

The RAM check comes first: `ondevice.models.memory.estimate_memory` (weights + KV cache at n_ctx + compute + runtime)
against the share of the device's RAM a model can have; a device that cannot hold the model gets no speed.
Decode speed is `bench.calibrate`'s model: bytes read per token (weights one step touches + the KV cache at
depth n_ctx, a conservative full-context figure; the short-context figure at depth 64, the convention of
published llama-bench tg128 numbers, is given beside it) over the device's peak bandwidth times the calibrated
efficiency of its backend class, plus a per-layer overhead. Prefill (pp512) is predicted only on Apple GPUs, where the
published table calibrates a compute throughput per GPU core and generation (`bench.calibrate.prefill_fitted`);
other devices have no published compute figures to calibrate on, so they get none rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.calibrate import fitted, seconds_per_token
from bench.devices import Device, find_device
from ondevice.errors import InvalidInput
from ondevice.models.model_info import ModelInfo

DECODE_TARGETS = (10.0, 20.0)        # tokens/s
RAM_TARGETS_GB = (8.0, 16.0)         # GB (1e9 bytes) of device DRAM
PARAMS_RANGE = (7e9, 10e9)
DEFAULT_CTX = 4096
SHORT_DEPTH = 64    # llama-bench's tg128 generates 128 tokens from an empty cache: 64 is their mean KV depth
# Share of a device's RAM one model can use; the OS and other apps keep the rest. Assumptions, not measurements:
# Android keeps about half of a phone's RAM for the system and other apps; desktop OSes about a quarter.
USABLE_RAM_FRACTION = {"phone": 0.5, "sbc": 0.8, "laptop": 0.75, "desktop": 0.8}


@dataclass
class TargetRow:
    """One seed target, predicted: pass/fail and how far from the line (margin, % of the target)."""

    name: str
    target: str
    predicted: str
    passed: bool
    margin_pct: float | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "target": self.target, "predicted": self.predicted, "pass": self.passed,
                "margin_pct": self.margin_pct}


@dataclass
class Prediction:
    """What a model at a quant type would do on a catalog device (see the module docstring)."""

    device: str
    device_title: str
    backend: str                  # cpu or gpu
    calibration_class: str        # cpu, metal, vulkan-igpu
    model: str
    quant: str
    n_params: int
    size_bytes: int
    n_ctx: int
    depth: int                    # KV depth the decode speed is predicted at (default: n_ctx, a full context)
    threads: int | None
    bandwidth_gbps: float         # the device's peak
    ram_gb: float                 # the RAM option checked
    ram_usable_bytes: int
    ram_needed_bytes: int
    fits_ram: bool
    verdict: str                  # "fits" or "does not fit in N GB"
    bytes_per_token: int
    roofline_tg_tok_s: float      # bandwidth / bytes per token: the ceiling at 100% efficiency
    predicted_tg_tok_s: float | None  # None when the model does not fit
    efficiency: float | None      # predicted / roofline
    expected_error_pct: float | None  # the class's held-out median |error| on published measurements
    predicted_pp512_tok_s: float | None = None  # prompt processing (Apple GPUs only; see the module docstring)
    # Both conventions, labelled: published decode figures (llama-bench tg128) are taken near an empty cache
    # (SHORT_DEPTH); an app at the end of a long conversation reads the whole context's KV cache (n_ctx).
    tg_short_context_tok_s: float | None = None   # at depth SHORT_DEPTH: compare with published tg128 tables
    tg_full_context_tok_s: float | None = None    # at depth n_ctx: the conservative figure the targets use by default
    short_context_depth: int = SHORT_DEPTH
    targets: list[TargetRow] = field(default_factory=list)
    ram_options_that_fit: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        out = asdict(self)
        out["targets"] = [t.to_dict() for t in self.targets]
        return out


def _pick_backend(device: Device, backend: str | None) -> tuple[str, str]:
    backend = (backend or device.default_backend).lower()
    if backend not in ("cpu", "gpu"):
        raise InvalidInput(f"unknown backend {backend!r}; choose cpu or gpu")
    if backend not in device.backends:
        raise InvalidInput(f"{device.name} has no calibrated {backend} backend (llama.cpp measurements for its "
                           f"{device.gpu or 'GPU'} are missing); choose one of: {', '.join(device.backends)}")
    return backend, device.backends[backend]


def _ram_needed(info: ModelInfo, n_ctx: int, kv_type: str) -> int:
    from ondevice.models.memory import estimate_memory

    return estimate_memory(info, n_ctx, kv_type).total_bytes


def predict_for(info: ModelInfo, device: Device | str, backend: str | None = None, threads: int | None = None,
                n_ctx: int = DEFAULT_CTX, ram_gb: float | None = None, kv_type: str = "f16",
                bandwidth_gbps: float | None = None, depth: int | None = None) -> Prediction:
    """Predict `info` (a ModelInfo with its tensor table: read from a GGUF, or `bench.ftype.quantized_info`) on
    `device`: RAM fit first, then decode tok/s at KV depth `depth` (default `n_ctx`: the end of a full context;
    64 matches llama-bench's tg128), then the seed targets. Both labelled figures are always filled in as well:
    `tg_short_context_tok_s` (depth 64, what published tg128 tables measure) and `tg_full_context_tok_s` (n_ctx).
    `bandwidth_gbps` replaces the catalog's peak (a laptop fitted with faster or slower memory than the catalog
    assumes)."""
    from dataclasses import replace

    from ondevice.models.memory import decode_bytes_per_token

    dev = find_device(device) if isinstance(device, str) else device
    if bandwidth_gbps is not None:
        if bandwidth_gbps <= 0:
            raise InvalidInput(f"--bandwidth must be positive, got {bandwidth_gbps:g}")
        dev = replace(dev, bandwidth_gbps=float(bandwidth_gbps))
    backend, cls = _pick_backend(dev, backend)
    if n_ctx < 16:
        raise InvalidInput(f"--ctx must be at least 16, got {n_ctx}")
    depth = n_ctx if depth is None else depth
    if not 0 <= depth <= n_ctx:
        raise InvalidInput(f"--depth must be between 0 and --ctx ({n_ctx}), got {depth}")
    if threads is not None and threads < 1:
        raise InvalidInput(f"--threads must be at least 1, got {threads}")
    if ram_gb is None:
        ram_gb = dev.max_ram_gb
    elif ram_gb not in dev.ram_gb:
        raise InvalidInput(f"{dev.name} comes with {', '.join(f'{r:g}' for r in dev.ram_gb)} GB, not {ram_gb:g} GB")
    fraction = USABLE_RAM_FRACTION.get(dev.kind, 0.75)
    needed = _ram_needed(info, n_ctx, kv_type)
    usable = int(ram_gb * 1e9 * fraction)
    fits = needed <= usable
    per_token = decode_bytes_per_token(info, depth, kv_type)
    roof = dev.bandwidth_gbps * 1e9 / per_token
    params = fitted(cls)
    used_threads = (threads or dev.perf_cores) if backend == "cpu" else None

    def tg_at(at_depth: int) -> float:
        return 1.0 / seconds_per_token(decode_bytes_per_token(info, at_depth, kv_type), dev.bandwidth_gbps,
                                       info.n_layers, params.efficiency, params.overhead_ms_per_layer, used_threads,
                                       params.per_thread_gbps)

    tg = eff = short = full = None
    if fits:
        tg = tg_at(depth)
        eff = round(tg / roof, 3)
        tg = round(tg, 2)
        short, full = round(tg_at(min(SHORT_DEPTH, n_ctx)), 2), round(tg_at(n_ctx), 2)
    pred = Prediction(dev.name, dev.title, backend, cls, info.name, info.quant, info.n_params, info.size_bytes, n_ctx,
                      depth, used_threads, dev.bandwidth_gbps, ram_gb, usable, needed, fits,
                      "fits" if fits else f"does not fit in {ram_gb:g} GB", per_token, round(roof, 2), tg, eff,
                      params.holdout_median_abs_err_pct,
                      ram_options_that_fit=[r for r in dev.ram_gb if needed <= r * 1e9 * fraction])
    pred.predicted_pp512_tok_s = _prefill(dev, cls, info) if fits else None
    pred.tg_short_context_tok_s, pred.tg_full_context_tok_s = short, full
    pred.short_context_depth = min(SHORT_DEPTH, n_ctx)
    pred.targets = target_rows(pred, fraction)
    return pred


def _prefill(dev: Device, cls: str, info: ModelInfo) -> float | None:
    from bench.calibrate import apple_generation, pp_tok_s, prefill_fitted

    params = prefill_fitted(apple_generation(dev.name) or "") if cls == "metal" and dev.gpu_cores else None
    return round(pp_tok_s(params.gflops_per_gpu_core, dev.gpu_cores, info.n_params), 1) if params else None


def target_rows(pred: Prediction, usable_fraction: float) -> list[TargetRow]:
    """The seed targets (7-10B parameters, decode 10 / 20 tok/s, 8 / 16 GB of DRAM), predicted."""
    rows = [TargetRow("params", "7-10 B", f"{pred.n_params / 1e9:.2f} B",
                      PARAMS_RANGE[0] <= pred.n_params <= PARAMS_RANGE[1])]
    for target in DECODE_TARGETS:
        if pred.predicted_tg_tok_s is None:
            rows.append(TargetRow(f"decode >= {target:g} tok/s", f">= {target:g} tok/s", pred.verdict, False))
        else:
            tg = pred.predicted_tg_tok_s
            rows.append(TargetRow(f"decode >= {target:g} tok/s", f">= {target:g} tok/s", f"{tg:.1f} tok/s",
                                  tg >= target, round(100 * (tg / target - 1), 1)))
    for gb in RAM_TARGETS_GB:
        usable = gb * 1e9 * usable_fraction
        rows.append(TargetRow(f"fits {gb:g} GB", f"needs <= {usable / 1e9:.1f} GB ({usable_fraction:.0%} of {gb:g} GB)",
                              f"{pred.ram_needed_bytes / 1e9:.2f} GB", pred.ram_needed_bytes <= usable,
                              round(100 * (1 - pred.ram_needed_bytes / usable), 1)))
    return rows


def model_info_for(model: str | None = None, probe: str | None = None, quant: str | None = None) -> ModelInfo:
    """The ModelInfo to predict: a model on disk (GGUF), or a family's shapes at a quant type (no file needed)."""
    from bench.families import family
    from bench.ftype import quantized_info

    if (model is None) == (probe is None):
        raise InvalidInput("give either a MODEL or --probe NAME --quant TYPE")
    if probe is not None:
        return quantized_info(family(probe), quant or "Q4_K_M")
    from ondevice.models.model_info import read_info
    from ondevice.models.store import resolve

    info = read_info(resolve(model))
    if info.format != "gguf":
        raise InvalidInput(f"{model}: predictions need a GGUF model (its tensor table), not a {info.format!r} model")
    if quant is not None:
        raise InvalidInput("--quant applies to --probe; a model file has its own quant type")
    return info


def predict(model: str | None = None, probe: str | None = None, quant: str | None = None, device: str = "",
            backend: str | None = None, threads: int | None = None, n_ctx: int = DEFAULT_CTX,
            ram_gb: float | None = None, kv_type: str = "f16", bandwidth_gbps: float | None = None,
            depth: int | None = None) -> Prediction:
    """`ondevice predict`: a model file or a family at a quant type, on a catalog device."""
    dev = find_device(device)  # an unknown device is reported before any model is read
    return predict_for(model_info_for(model, probe, quant), dev, backend, threads, n_ctx, ram_gb, kv_type,
                       bandwidth_gbps, depth)
