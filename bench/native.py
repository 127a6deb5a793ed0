"""llama.cpp's own llama-bench on the same file and threads as `ondevice bench`: the native reference.

`ondevice bench --reference` times a bare decode loop on ondevice's own llama context, so it cannot see a settings
gap (flash attention, thread polling, batch sizes); llama-bench brings llama.cpp's own defaults. The binary is built
from the installed libllama's source with the same ISA flags on first use (`quantize.native_tools`), then cached.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ondevice.errors import InvalidInput, OnDeviceError
from quantize.native_tools import Progress, ensure_converter, ensure_tools


@dataclass
class NativeResult:
    """What llama.cpp's own llama-bench measured on one file (tokens/s, mean ± standard deviation)."""

    model: str
    threads: int
    n_prompt: int
    n_gen: int
    repetitions: int
    tg_ts: float | None
    tg_stddev: float | None
    pp_ts: float | None
    pp_stddev: float | None
    flash_attn: str          # as llama-bench ran it (its default is "auto")
    build: str               # "<llama-cpp-python version> <flags digest>"
    command: list[str] = field(default_factory=list)


def native_reference(model_path: str | Path, threads: int, n_gen: int = 128, n_prompt: int = 0,
                     repetitions: int = 5, flash_attn: str | None = None,
                     progress: Progress | None = None) -> NativeResult:
    """llama.cpp's own llama-bench on `model_path` with `threads`: tg`n_gen` (and pp`n_prompt` if > 0) tokens/s.

    Builds the tools on first use (see `ensure_tools`). flash_attn: None keeps llama-bench's default ("auto");
    "on"/"off" force it. The numbers are llama-bench's own (mean and standard deviation over `repetitions`).
    """
    path = Path(model_path)
    if not path.is_file():
        raise InvalidInput(f"{path}: llama-bench needs a GGUF file")
    if threads < 1 or n_gen < 0 or n_prompt < 0 or n_gen + n_prompt == 0 or repetitions < 1:
        raise InvalidInput("llama-bench needs threads >= 1, repetitions >= 1 and n_gen or n_prompt > 0")
    tools = ensure_tools(progress)
    cmd = [str(tools.tool("llama-bench")), "-m", str(path), "-t", str(threads), "-r", str(repetitions),
           "-p", str(n_prompt), "-n", str(n_gen), "-o", "json"]
    if flash_attn is not None:
        cmd += ["-fa", flash_attn]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OnDeviceError(f"llama-bench failed on {path} (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")
    rows = json.loads(proc.stdout)
    tg = next((r for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0), None)
    pp = next((r for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0), None)
    fa = {-1: "auto", 0: "off", 1: "on"}.get(int(rows[0].get("flash_attn", -1)), str(rows[0].get("flash_attn")))
    return NativeResult(
        model=str(path), threads=threads, n_prompt=n_prompt, n_gen=n_gen, repetitions=repetitions,
        tg_ts=tg["avg_ts"] if tg else None, tg_stddev=tg["stddev_ts"] if tg else None,
        pp_ts=pp["avg_ts"] if pp else None, pp_stddev=pp["stddev_ts"] if pp else None, flash_attn=fa,
        build=f"{tools.version} {tools.bin_dir.parent.name.rsplit('-', 1)[-1]}", command=cmd)


@dataclass
class NativeComparison:
    """One `ondevice bench` test beside llama-bench's same test (same file, threads, -p/-n), interleaved: `rounds`
    rounds of a fresh public-API bench process and a fresh llama-bench process in alternation (`bench.interleave`),
    each with its own warm-up and one timed run."""

    model: str
    test: str                 # "pp512" / "tg128"
    threads: int
    public_ts: float          # ondevice bench, public API: median over the rounds
    native_ts: float | None   # llama-bench: median over the rounds
    native_stddev: float | None  # llama-bench's standard deviation over the rounds
    ratio: float | None       # median of the per-round public / native
    flash_attn: str           # llama-bench's setting (its default: auto)
    ratio_min: float | None = None
    ratio_max: float | None = None
    rounds: int = 0
    public_samples: list[float] = field(default_factory=list)
    native_samples: list[float] = field(default_factory=list)
    public_stddev: float | None = None


