"""Measure a model like llama-bench does, through the public API: pp and tg tokens/s, TTFT, load time, peak RSS.

Each model is measured in a fresh subprocess (`python -m bench.worker`), so one model's memory never pollutes the
next one's peak RSS. Prompts are random token ids (as llama-bench uses); every test has one warm-up run and then
`repetitions` timed runs, reported as mean and standard deviation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable

from ondevice import RuntimeOptions
from ondevice.models.catalog import model_info
from ondevice.errors import InvalidInput, OnDeviceError
from ondevice.models.memory import KV_TYPES
from ondevice.models.model_info import ModelInfo

DEFAULT_BENCH_CTX = 4096

Progress = Callable[[str, int, int], None]  # (description, done, total)


@dataclass
class BenchConfig:
    """What to run: llama-bench's -p/-n/-r/-t plus the context length."""

    n_prompt: int = 512
    n_gen: int = 128
    repetitions: int = 5
    threads: int | None = None
    n_ctx: int | None = None   # default: DEFAULT_BENCH_CTX capped at the model's trained length
    reference: bool = False    # also time the bare libllama loop (GGUF only)
    kv_type: str = "f16"
    seed: int = 1234
    flash_attn: str = "auto"   # the runtime option (RuntimeOptions.flash_attn); GGUF only

    def check(self) -> "BenchConfig":
        if self.n_prompt < 0 or self.n_gen < 0 or (self.n_prompt == 0 and self.n_gen == 0):
            raise InvalidInput("-p and -n must be >= 0, and not both 0")
        if self.repetitions < 1:
            raise InvalidInput(f"-r must be at least 1, got {self.repetitions}")
        if self.threads is not None and self.threads < 1:
            raise InvalidInput(f"-t must be at least 1, got {self.threads}")
        if self.n_ctx is not None and self.n_ctx <= self.n_prompt + 1:
            raise InvalidInput(f"--ctx {self.n_ctx} is too small for -p {self.n_prompt}")
        if self.kv_type not in KV_TYPES:
            raise InvalidInput(f"unknown KV cache type {self.kv_type!r} ({', '.join(KV_TYPES)})")
        RuntimeOptions(kv_type=self.kv_type, flash_attn=self.flash_attn)  # the runtime's own checks, one clear line
        return self

    def context_for(self, info: ModelInfo) -> int:
        """The context to bench `info` at: --ctx, else DEFAULT_BENCH_CTX capped at the trained length (but room for
        -p and -n)."""
        if self.n_ctx:
            return self.n_ctx
        return max(min(DEFAULT_BENCH_CTX, info.context_length or DEFAULT_BENCH_CTX), self.n_prompt + self.n_gen + 16)


@dataclass
class BenchResult:
    """One test on one model. Names follow llama-bench's JSON where they overlap."""

    model_filename: str
    model_type: str
    model_size: int
    model_n_params: int
    backend: str
    n_threads: int
    n_prompt: int
    n_gen: int
    test: str                 # "pp512" or "tg128"
    avg_ts: float
    stddev_ts: float
    samples_ts: list[float]
    ttft_ms: float            # mean time to first token through the public streaming API for this test's prompt
    load_ms: float
    peak_rss_bytes: int       # high-water resident memory of the measuring process, loading included
    run_peak_rss_bytes: int   # high-water resident memory after the load (running the tests)
    baseline_rss_bytes: int   # resident memory before the model loaded (Python + runtime)
    n_ctx: int
    bits_per_weight: float
    quant: str
    architecture: str
    reference_ts: float | None = None     # bare libllama loop, tg only (--reference)
    reference_ratio: float | None = None  # median over the interleaved rounds of public / bare loop (per round)
    reference_samples_ts: list[float] = field(default_factory=list)
    reference_ratio_range: list[float] = field(default_factory=list)  # [min, max] of the per-round ratios


@dataclass
class RssMeasurement:
    """Peak RSS of a fresh process that loaded a model and filled its context."""

    model: str
    n_ctx: int
    kv_type: str
    peak_rss_bytes: int       # whole process, loading included
    run_peak_rss_bytes: int   # after the load: filling the context and decoding
    baseline_rss_bytes: int


def _run_worker(job: dict, progress: Progress | None) -> dict:
    """Run one job in `python -m bench.worker`, relaying its progress lines; return its result."""
    cmd = [sys.executable, "-m", "bench.worker", json.dumps(job)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        result = None
        for line in proc.stdout:
            msg = json.loads(line)
            if "progress" in msg and progress:
                progress(msg["progress"], msg["done"], msg["total"])
            elif "error" in msg:
                proc.wait()
                raise OnDeviceError(msg["error"])
            elif "result" in msg:
                result = msg["result"]
        stderr = proc.stderr.read()
        proc.wait()
    if result is None:
        tail = stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"bench worker failed (exit {proc.returncode}): " + " | ".join(tail))
    return result


def bench_model(model: str, config: BenchConfig, progress: Progress | None = None,
                info: ModelInfo | None = None) -> list[BenchResult]:
    """pp and tg results for one model (a path or alias), measured in a fresh subprocess. Pass `info` when the
    caller already read it (bench reads each model's facts once per run)."""
    config.check()
    info = info or model_info(model)
    job = {"job": "bench", "model": str(model), "config": asdict(config), "n_ctx": config.context_for(info),
           "format": info.format}
    return [BenchResult(**row) for row in _run_worker(job, progress)]


def bench_models(models: list[str], config: BenchConfig, progress: Progress | None = None,
                 infos: dict[str, ModelInfo] | None = None) -> list[BenchResult]:
    """All tests on all models, one fresh process per model (`infos`: model -> its facts, when already read)."""
    if not models:
        raise InvalidInput("give at least one MODEL (or --probe NAME --quant TYPE)")
    infos = infos or {}
    results: list[BenchResult] = []
    for model in models:
        results += bench_model(model, config, progress, infos.get(model))
    return results


def measure_rss(model: str, n_ctx: int, kv_type: str = "f16", threads: int | None = None,
                progress: Progress | None = None, info: ModelInfo | None = None) -> RssMeasurement:
    """Peak RSS of a fresh process that loads `model` at `n_ctx` and fills the context (what fit predicts)."""
    info = info or model_info(model)
    result = _run_worker({"job": "rss", "model": str(model), "n_ctx": n_ctx, "kv_type": kv_type,
                          "threads": threads, "format": info.format}, progress)
    return RssMeasurement(**result)
