"""The decode-speed model and its calibration on published llama.cpp-family measurements.

Model, per calibration class (Apple GPU via Metal, AMD iGPU via Vulkan, CPU):

    seconds per token = bytes read per token / (effective bandwidth) + n_layers x overhead per layer
    effective bandwidth = peak bandwidth x e                          (GPU classes)
                        = min(peak bandwidth x e, threads x per-thread bandwidth)   (CPU)

Bytes read per token are the weights one decode step touches plus the KV cache at the run's depth
(`ondevice.models.memory.decode_bytes_per_token`, on the `bench.ftype` tensor table of the measured model). `e` is the
share of the peak the kernels reach; the per-layer overhead stands for what does not scale with bytes (kernel
launches, synchronisation, the de-quantisation arithmetic that stops small GPUs from saturating memory); a CPU
core reads only so fast, so few threads cannot reach the bus peak. The parameters are fitted by grid search,
minimising squared log error, on the points of `bench/calibration.json` marked `fit`; the `holdout` points are
never used for fitting and give the error a user should expect.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

CLASSES = ("metal", "vulkan-igpu", "cpu")
_E_GRID = np.arange(0.30, 1.0001, 0.01)
_C_GRID = np.arange(0.0, 0.6001, 0.01)         # ms per layer
_PT_GRID = np.arange(2.0, 30.001, 0.5)         # GB/s per CPU thread


@dataclass(frozen=True)
class ClassParams:
    """Fitted parameters of one calibration class."""

    name: str
    efficiency: float               # share of peak bandwidth reached when bandwidth-bound
    overhead_ms_per_layer: float
    per_thread_gbps: float | None   # CPU only: what one thread can read
    n_fit: int
    fit_median_abs_err_pct: float
    n_holdout: int
    holdout_median_abs_err_pct: float | None


@dataclass(frozen=True)
class Point:
    """One published measurement and what the model needs to predict it."""

    id: str
    device: str | None
    detail: str
    backend: str
    bandwidth_gbps: float
    threads: int | None
    model: str
    quant: str
    depth: int
    tg_tok_s: float
    source: str
    split: str
    bytes_per_token: int
    n_layers: int
    n_params: int = 0
    gpu_cores: int | None = None
    pp512_tok_s: float | None = None


def seconds_per_token(bytes_per_token: float, bandwidth_gbps: float, n_layers: int, efficiency: float,
                      overhead_ms_per_layer: float, threads: int | None = None,
                      per_thread_gbps: float | None = None) -> float:
    """The model's time for one decode step (see the module docstring)."""
    bw = bandwidth_gbps * efficiency
    if threads and per_thread_gbps:
        bw = min(bw, threads * per_thread_gbps)
    return bytes_per_token / (bw * 1e9) + n_layers * overhead_ms_per_layer / 1e3


@lru_cache(maxsize=1)
def load_points() -> tuple[Point, ...]:
    """The calibration measurements, each with its bytes read per token computed from the model's shapes."""
    from bench.families import family
    from bench.ftype import quantized_info
    from ondevice.models.memory import decode_bytes_per_token

    data = json.loads(resources.files("bench").joinpath("calibration.json").read_text())
    points = []
    for p in data["points"]:
        info = quantized_info(family(p["model"]), p["quant"])
        points.append(Point(p["id"], p["device"], p["detail"], p["backend"], float(p["bandwidth_gbps"]),
                            p["threads"], p["model"], p["quant"], int(p["depth"]), float(p["tg_tok_s"]), p["source"],
                            p["split"], decode_bytes_per_token(info, int(p["depth"])), info.n_layers, info.n_params,
                            p.get("gpu_cores"), p.get("pp512_tok_s")))
    return tuple(points)


def _grid_fit(points: list[Point], cpu: bool) -> tuple[float, float, float | None]:
    b = np.array([p.bytes_per_token for p in points], dtype=float)
    bw = np.array([p.bandwidth_gbps for p in points])
    layers = np.array([p.n_layers for p in points], dtype=float)
    measured = np.array([p.tg_tok_s for p in points])
    e = _E_GRID[:, None, None, None]
    c = _C_GRID[None, :, None, None]
    if cpu:
        threads = np.array([p.threads or 1 for p in points], dtype=float)
        pt = _PT_GRID[None, None, :, None]
        eff_bw = np.minimum(bw * e, threads * pt)
    else:
        pt = None
        eff_bw = bw * e
    t = b / (eff_bw * 1e9) + layers * c / 1e3
    loss = (np.log(1.0 / t / measured) ** 2).sum(axis=-1)
    i, j, k = np.unravel_index(np.argmin(loss), loss.shape)
    return float(_E_GRID[i]), float(_C_GRID[j]), (float(_PT_GRID[k]) if cpu else None)


def predict_point(p: Point, params: ClassParams) -> float:
    """The model's tok/s for a calibration point."""
    return 1.0 / seconds_per_token(p.bytes_per_token, p.bandwidth_gbps, p.n_layers, params.efficiency,
                                   params.overhead_ms_per_layer, p.threads, params.per_thread_gbps)


def _abs_err_pct(p: Point, params: ClassParams) -> float:
    return abs(predict_point(p, params) / p.tg_tok_s - 1) * 100


@lru_cache(maxsize=None)
def fitted(name: str) -> ClassParams:
    """The fitted parameters of calibration class `name` (computed once per process, in well under a second)."""
    points = [p for p in load_points() if p.backend == name]
    fit_pts = [p for p in points if p.split == "fit"]
    hold = [p for p in points if p.split == "holdout"]
    e, c, pt = _grid_fit(fit_pts, cpu=name == "cpu")
    params = ClassParams(name, e, c, pt, len(fit_pts), 0.0, len(hold), None)
    fit_err = statistics.median(_abs_err_pct(p, params) for p in fit_pts)
    hold_err = statistics.median(_abs_err_pct(p, params) for p in hold) if hold else None
    return ClassParams(name, e, c, pt, len(fit_pts), round(fit_err, 1), len(hold),
                       round(hold_err, 1) if hold_err is not None else None)


