"""`make demo`: the whole quantise-and-bench run on the embedded model, into one report folder.

SmolLM2 -> GGUF Q4_K_M and Q8_0 + ONNX int4 -> quality (PPL/KLD against the f16 reference) -> bench of each ->
device targets with the llama3-8b Q4_K_M shape probe (written once, cached in the store) -> report.md/json + plots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.runner import BenchConfig, Progress
from bench.suite import BenchReport, run_bench

DEMO_TARGETS = ("gguf:Q4_K_M,Q8_0", "onnx:int4")
# Small enough that the 8B probe's pp/tg take seconds on 2 cores, large enough for a stable mean.
DEMO_CONFIG = dict(n_prompt=64, n_gen=32, repetitions=3)


@dataclass
class DemoReport:
    out_dir: str
    quantize: object | None  # quantize.pipeline.QuantizeReport (None if the quantize extra is missing)
    bench: BenchReport
    seconds: float


def _quantize(source: str, out_dir: Path, threads: int | None, log: Callable[[str], None], max_chunks: int):
    from quantize.pipeline import quantize

    return quantize(source, targets=list(DEMO_TARGETS), out_dir=out_dir, evaluate=True, window=256,
                    max_chunks=max_chunks, threads=threads, decode_speed=False, progress=False, log=log)


def run_demo(out_dir: str | Path, source: str = "smollm2-135m", probe: str = "llama3-8b", quant: str = "Q4_K_M",
             threads: int | None = None, eval_chunks: int = 8, log: Callable[[str], None] | None = None,
             progress: Progress | None = None) -> DemoReport:
    """Quantise `source`, evaluate and bench every variant, check the targets on the probe; one report folder."""
    from bench.report import write_report

    log = log or (lambda message: None)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"1/3 quantising {source} to {', '.join(DEMO_TARGETS)} and measuring quality")
    qreport = _quantize(source, out_dir / "models", threads, log, eval_chunks)
    models = [v.path for v in qreport.variants if v.status == "ok"]  # broken ones are not benchmarked
    log(f"2/3 benchmarking {len(models)} variants and the {probe} {quant} shape probe")
    config = BenchConfig(threads=threads, **DEMO_CONFIG)
    report = run_bench(models, config, probe, quant, targets=True, progress=progress)
    log("3/3 writing the report")
    from quantize.report import markdown as quality_markdown

    quality = quality_markdown(qreport).replace("# Quantisation report", "## Quality: quantisation report", 1)
    preamble = quality + "\n\n## Speed and memory (bench)\n"
    write_report(report, out_dir, title=f"ondevice demo: quantise and bench {source}", preamble=preamble)
    report.report_dir = str(out_dir)
    return DemoReport(str(out_dir), qreport, report, round(time.perf_counter() - start, 1))
