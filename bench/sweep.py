"""Sweeps: many models x many quantisation types, each (model, variant) cell quantised, evaluated and benched.

    plan_cells(models, targets)                   -> [Cell]           checked before any work
    run_cell(cell, config)                        -> CellResult       in the cell's own process (python -m bench.sweep)
    run_sweep(models, targets, config, engine=)   -> SweepReport      plan, skip finished cells, run the rest, merge

A cell is `quantize.pipeline.quantize(source, [FORMAT:TYPE], evaluate=...)` (PPL/KLD against the f16 of the same
weights) followed by `bench.runner.bench_model` on the variant it made. Every cell runs in a fresh process, so one
cell's memory, threads and native state never leak into the next, and a crash (a segfault in a native library)
fails that cell only. The engines (`bench.sweep_engines`) decide where those processes run: one after another here,
or as Ray tasks on a local or multi-node cluster. The driver retries a failed cell once, then reports it; the sweep
goes on. A finished cell's row is written to OUT/results/<cell>.json (atomically); a re-run with the same settings
skips it, so an interrupted sweep resumes where it stopped.

The f16 reference of each model is made once per model store (`ONDEVICE_HOME`): the first cell of a model converts
it (under a file lock, so concurrent cells on one node do not race) and the others reuse it.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

from ondevice.errors import InvalidInput

ENGINES = ("local", "ray")
RESULTS = "results"   # OUT/results/<cell id>.json: one finished cell
CELLS = "cells"       # OUT/cells/<cell id>/: the files a cell made (on the node that ran it)


@dataclass
class SweepConfig:
    """What every cell does: evaluate (window/chunks of the pydoc text), bench (-p/-n/-r), with `threads`."""

    evaluate: bool = False
    bench: bool = False
    threads: int | None = None
    window: int = 512              # evaluation window in tokens
    chunks: int | None = 8         # evaluation windows per cell (None: the whole text)
    n_prompt: int = 128
    n_gen: int = 64
    repetitions: int = 3

    def check(self) -> "SweepConfig":
        if self.threads is not None and self.threads < 1:
            raise InvalidInput(f"--threads must be at least 1, got {self.threads}")
        if self.window < 16 or self.window % 2:
            raise InvalidInput(f"--window must be an even number >= 16, got {self.window}")
        if self.chunks is not None and self.chunks < 1:
            raise InvalidInput(f"--chunks must be at least 1, got {self.chunks}")
        if self.bench:
            from bench.runner import BenchConfig

            BenchConfig(self.n_prompt, self.n_gen, self.repetitions, self.threads).check()
        return self

    def fingerprint(self) -> dict:
        """The settings a stored result must have been made with to be reused (threads change tok/s)."""
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    """One (model, variant) pair of the sweep."""

    model: str        # alias or path, as given
    format: str       # gguf or onnx
    qtype: str        # Q4_K_M, int4, ...

    @property
    def id(self) -> str:
        """A file-name-safe, stable name: <model>--<format>-<type>."""
        return f"{_slug(self.model)}--{self.format}-{self.qtype}"

    @property
    def target(self) -> str:
        return f"{self.format}:{self.qtype}"


@dataclass
class CellResult:
    """One row of the sweep table: the variant, its quality against the f16 reference, its speed and memory."""

    cell: str
    model: str
    format: str
    qtype: str
    status: str                          # ok, failed
    attempts: int = 1
    error: str | None = None
    path: str | None = None              # the variant, on the node that made it
    host: str | None = None
    size_bytes: int | None = None
    bpw: float | None = None
    n_params: int | None = None
    ppl: float | None = None
    ppl_ref: float | None = None
    delta_ppl: float | None = None
    kld_mean: float | None = None
    kld_p99: float | None = None
    same_top_pct: float | None = None
    eval_windows: int | None = None
    pp_tok_s: float | None = None
    tg_tok_s: float | None = None
    peak_rss_bytes: int | None = None
    make_seconds: float | None = None
    seconds: float | None = None         # the whole cell, wall time
    settings: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "CellResult":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SweepReport:
    """Every cell's row (finished, skipped as already done, or failed) and the files the report went to."""

    out_dir: str
    engine: str
    config: SweepConfig
    rows: list[CellResult]
    ran: list[str]                       # cell ids run now
    skipped: list[str]                   # cell ids whose stored result was reused
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[CellResult]:
        return [r for r in self.rows if r.status != "ok"]

    def to_dict(self) -> dict:
        return {"out_dir": self.out_dir, "engine": self.engine, "config": asdict(self.config),
                "rows": [asdict(r) for r in self.rows], "ran": self.ran, "skipped": self.skipped,
                "seconds": self.seconds, "files": self.files}


