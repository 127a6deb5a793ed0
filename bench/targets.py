"""The device targets for an AI device (a built-in 7-10B LLM, 10-20 tokens/s, 8-16 GB DRAM), checked here.

The 7-10B model is a shape probe (`bench.probe`): its decode speed and peak RSS are measured on this machine,
its size comes from the probe's shape table, and the roofline says what bandwidth each tok/s target would need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ondevice.models.model_info import ModelInfo

from bench.probe import check_probe_args, ensure_probe, probe_info
from bench.roofline import Roofline, bandwidth_needed_gbps, roofline
from bench.runner import BenchConfig, BenchResult, Progress, bench_model

DECODE_TARGETS = (10.0, 20.0)         # tokens/s
RAM_TARGETS_GB = (8.0, 16.0)          # GB (1e9 bytes) of DRAM
PARAMS_RANGE = (7e9, 10e9)


@dataclass
class TargetRow:
    name: str
    target: str
    measured: str
    passed: bool
    bandwidth_needed_gbps: float | None = None  # for tok/s rows: what this device would need at that quant

    def to_dict(self) -> dict:
        row = {"name": self.name, "target": self.target, "measured": self.measured, "pass": self.passed}
        if self.bandwidth_needed_gbps is not None:
            row["bandwidth_needed_gbps"] = self.bandwidth_needed_gbps
        return row


@dataclass
class TargetReport:
    """PASS/FAIL per target for one probe at one quant type on this machine."""

    probe: str
    quant: str
    rows: list[TargetRow]
    bandwidth_gbps: dict[str, float]  # "device" (measured) and the need for each tok/s target
    roofline: Roofline
    results: list[BenchResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"probe": self.probe, "quant": self.quant, "rows": [r.to_dict() for r in self.rows],
                "bandwidth_gbps": self.bandwidth_gbps, "roofline": asdict(self.roofline),
                "results": [asdict(r) for r in self.results]}


def evaluate_targets(probe: str, quant: str, results: list[BenchResult], bandwidth_gbps: float,
                     info: ModelInfo | None = None, kv_type: str = "f16") -> TargetReport:
    """Turn measured results of a probe into the target table (no measuring here). `info`: the probe's facts
    (default: from its shape table, `bench.probe.probe_info`; no file is read)."""
    spec, _ = check_probe_args(probe, quant)
    info = info or probe_info(probe, quant)
    tg = next((r for r in results if r.n_gen), None)
    if tg is None:
        raise ValueError("the target check needs a tg result (-n > 0)")
    rss_gb = max(r.peak_rss_bytes for r in results) / 1e9
    roof = roofline(info, bandwidth_gbps, depth=tg.n_gen // 2, tg_measured=tg.avg_ts,
                    kv_type=kv_type)
    efficiency = roof.efficiency or 1.0  # as measured, above 1 too (then the anchor is low: `roof.note` says so)
    params = info.n_params
    rows = [TargetRow("params", "7-10 B", f"{params / 1e9:.2f} B ({spec.name})",
                      PARAMS_RANGE[0] <= params <= PARAMS_RANGE[1])]
    needed = {"device": round(bandwidth_gbps, 1)}
    for target in DECODE_TARGETS:
        need = bandwidth_needed_gbps(target, roof.bytes_per_token, efficiency)
        needed[f"for_{target:g}_tok_s"] = need  # at this device's measured roofline efficiency
        needed[f"for_{target:g}_tok_s_at_roofline"] = bandwidth_needed_gbps(target, roof.bytes_per_token)
        rows.append(TargetRow(f"decode >= {target:g} tok/s", f">= {target:g} tok/s",
                              f"{tg.avg_ts:.2f} ± {tg.stddev_ts:.2f} tok/s", tg.avg_ts >= target, need))
    for target in RAM_TARGETS_GB:
        rows.append(TargetRow(f"RAM <= {target:g} GB", f"<= {target:g} GB", f"{rss_gb:.2f} GB peak RSS",
                              rss_gb <= target))
    return TargetReport(spec.name, quant.upper(), rows, needed, roof, results)


def check_targets(probe: str = "llama3-8b", quant: str = "Q4_K_M", config: BenchConfig | None = None,
                  progress: Progress | None = None, bandwidth_gbps: float | None = None) -> TargetReport:
    """Measure the probe (writing it once if needed) and check every target."""
    from ondevice.machine.bandwidth import machine_bandwidth

    check_probe_args(probe, quant)
    config = (config or BenchConfig()).check()
    from ondevice.models.catalog import model_info

    path = ensure_probe(probe, quant, (lambda msg: progress(msg, 0, 1)) if progress else None)
    info = model_info(str(path))  # read once for the worker and the roofline
    results = bench_model(str(path), config, progress, info)
    if bandwidth_gbps is None:
        bandwidth_gbps = machine_bandwidth().read_gbps(config.threads)
    return evaluate_targets(probe, quant, results, bandwidth_gbps, info, config.kv_type)