def compare_native(results: list, repetitions: int = 5, progress: Progress | None = None,
                   config=None) -> list[NativeComparison]:
    """llama-bench beside the public API on every GGUF model of an `ondevice bench` run (its `BenchResult`s), one row
    per test, measured interleaved: `repetitions` rounds, each a fresh `bench.worker` process (one warm-up, one timed
    run of every test) and a fresh `llama-bench -r 1` (which warms up too), in alternating order. `config`: the
    run's `BenchConfig` (KV type, flash attention, context) for the public side. Builds the tools on first use."""
    import statistics
    from dataclasses import replace

    from bench.interleave import interleave

    from bench.runner import BenchConfig, bench_model

    rows: list[NativeComparison] = []
    done: set[tuple[str, int]] = set()
    for r in results:
        key = (r.model_filename, r.n_threads)
        if r.backend != "gguf" or key in done:
            continue
        done.add(key)
        tests = [x for x in results if (x.model_filename, x.n_threads) == key]
        n_prompt = max((x.n_prompt for x in tests if x.n_gen == 0), default=0)
        n_gen = max((x.n_gen for x in tests if x.n_prompt == 0), default=0)
        cfg = replace(config or BenchConfig(), n_prompt=n_prompt, n_gen=n_gen, repetitions=1, threads=r.n_threads,
                      reference=False)
        path = r.model_filename

        def public(path=path, cfg=cfg) -> dict:
            return {x.test: x.avg_ts for x in bench_model(path, cfg)}

        def native(path=path, threads=r.n_threads, n_gen=n_gen, n_prompt=n_prompt) -> dict:
            nat = native_reference(path, threads, n_gen, n_prompt, 1, progress=progress)
            out = {"flash_attn": nat.flash_attn}
            if nat.tg_ts is not None:
                out[f"tg{n_gen}"] = nat.tg_ts
            if nat.pp_ts is not None:
                out[f"pp{n_prompt}"] = nat.pp_ts
            return out

        def step(desc: str, i: int, total: int, name=Path(path).name) -> None:
            if progress:
                progress(f"interleaved vs llama-bench: {name} -t {r.n_threads}: {desc}")

        comp = interleave(public, native, max(1, repetitions), warmup=0, labels=("public", "llama-bench"),
                          key=lambda d: 0.0, progress=step)
        for x in tests:
            c = comp.on(lambda d, t=x.test: d.get(t, float("nan")))
            nat_ok = all(v == v for v in c.b)  # llama-bench measured this test in every round
            rows.append(NativeComparison(
                x.model_filename, x.test, x.n_threads, round(c.a_median, 3),
                round(c.b_median, 3) if nat_ok else None,
                round(statistics.stdev(c.b), 3) if nat_ok and c.rounds > 1 else (0.0 if nat_ok else None),
                round(c.ratio_median, 4) if nat_ok else None, comp.b_results[0]["flash_attn"],
                round(c.ratio_min, 4) if nat_ok else None, round(c.ratio_max, 4) if nat_ok else None, c.rounds,
                [round(v, 3) for v in c.a], [round(v, 3) for v in c.b] if nat_ok else [],
                round(statistics.stdev(c.a), 3) if c.rounds > 1 else 0.0))
    return rows


def native_table(rows: list[NativeComparison]) -> str:
    """Markdown: public vs native tokens/s per model and test (medians ± standard deviation over the interleaved
    rounds; the ratio is the median of the per-round ratios, with their range)."""
    lines = ["| model | threads | test | rounds | public t/s | native t/s | public / native (per-round range) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for c in rows:
        public = f"{c.public_ts:.2f} ± {c.public_stddev or 0:.2f}"
        native = f"{c.native_ts:.2f} ± {c.native_stddev:.2f}" if c.native_ts else ""
        ratio = f"{c.ratio:.3f} ({c.ratio_min:.3f}-{c.ratio_max:.3f})" if c.ratio else ""
        lines.append(f"| {Path(c.model).name} | {c.threads} | {c.test} | {c.rounds} | {public} | {native} | "
                     f"{ratio} |")
    return "\n".join(lines)


def native_tools(build_converter: bool = False, progress: Progress | None = None):
    """llama.cpp's own tools for the installed libllama (`quantize.native_tools.ensure_tools`: built on first use,
    minutes, then cached) and, with `build_converter`, the folder of its HF -> GGUF converter (else None)."""
    tools = ensure_tools(progress)
    return tools, (ensure_converter(progress) if build_converter else None)


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("native")