def _slug(model: str) -> str:
    name = Path(model).name if ("/" in model or "\\" in model) else model
    name = re.sub(r"\.gguf$", "", name)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def plan_cells(models: Sequence[str], targets: Sequence[str]) -> list[Cell]:
    """Every (model, variant) cell, targets checked first (a typo fails before minutes of work), models found."""
    from ondevice.models.store import resolve
    from quantize.pipeline import parse_targets

    if not models:
        raise InvalidInput("give at least one MODEL (an alias, GGUF file or HF folder)")
    parsed = parse_targets(targets)
    for model in models:
        resolve(model)  # ModelNotFound now, not inside every cell; a corrupt file fails in its cells
    cells = [Cell(str(m), fmt, qtype) for m in dict.fromkeys(models) for fmt, qtype in parsed]
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        raise InvalidInput("two MODELS have the same file name; give them distinct names")
    return cells


# --- inside the cell's process ------------------------------------------------------------------------------------

def _reference_source(model: str) -> str:
    """What to quantise from: the model itself when it is an f16/f32 GGUF, else its f16 GGUF, converted once per
    model store (`quantize.materialize.to_runnable` caches it under the content key) with a lock, so concurrent cells
    on one node share one conversion."""
    from filelock import FileLock  # a dependency of torch (quantize extra) and ray

    from ondevice.models.gguf_file import file_type_name, read_gguf
    from ondevice.models.store import content_key, resolve, store_dir
    from quantize.hf_source import to_hf_dir
    from quantize.materialize import to_runnable

    ref = resolve(model)
    if ref.format == "gguf" and file_type_name(read_gguf(ref.path)) in ("F16", "ALL_F32", "F32", "BF16"):
        return str(ref.path)
    locks = store_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"reference-{content_key(ref.path)}.lock")):
        return str(to_runnable(to_hf_dir(model)))


def run_cell(cell: Cell, config: SweepConfig, out_dir: str | Path,
             log: Callable[[str], None] | None = None) -> CellResult:
    """Quantise, evaluate and bench one cell (call it in a fresh process: `execute_cell` does)."""
    from quantize.pipeline import quantize

    log = log or (lambda message: None)
    start = time.perf_counter()
    work = Path(out_dir) / CELLS / cell.id
    # ONNX variants are exported from the model's HF weights (the pipeline's own path); GGUF ones from the shared f16.
    source = cell.model if cell.format == "onnx" else _reference_source(cell.model)
    report = quantize(source, [cell.target], work, evaluate=config.evaluate, window=config.window,
                      max_chunks=config.chunks, threads=config.threads, decode_speed=False, progress=False, log=log)
    v = report.variants[0]
    if cell.format == "gguf":  # made from the store's f16, whose name is a cache key: give it the model's name
        named = work / f"{_slug(cell.model)}-{cell.qtype}.gguf"
        Path(v.path).replace(named)
        v.path = str(named)
    row = CellResult(cell.id, cell.model, cell.format, cell.qtype, "ok", path=v.path, host=socket.gethostname(),
                     size_bytes=v.size_bytes, bpw=v.bpw, n_params=v.n_params, ppl=v.ppl, ppl_ref=report.reference.ppl,
                     delta_ppl=v.delta_ppl, kld_mean=v.kld_mean, kld_p99=v.kld_p99, same_top_pct=v.same_top_pct,
                     eval_windows=report.eval_chunks or None, make_seconds=v.seconds,
                     settings=config.fingerprint())
    if config.bench:
        from bench.runner import BenchConfig, bench_model

        log(f"benchmarking {Path(v.path).name}")
        bench = BenchConfig(config.n_prompt, config.n_gen, config.repetitions, config.threads)
        for r in bench_model(v.path, bench):
            if r.n_gen:
                row.tg_tok_s = round(r.avg_ts, 2)
            else:
                row.pp_tok_s = round(r.avg_ts, 2)
            row.peak_rss_bytes = max(row.peak_rss_bytes or 0, r.peak_rss_bytes)
    row.seconds = round(time.perf_counter() - start, 1)
    return row


