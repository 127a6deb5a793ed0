"""The measuring process: `python -m bench.worker JOB_JSON`. One model per process, so peak RSS is its own.

Writes JSON lines to stdout: {"progress", "done", "total"} while it runs, then {"result": ...} or {"error": ...}.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict

import numpy as np

from bench.runner import BenchConfig, BenchResult, RssMeasurement
from bench.interleave import interleave
from ondevice.errors import OnDeviceError

def _emit(**msg) -> None:
    print(json.dumps(msg), flush=True)


def rss_now() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    """High-water resident set size of this process, in bytes."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB
    except ImportError:  # Windows
        import psutil

        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))


def reset_peak() -> bool:
    """Start a new high-water mark (Linux: /proc/self/clear_refs "5" resets VmHWM). False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def hwm() -> int:
    """Resident high-water mark since the last reset_peak() (VmHWM), or the process peak where unsupported."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss()


def _kv_options(kv_type: str, fmt: str, flash_attn: str = "auto") -> dict:
    """Load options for a KV cache type and flash attention (GGUF only: the runtime's `kv_type` / `flash_attn`)."""
    if fmt != "gguf":
        return {}
    return {"kv_type": kv_type, "flash_attn": flash_attn}


def _load(model: str, n_ctx: int | None, threads: int | None, kv_type: str, fmt: str, flash_attn: str = "auto"):
    import ondevice

    return ondevice.load(model, n_ctx=n_ctx, threads=threads, **_kv_options(kv_type, fmt, flash_attn))


def _timed_stream(m, tokens: list[int], max_tokens: int):
    """(ms to the first streamed event, the generation's Timings), through Model.stream_events."""
    from ondevice import SamplingParams

    t0 = time.perf_counter()
    ttft, last = None, None
    for last in m.stream_events(tokens, SamplingParams(max_tokens=max_tokens, ignore_eos=True)):
        if ttft is None:
            ttft = (time.perf_counter() - t0) * 1000
    return ttft or 0.0, last.timings


def _params_label(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def bench_job(model: str, config: dict, n_ctx: int, fmt: str) -> list[dict]:
    """Measure one model; `n_ctx` and `fmt` come from the facts the parent process read once."""
    from bench.reference import reference_tg

    cfg = BenchConfig(**config).check()
    baseline = rss_now()
    t0 = time.perf_counter()
    m = _load(model, n_ctx, cfg.threads, cfg.kv_type, fmt, cfg.flash_attn)
    load_ms = (time.perf_counter() - t0) * 1000
    load_peak = hwm()
    reset_peak()  # from here on VmHWM is the running peak (load-time transients excluded)
    rng = np.random.default_rng(cfg.seed)
    vocab = m.info.vocab_size

    def random_tokens(n: int) -> list[int]:
        return [int(t) for t in rng.integers(0, vocab, size=n)]

    tests = ([("pp", cfg.n_prompt)] if cfg.n_prompt else []) + ([("tg", cfg.n_gen)] if cfg.n_gen else [])
    per_rep = 2 if cfg.reference and m.backend_name == "gguf" else 1
    total = sum((1 + cfg.repetitions) * (per_rep if kind == "tg" else 1) for kind, _ in tests)
    done = 0
    rows = []
    for kind, n in tests:
        samples, ttfts, ref_samples, ratios = [], [], [], []

        def run_test(kind=kind, n=n) -> tuple[float, float]:
            if kind == "pp":
                ttft, timings = _timed_stream(m, random_tokens(n), 1)
                return ttft, n * 1000.0 / timings.prompt_ms
            ttft, timings = _timed_stream(m, random_tokens(1), n + 1)
            return ttft, timings.decode_tokens_per_s

        if kind == "tg" and per_rep == 2:  # interleaved (A B, B A, ...), so both see the same machine load
            def step(desc: str, done_now: int, total_now: int, base=done) -> None:
                _emit(progress=f"{m.name} {kind}{n} {desc}", done=base + done_now, total=total)

            comp = interleave(run_test, lambda: reference_tg(m, n, rng), cfg.repetitions, warmup=1,
                              labels=("public", "bare loop"), key=lambda v: v[1] if isinstance(v, tuple) else v,
                              progress=step)
            done += 2 * (cfg.repetitions + 1)
            ttfts = [r[0] for r in comp.a_results]
            samples, ref_samples, ratios = comp.a, comp.b, comp.ratios
        else:
            for rep in range(cfg.repetitions + 1):  # rep 0 is the warm-up
                _emit(progress=f"{m.name} {kind}{n} {'warm-up' if rep == 0 else f'run {rep}'}", done=done,
                      total=total)
                ttft, ts = run_test()
                done += 1
                if rep:
                    samples.append(ts)
                    ttfts.append(ttft)
        avg = float(np.mean(samples))
        ref_avg = float(np.mean(ref_samples)) if ref_samples else None
        rows.append(BenchResult(
            model_filename=str(m.info.path), model_type=f"{m.info.architecture} {_params_label(m.info.n_params)} "
            f"{m.info.quant}", model_size=m.info.size_bytes, model_n_params=m.info.n_params, backend=m.backend_name,
            n_threads=m.threads or 0, n_prompt=n if kind == "pp" else 0, n_gen=n if kind == "tg" else 0,
            test=f"{kind}{n}", avg_ts=round(avg, 3), stddev_ts=round(float(np.std(samples, ddof=1))
                                                                      if len(samples) > 1 else 0.0, 3),
            samples_ts=[round(s, 3) for s in samples], ttft_ms=round(float(np.mean(ttfts)), 2),
            load_ms=round(load_ms, 1), peak_rss_bytes=max(load_peak, hwm()), run_peak_rss_bytes=hwm(),
            baseline_rss_bytes=baseline, n_ctx=m.n_ctx,
            bits_per_weight=m.info.bits_per_weight, quant=m.info.quant, architecture=m.info.architecture,
            reference_ts=round(ref_avg, 3) if ref_avg else None,
            reference_ratio=round(float(np.median(ratios)), 4) if ratios else None,
            reference_samples_ts=[round(s, 3) for s in ref_samples],
            reference_ratio_range=[round(min(ratios), 4), round(max(ratios), 4)] if ratios else []))
    _emit(progress=f"{m.name} done", done=total, total=total)
    m.close()
    return [asdict(r) for r in rows]


def rss_job(model: str, n_ctx: int, kv_type: str, threads: int | None, fmt: str) -> dict:
    """Load, fill the context with random tokens, decode two more, and report the peak RSS."""
    baseline = rss_now()
    m = _load(model, n_ctx, threads, kv_type, fmt)
    load_peak = hwm()
    reset_peak()
    _emit(progress=f"{m.name}: filling {n_ctx} tokens of context", done=0, total=1)
    rng = np.random.default_rng(0)
    _timed_stream(m, [int(t) for t in rng.integers(0, m.info.vocab_size, size=m.n_ctx - 4)], 2)
    _emit(progress=f"{m.name}: done", done=1, total=1)
    m.close()
    run_peak = hwm()
    return asdict(RssMeasurement(model, m.n_ctx, kv_type, max(load_peak, run_peak), run_peak, baseline))


def main() -> None:
    job = json.loads(sys.argv[1])
    try:
        if job["job"] == "bench":
            result = bench_job(job["model"], job["config"], job["n_ctx"], job["format"])
        else:
            result = rss_job(job["model"], job["n_ctx"], job["kv_type"], job.get("threads"), job["format"])
    except OnDeviceError as exc:
        _emit(error=str(exc))
        sys.exit(2)
    _emit(result=result)


if __name__ == "__main__":
    main()