@dataclass(frozen=True)
class PointResult:
    point: Point
    predicted_tok_s: float
    error_pct: float       # (predicted - measured) / measured


@dataclass(frozen=True)
class CalibrationReport:
    """Every class's parameters and every point's prediction; overall median errors."""

    classes: list[ClassParams]
    points: list[PointResult]
    fit_median_abs_err_pct: float
    holdout_median_abs_err_pct: float


def calibration_report() -> CalibrationReport:
    """Fit every class and score every point (what docs/devices.md shows)."""
    classes = [fitted(name) for name in CLASSES]
    by_name = {c.name: c for c in classes}
    results = []
    for p in load_points():
        pred = predict_point(p, by_name[p.backend])
        results.append(PointResult(p, round(pred, 2), round((pred / p.tg_tok_s - 1) * 100, 1)))
    fit = statistics.median(abs(r.error_pct) for r in results if r.point.split == "fit")
    hold = statistics.median(abs(r.error_pct) for r in results if r.point.split == "holdout")
    return CalibrationReport(classes, results, round(fit, 1), round(hold, 1))


# --- prefill (Apple GPUs only) -------------------------------------------------------------------------------------
# Prompt processing is compute-bound: 2 x n_params FLOPs per token. In the #4167 table pp512 per GPU core is nearly
# constant within an Apple GPU generation (M1 ... M4) across the base, Pro, Max and Ultra chips, so one throughput
# per core and generation predicts it. No other catalog device has published compute figures to calibrate on.

@dataclass(frozen=True)
class PrefillParams:
    generation: str                 # m1, m2, m3, m4
    gflops_per_gpu_core: float      # effective, on pp512
    n_fit: int
    fit_median_abs_err_pct: float
    n_holdout: int
    holdout_median_abs_err_pct: float | None


def apple_generation(device_name: str | None) -> str | None:
    """'apple-m2-pro' -> 'm2'; None for other devices."""
    if not device_name or not device_name.startswith("apple-m"):
        return None
    return device_name.split("-")[1]


def pp_tok_s(gflops_per_gpu_core: float, gpu_cores: int, n_params: int) -> float:
    """Predicted prompt tokens/s: GPU throughput over 2 FLOPs per parameter per token."""
    return gflops_per_gpu_core * 1e9 * gpu_cores / (2 * n_params)


@lru_cache(maxsize=None)
def prefill_fitted(generation: str) -> PrefillParams | None:
    """Fitted prefill throughput of an Apple GPU generation (geometric mean over its fit points), or None."""
    points = [p for p in load_points() if p.pp512_tok_s and apple_generation(p.device) == generation]
    fit_pts = [p for p in points if p.split == "fit"]
    if not fit_pts:
        return None
    per_core = [p.pp512_tok_s * 2 * p.n_params / p.gpu_cores / 1e9 for p in fit_pts]
    g = float(np.exp(np.mean(np.log(per_core))))

    def err(p: Point) -> float:
        return abs(pp_tok_s(g, p.gpu_cores, p.n_params) / p.pp512_tok_s - 1) * 100

    hold = [p for p in points if p.split == "holdout"]
    return PrefillParams(generation, round(g, 1), len(fit_pts), round(statistics.median(map(err, fit_pts)), 1),
                         len(hold), round(statistics.median(map(err, hold)), 1) if hold else None)


def report_markdown(report: CalibrationReport) -> str:
    """The report as the markdown tables of docs/devices.md."""
    lines = ["| class | e (share of peak) | overhead ms/layer | GB/s per thread | fit points | fit median |err| "
             "| held-out points | held-out median |err| |", "|---|---|---|---|---|---|---|---|"]
    for c in report.classes:
        pt = f"{c.per_thread_gbps:g}" if c.per_thread_gbps else "-"
        hold = f"{c.holdout_median_abs_err_pct}%" if c.holdout_median_abs_err_pct is not None else "-"
        lines.append(f"| {c.name} | {c.efficiency:.2f} | {c.overhead_ms_per_layer:.2f} | {pt} | {c.n_fit} | "
                     f"{c.fit_median_abs_err_pct}% | {c.n_holdout} | {hold} |")
    lines += ["", f"All classes: fit median |error| {report.fit_median_abs_err_pct}%, held-out median |error| "
              f"{report.holdout_median_abs_err_pct}%.", "",
              "Prefill (pp512, Apple GPUs):", "",
              "| generation | effective GFLOPS per GPU core | fit points | fit median |err| | held-out points | "
              "held-out median |err| |", "|---|---|---|---|---|---|"]
    for gen in ("m1", "m2", "m3", "m4"):
        pf = prefill_fitted(gen)
        if pf:
            lines.append(f"| {gen} | {pf.gflops_per_gpu_core:g} | {pf.n_fit} | {pf.fit_median_abs_err_pct}% | "
                         f"{pf.n_holdout} | {pf.holdout_median_abs_err_pct}% |")
    lines += ["",
              "| point | split | class | model | quant | measured tok/s | predicted | error | source |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report.points:
        p = r.point
        lines.append(f"| {p.detail} | {p.split} | {p.backend} | {p.model} | {p.quant} | {p.tg_tok_s:g} | "
                     f"{r.predicted_tok_s:g} | {r.error_pct:+.1f}% | {p.source} |")
    return "\n".join(lines)


if __name__ == "__main__":  # `ondevice bench calibrate`  -> the tables of docs/devices.md
    from bench.cli import module_alias

    module_alias("calibrate")