def _cell_main(argv: list[str]) -> int:
    """`python -m bench.sweep CELL_JSON`: run one cell, print {"result": row} or {"error": message} last."""
    from ondevice.errors import OnDeviceError

    job = json.loads(argv[0])
    cell, config = Cell(**job["cell"]), SweepConfig(**job["config"])
    try:
        row = run_cell(cell, config, job["out_dir"], log=lambda m: print(m, file=sys.stderr, flush=True))
    except OnDeviceError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"result": asdict(row)}), flush=True)
    return 0


# --- the driver ---------------------------------------------------------------------------------------------------

def result_path(out_dir: str | Path, cell: Cell) -> Path:
    return Path(out_dir) / RESULTS / f"{cell.id}.json"


def load_result(out_dir: str | Path, cell: Cell, config: SweepConfig) -> CellResult | None:
    """The stored row of a finished cell, if it was made with the same settings (else None: run it again)."""
    path = result_path(out_dir, cell)
    try:
        row = CellResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return row if row.status == "ok" and row.settings == config.fingerprint() else None


def save_result(out_dir: str | Path, cell: Cell, row: CellResult) -> Path:
    """Write a finished cell's row under its final name only once it is complete."""
    from ondevice.files import atomic_output

    path = result_path(out_dir, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(asdict(row), indent=1))
    return path


def run_sweep(models: Sequence[str], targets: Sequence[str], out_dir: str | Path,
              config: SweepConfig | None = None, engine: str = "local", address: str | None = None,
              ram_gb: Sequence[float] = (2, 4, 8, 16), max_kld: float | None = None, ctx: int = 2048,
              log: Callable[[str], None] | None = None) -> SweepReport:
    """Run every (model, variant) cell not already finished in `out_dir`, then write the merged table and report.

    engine: "local" (one cell after another on this machine) or "ray" (one Ray task per cell with num_cpus =
    threads, on the cluster at `address` or a local one started for the sweep). ram_gb/max_kld/ctx: the budgets the
    report recommends a variant for (`quantize.recommend`).
    """
    from bench.sweep_engines import make_engine
    from bench.sweep_report import write_report

    log = log or (lambda message: None)
    config = (config or SweepConfig()).check()
    if engine == "ray" and config.threads is None:
        config.threads = 1  # Ray reserves num_cpus = threads per cell; the runtime then uses exactly that many
    if engine not in ENGINES:
        raise InvalidInput(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    if address and engine != "ray":
        raise InvalidInput("--address is the Ray cluster to use; give --engine ray too")
    cells = plan_cells(models, targets)
    runner = make_engine(engine, config, address)  # BackendUnavailable now if ray is missing
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, CellResult] = {}
    for cell in cells:
        stored = load_result(out, cell, config)
        if stored is not None:
            rows[cell.id] = stored
    skipped = list(rows)
    todo = [c for c in cells if c.id not in rows]
    log(f"{len(cells)} cells: {len(skipped)} already done, {len(todo)} to run on the {engine} engine")

    def done(cell: Cell, row: CellResult) -> None:
        rows[cell.id] = row
        if row.status == "ok":
            save_result(out, cell, row)
            log(f"{cell.id}: done in {row.seconds:.0f} s (attempt {row.attempts})")
        else:
            log(f"{cell.id}: FAILED after {row.attempts} attempts: {row.error}")

    if todo:
        runner.run(todo, str(out.resolve()), done, log)
    report = SweepReport(str(out), engine, config, [rows[c.id] for c in cells], [c.id for c in todo], skipped,
                         round(time.perf_counter() - start, 1))
    report.files = write_report(report, out, ram_gb=ram_gb, max_kld=max_kld, ctx=ctx)
    return report


if __name__ == "__main__":
    sys.exit(_cell_main(sys.argv[1:]))
