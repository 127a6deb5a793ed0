"""One bench run: models and/or a probe, the roofline for each, optionally the targets and a report folder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ondevice.machine.bandwidth import BandwidthReport
from ondevice.models.model_info import ModelInfo

from bench.roofline import Roofline, roofline
from bench.runner import BenchConfig, BenchResult, Progress, bench_models
from bench.targets import TargetReport, check_targets, evaluate_targets


@dataclass
class BenchReport:
    """Everything `ondevice bench` measured."""

    config: BenchConfig
    results: list[BenchResult]
    bandwidth_gbps: float      # this machine's read bandwidth at the run's thread count (`machine_bandwidth`)
    rooflines: dict[str, Roofline] = field(default_factory=dict)  # model_filename -> ceiling vs measured tg
    targets: TargetReport | None = None
    report_dir: str | None = None
    bandwidth: BandwidthReport | None = None  # where bandwidth_gbps came from: kernels, spread, date

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "bandwidth_gbps": self.bandwidth_gbps,
                "bandwidth": self.bandwidth.to_dict() if self.bandwidth else None,
                "results": [asdict(r) for r in self.results],
                "rooflines": {k: asdict(v) for k, v in self.rooflines.items()},
                "targets": self.targets.to_dict() if self.targets else None, "report_dir": self.report_dir}


def _key(path: str) -> str:
    return str(Path(path).resolve())


def rooflines_for(results: list[BenchResult], bandwidth_gbps: float, infos: list[ModelInfo] | None = None,
                  kv_type: str = "f16") -> dict[str, Roofline]:
    """The roofline of every tg result, from the ModelInfos bench already read (a result whose model is not among
    them, such as an HF folder converted on load, is read here)."""
    from ondevice.models.catalog import model_info

    by_file = {_key(i.path): i for i in infos or []}
    out = {}
    for r in results:
        if r.n_gen:
            info = by_file.get(_key(r.model_filename)) or model_info(r.model_filename)
            by_file[_key(r.model_filename)] = info
            out[r.model_filename] = roofline(info, bandwidth_gbps, depth=r.n_gen // 2, tg_measured=r.avg_ts,
                                               kv_type=kv_type)
    return out


def run_bench(models: list[str], config: BenchConfig, probe: str | None = None, quant: str | None = None,
              targets: bool = False, report_dir: str | Path | None = None,
              progress: Progress | None = None) -> BenchReport:
    """Measure `models` (and the probe, if named); with targets=True check the device targets on the probe
    (llama3-8b Q4_K_M unless named); with report_dir write report.md, report.json and plots there."""
    from ondevice.machine.bandwidth import machine_bandwidth
    from ondevice.models.catalog import model_info

    from bench.probe import check_probe_args, ensure_probe

    config.check()
    if probe or targets:
        probe, quant = probe or "llama3-8b", quant or "Q4_K_M"
        check_probe_args(probe, quant)
    elif quant:
        from ondevice.errors import InvalidInput

        raise InvalidInput("--quant applies to --probe; give --probe NAME too")
    models = list(models)
    if probe:
        models.append(str(ensure_probe(probe, quant, (lambda m: progress(m, 0, 1)) if progress else None)))
    if not models:
        from ondevice.errors import InvalidInput

        raise InvalidInput("give at least one MODEL, or --probe NAME --quant TYPE, or --targets")
    infos = {m: model_info(m) for m in models}  # each model's facts, read once for the whole run
    results = bench_models(models, config, progress, infos)
    # This machine's cached measurement (measured now, in this model-free process, if there is none yet).
    measured = machine_bandwidth(progress=(lambda m: progress(m, 0, 1)) if progress else None)
    bandwidth = measured.read_gbps(config.threads)
    report = BenchReport(config, results, bandwidth, rooflines_for(results, bandwidth, list(infos.values()),
                                                                     config.kv_type), bandwidth=measured)
    if targets:
        probe_path = models[-1]
        probe_results = [r for r in results if Path(r.model_filename) == Path(probe_path).resolve()]
        report.targets = evaluate_targets(probe, quant, probe_results, bandwidth, infos[probe_path],
                                          config.kv_type)
    if report_dir is not None:
        from bench.report import write_report

        report.report_dir = str(write_report(report, Path(report_dir)))
    return report


__all__ = ["BenchReport", "run_bench", "check_targets"]
