"""Where sweep cells run: one after another on this machine (`local`), or as Ray tasks (`ray`).

Both engines run each cell the same way, `execute_cell`: a fresh `python -m bench.sweep CELL_JSON` process whose
last stdout line is the cell's row or its error. The local engine calls it in a loop; the Ray engine wraps it in a
task with num_cpus = the cell's threads, so Ray packs as many cells on each node as it has CPUs. Either way the
driver retries a failed cell once (a new process, on Ray possibly another node) and then reports it; a failed cell
never stops the sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from typing import Callable, Sequence

from bench.sweep import Cell, CellResult, SweepConfig
from ondevice.errors import BackendUnavailable

MAX_ATTEMPTS = 2          # the first try and one retry
LOG_TAIL_LINES = 8        # of a failed cell's stderr, kept in its error

Done = Callable[[Cell, CellResult], None]
Log = Callable[[str], None]


def execute_cell(cell: dict, config: dict, out_dir: str) -> dict:
    """Run one cell in a fresh process; return {"result": row} or {"error": one line}. Never raises for a
    failing cell, so the caller decides about retries the same way on every engine."""
    job = json.dumps({"cell": cell, "config": config, "out_dir": out_dir})
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "bench.sweep", job], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if lines:
        try:
            last = json.loads(lines[-1])
            if "result" in last or "error" in last:
                return last
        except ValueError:
            pass
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-LOG_TAIL_LINES:]
    return {"error": f"cell process exited with {proc.returncode}: " + " | ".join(tail)}


def _row(cell: Cell, outcome: dict, attempts: int) -> CellResult:
    if "result" in outcome:
        row = CellResult.from_dict(outcome["result"])
        row.attempts = attempts
        return row
    return CellResult(cell.id, cell.model, cell.format, cell.qtype, "failed", attempts=attempts,
                      error=outcome["error"])


class LocalEngine:
    """Cells one after another on this machine, each in its own process."""

    name = "local"

    def __init__(self, config: SweepConfig):
        self.config = config

    def run(self, cells: Sequence[Cell], out_dir: str, done: Done, log: Log) -> None:
        config = asdict(self.config)
        for i, cell in enumerate(cells, 1):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                log(f"cell {i}/{len(cells)} {cell.id}" + (f" (retry {attempt - 1})" if attempt > 1 else ""))
                outcome = execute_cell(asdict(cell), config, out_dir)
                if "result" in outcome or attempt == MAX_ATTEMPTS:
                    done(cell, _row(cell, outcome, attempt))
                    break
                log(f"{cell.id} failed ({outcome['error']}); retrying once")


def import_ray():
    """The `ray` module, or BackendUnavailable saying how to install it (Ray is the optional `sweep` extra)."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailable("--engine ray needs Ray, which is not installed "
                                 "(pip install 'ondevice-toolkit[sweep]')") from None
    return ray


class RayEngine:
    """One Ray task per cell (num_cpus = threads), on the cluster at `address` or a local one started here.

    A Ray session that is already initialised in this process (a notebook, a test) is used as it is and left
    running; one this engine started is shut down when the sweep ends."""

    name = "ray"

    def __init__(self, config: SweepConfig, address: str | None = None):
        self.config = config
        self.address = address
        self.ray = import_ray()

    def _start(self) -> bool:
        """Connect (or start a local cluster); True when this engine started Ray and must shut it down."""
        ray = self.ray
        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage report to the Ray project
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
        else:
            # A private single-node cluster: every CPU of this machine, no dashboard, listening on loopback only.
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
        return True

    def run(self, cells: Sequence[Cell], out_dir: str, done: Done, log: Log) -> None:
        ray = self.ray
        started = self._start()
        try:
            self._run(cells, out_dir, done, log)
        finally:
            if started:
                ray.shutdown()

    def _run(self, cells: Sequence[Cell], out_dir: str, done: Done, log: Log) -> None:
        ray = self.ray
        cpus = self.config.threads or 1
        available = ray.cluster_resources().get("CPU", 0)
        if available < cpus:
            raise BackendUnavailable(f"the Ray cluster has {available:g} CPUs; a cell asks for {cpus} (--threads)")
        task = ray.remote(num_cpus=cpus, max_retries=0)(execute_cell)
        config = asdict(self.config)
        pending = {}
        for cell in cells:
            pending[task.remote(asdict(cell), config, out_dir)] = (cell, 1)
        log(f"submitted {len(cells)} cells to Ray ({available:g} CPUs, {cpus} per cell)")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            cell, attempt = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker or its node died: count it as a failed attempt
                outcome = {"error": f"Ray task failed: {str(exc).strip().splitlines()[0]}"}
            if "error" in outcome and attempt < MAX_ATTEMPTS:
                log(f"{cell.id} failed ({outcome['error']}); retrying once")
                pending[task.remote(asdict(cell), config, out_dir)] = (cell, attempt + 1)
                continue
            done(cell, _row(cell, outcome, attempt))


def make_engine(name: str, config: SweepConfig, address: str | None = None):
    """The engine called `name` ("local" or "ray")."""
    return RayEngine(config, address) if name == "ray" else LocalEngine(config)
