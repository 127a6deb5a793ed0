"""This machine's memory bandwidth: a STREAM-style measurement, cached per machine with its date.

Token generation on CPUs is bandwidth-bound (every weight is read once per token), so this number anchors every
decode ceiling: tg_max = bandwidth / bytes read per token. `machine_bandwidth()` is the one function that `doctor`,
`bench` (its roofline, the device targets, the demo) and the predictor's local points take it from.

How it is measured (`measure_bandwidth`):
- Kernels. `read`: an OR-reduction over the buffer as 64-bit words (`numpy.bitwise_or.reduce`), whose SIMD loop
  runs at 60-75 GB/s from cache on one core of the development machine, well above what memory delivers, so the time
  is the memory's. A float64 `sum` (this module's old kernel) ran at 26 GB/s from cache: the arithmetic, not the
  memory, set its pace. `triad`: STREAM's a = b + s * c, in blocks small enough that the intermediate stays in cache;
  bytes counted as STREAM counts them (three arrays of 8 bytes per element, write-allocate traffic not counted).
- A buffer of at least 512 MiB and 12 x the last-level cache, advised as transparent huge pages (as the runtime
  does for model weights, `ondevice.machine.hugepages`: with 4 KiB pages the hardware prefetchers stop at every page and
  the TLB misses, and the same read measured 30-50% lower here) and written once before any pass, so no page fault
  is timed. Each pass reads one 128 MiB window of it (at least 4 x the last-level cache: STREAM's rule), the next
  pass the next window, so no pass finds its data in the cache.
- Thread counts 1, the physical cores and all logical CPUs (duplicates dropped); on Linux each worker thread is
  pinned to its own CPU, one per core for the physical count. Threads start each pass together (a barrier) and a
  pass lasts from the first start to the last finish. numpy releases the GIL inside these loops.
- Two untimed warm-up passes per kernel and thread count, then `passes` (200) timed passes of a few milliseconds (200, not 24: the best of 24 moved by 5.5% from run to run here, the best of 200 by 2.3-4.2%).
  On a shared machine the scheduler takes the CPU away in the middle of some passes; a pass counts as
  undisturbed when every thread's own CPU clock ran for at least 90% of its wall time and the threads started
  together; on a busy machine passes go on (up to 2 s per kernel and thread count) until 8 were undisturbed.
  min / median / max GB/s are over the undisturbed passes (over all of them if none was).

The anchor (`BandwidthReport.gbps`) is the read kernel's best pass at the physical-core count: like STREAM's "best
rate" it is the pass least disturbed by anything else running, which makes it the stable property of the machine;
the median and min say how disturbed the machine was. Results are cached in `<store>/bandwidth.json` under a
fingerprint of the machine (CPU model and flags, core counts, RAM, host name) with the date; `doctor --bandwidth`
(or `machine_bandwidth(refresh=True)`) measures again.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

MIN_BUFFER_MB = 512
DEFAULT_PASSES = 200
MIN_UNDISTURBED = 8            # on a busy machine, passes go on until this many ran undisturbed ...
MAX_SECONDS = 2.0              # ... or this long went by (per kernel and thread count)
WINDOW_MB = 128                # bytes one pass reads (at least 4 x the last-level cache)
WARMUP_PASSES = 2
TRIAD_BLOCK = 1 << 17          # elements per triad block: 1 MiB per array, the intermediate stays in cache;
                               # large enough that the GIL is taken once per 3 MiB of traffic
CACHE_VERSION = 1


@dataclass
class KernelRun:
    """One kernel at one thread count: GB/s over the timed passes."""

    kernel: str                # "read" or "triad"
    threads: int
    pinned: bool               # each thread on its own CPU
    passes: int                # timed passes run (more than asked for when a busy machine disturbed them)
    min_gbps: float            # over the undisturbed passes (over all of them when none was undisturbed)
    median_gbps: float
    max_gbps: float
    undisturbed: int = 0       # passes no other work interrupted (see `_timed_passes`)

    @property
    def spread_pct(self) -> float:
        """(max - min) / max over the passes, in %: how disturbed this measurement was."""
        return round(100 * (1 - self.min_gbps / self.max_gbps), 1) if self.max_gbps else 0.0


@dataclass
class BandwidthReport:
    """This machine's measured memory bandwidth (see the module docstring). JSON keys are the field names."""

    gbps: float                # the anchor: read kernel, best pass, at `threads` (the physical cores)
    threads: int
    measured_at: str           # ISO 8601, UTC
    machine: str               # what the fingerprint covers, readable
    fingerprint: str
    buffer_mb: int
    huge_pages: bool           # the buffer was advised as transparent huge pages
    seconds: float             # how long the measurement took
    runs: list[KernelRun] = field(default_factory=list)
    cached: bool = False       # read from the cache rather than measured by this call
    load_average: float | None = None  # the 1-minute load average when the measurement started (POSIX)
    busy: bool = False         # other work was running: load average above half the CPUs, or fewer than 3
                               # undisturbed read passes at some thread count; the figure may be low

    @property
    def note(self) -> str:
        """A warning to show beside the figure when it was measured on a busy machine, else empty."""
        if not self.busy:
            return ""
        load = f"load average {self.load_average:.1f}" if self.load_average is not None else "load unknown"
        worst = min((r for r in self.runs if r.kernel == "read"), key=lambda r: r.undisturbed / r.passes)
        threads = f"{worst.threads} thread{'s' if worst.threads > 1 else ''}"
        return (f"measured while the machine was busy ({load}; {worst.undisturbed} of {worst.passes} read passes "
                f"undisturbed at {threads}): the figure may be low; `ondevice doctor --bandwidth` on a quiet "
                f"machine measures it again")

    def run(self, kernel: str, threads: int | None = None) -> KernelRun | None:
        """The `kernel` run at the largest measured thread count <= `threads` (default: the anchor's count)."""
        threads = threads or self.threads
        rows = [r for r in self.runs if r.kernel == kernel]
        below = [r for r in rows if r.threads <= threads]
        return max(below, key=lambda r: r.threads) if below else (min(rows, key=lambda r: r.threads) if rows else None)

    def read_gbps(self, threads: int | None = None) -> float:
        """The read bandwidth (best pass) for a workload on `threads` threads: the run at the largest measured
        thread count that does not exceed it. Default: the anchor."""
        row = self.run("read", threads)
        return row.max_gbps if row else self.gbps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BandwidthReport":
        data = dict(data)
        data["runs"] = [KernelRun(**r) for r in data.get("runs", [])]
        return cls(**data)


# --- the machine ---------------------------------------------------------------------------------------------------

def _llc_bytes() -> int:
    """Last-level cache size of CPU 0 (Linux sysfs), 0 where unknown."""
    best = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            best = max(best, int(text.rstrip("KMG")) * scale)
        except ValueError:
            continue
    return best


def _cpus_one_per_core() -> list[int]:
    """The CPUs this process may run on, one per physical core first (Linux topology), then the siblings."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    first, rest, seen = [], [], set()
    for cpu in allowed:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            core = (base / "physical_package_id").read_text().strip(), (base / "core_id").read_text().strip()
        except OSError:
            core = ("", str(cpu))
        (rest if core in seen else first).append(cpu)
        seen.add(core)
    return first + rest


def machine_fingerprint() -> tuple[str, str]:
    """(readable description, short hash) of what the cache is keyed on: CPU model and ISA flags, core counts,
    total RAM and host name. A different machine (or the same image on another CPU type) measures again."""
    from ondevice.machine.autoconfig import memory
    from ondevice.machine.cpu import detect_cpu

    cpu = detect_cpu()
    ram_gb = round(memory().total_bytes / 2**30)
    text = (f"{cpu.model}, {cpu.physical_cores} physical / {cpu.logical_cores} logical cores, {ram_gb} GiB RAM, "
            f"host {platform.node()}")
    key = text + " " + " ".join(cpu.flags)
    return text, hashlib.sha256(key.encode()).hexdigest()[:16]


def thread_counts() -> list[int]:
    """1, the physical cores, all logical CPUs: the counts measured (duplicates dropped)."""
    from ondevice.machine.cpu import detect_cpu

    cpu = detect_cpu()
    return sorted({1, cpu.physical_cores, cpu.logical_cores})


# --- measuring -----------------------------------------------------------------------------------------------------

def _buffer(nbytes: int) -> tuple[np.ndarray, bool, object]:
    """A written float64 buffer of `nbytes`, advised as huge pages where the OS allows; (array, advised, owner)."""
    try:
        mem = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (AttributeError, OSError, ValueError):  # not a POSIX mmap: plain numpy memory
        arr = np.ones(nbytes // 8)
        return arr, False, arr
    advised = False
    if hasattr(mem, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mem.madvise(mmap.MADV_HUGEPAGE)
            advised = True
        except OSError:
            advised = False
    arr = np.frombuffer(mem, dtype=np.float64)
    arr[:] = 1.0  # fault every page in now, not during a timed pass
    return arr, advised, mem


def _windows(arr: np.ndarray, window: int) -> list[np.ndarray]:
    """The buffer cut into windows of `window` elements: consecutive passes read different windows, so no pass finds
    the last one's data in the cache (each window is several times the last-level cache)."""
    return [arr[j:j + window] for j in range(0, len(arr) - window + 1, window)] or [arr]


def _read_kernel(windows: list[np.ndarray], n: int):
    """run(i, k): thread i of n ORs its share of window k as 64-bit words; bytes per pass."""
    parts = [[p.view(np.uint64) for p in np.array_split(w, n)] for w in windows]
    reduce = np.bitwise_or.reduce

    def run(i: int, k: int) -> None:
        reduce(parts[k][i])
    return run, windows[0].nbytes


def _triad_kernel(windows: list[np.ndarray], n: int):
    """run(i, k): thread i of n computes a = b + 3c on its share of window k (a, b, c its thirds); bytes per pass as
    STREAM counts them."""
    blocks, nbytes = [], 0
    for w in windows:
        per_thread = []
        for p in np.array_split(w, n):
            m = len(p) // 3
            a, b, c = p[:m], p[m:2 * m], p[2 * m:3 * m]
            per_thread.append([(a[j:j + TRIAD_BLOCK], b[j:j + TRIAD_BLOCK], c[j:j + TRIAD_BLOCK])
                               for j in range(0, m, TRIAD_BLOCK)])
            nbytes += 3 * 8 * m if w is windows[0] else 0
        blocks.append(per_thread)
    multiply, add = np.multiply, np.add

    def run(i: int, k: int) -> None:
        for a, b, c in blocks[k][i]:
            multiply(c, 3.0, out=a)   # a = 3c, still in cache ...
            add(a, b, out=a)          # ... a = b + 3c: memory sees read b, read c, write a
    return run, nbytes


@dataclass
class _Pass:
    seconds: float       # first start to last finish
    undisturbed: bool    # every thread ran the whole time (CPU time >= 90% of its wall time) and they overlapped


def _timed_passes(run, n_threads: int, n_windows: int, cpus: list[int], passes: int) -> tuple[list[_Pass], bool]:
    """Run `run(i, window)` on `n_threads` pinned threads, all starting together, WARMUP_PASSES + `passes` times,
    a different window each pass; return each timed pass and whether pinning worked.

    A pass is undisturbed when every thread was on a CPU for at least 90% of its wall time (its own CPU clock,
    `time.thread_time`) and the threads started within 10% of the pass of each other: on a shared machine that
    is how a pass the scheduler interrupted is told from one the memory limited."""
    start, finish = threading.Barrier(n_threads + 1), threading.Barrier(n_threads + 1)
    stamps = [(0.0, 0.0, 0.0)] * n_threads
    pinned = [False] * n_threads
    window = [0]
    stop = False

    def worker(i: int) -> None:
        if hasattr(os, "sched_setaffinity"):
            try:  # pid 0 is the calling thread on Linux: this pins this worker thread only
                os.sched_setaffinity(0, {cpus[i % len(cpus)]})
                pinned[i] = True
            except OSError:
                pass
        while True:
            start.wait()
            if stop:
                return
            c0, t0 = time.thread_time(), time.perf_counter()
            run(i, window[0])
            t1 = time.perf_counter()
            stamps[i] = (t0, t1, (time.thread_time() - c0) / max(t1 - t0, 1e-9))
            finish.wait()

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_threads)]
    for w in workers:
        w.start()
    out: list[_Pass] = []
    t_begin, k = time.perf_counter(), 0
    try:
        # At least `passes` timed passes; on a busy machine more, until MIN_UNDISTURBED of them ran undisturbed or
        # MAX_SECONDS went by.
        while k < WARMUP_PASSES + passes or (sum(p.undisturbed for p in out) < MIN_UNDISTURBED
                                             and time.perf_counter() - t_begin < MAX_SECONDS):
            window[0] = k % n_windows
            k += 1
            start.wait()
            finish.wait()
            if k > WARMUP_PASSES:
                first, last = min(s[0] for s in stamps), max(s[1] for s in stamps)
                wall = last - first
                skew = max(s[0] for s in stamps) - first
                ok = all(s[2] >= 0.9 for s in stamps) and skew <= 0.1 * wall
                out.append(_Pass(wall, ok))
    finally:
        stop = True
        start.wait()
        for w in workers:
            w.join()
    return out, all(pinned)


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _is_busy(load: float | None, cpus: int) -> bool:
    return load is not None and load > cpus / 2


def _buffer_mb(buffer_mb: int | None) -> int:
    if buffer_mb:
        return int(buffer_mb)
    from ondevice.machine.autoconfig import memory

    want = max(MIN_BUFFER_MB, 12 * _llc_bytes() // 2**20)
    return int(max(64, min(want, memory().available_bytes // 4 // 2**20)))  # never more than a quarter of free RAM


def measure_bandwidth(threads: list[int] | None = None, passes: int = DEFAULT_PASSES, buffer_mb: int | None = None,
                      kernels: tuple[str, ...] = ("read", "triad")) -> BandwidthReport:
    """Measure now (no cache): each kernel at each thread count (default `thread_counts()`), see the module
    docstring. About 4-5 s on a 2-core machine."""
    from ondevice.machine.cpu import detect_cpu
    from ondevice.errors import InvalidInput

    if passes < 3:
        raise InvalidInput(f"bandwidth passes must be at least 3, got {passes}")
    counts = sorted(set(threads or thread_counts()))
    if counts[0] < 1:
        raise InvalidInput(f"thread counts must be >= 1, got {counts}")
    unknown = set(kernels) - {"read", "triad"}
    if unknown or "read" not in kernels:
        raise InvalidInput(f"kernels are 'read' (required) and 'triad', got {list(kernels)}")
    t_start = time.perf_counter()
    load = _load_average()
    size_mb = _buffer_mb(buffer_mb)
    arr, advised, owner = _buffer(size_mb * 2**20)
    cpus = _cpus_one_per_core()
    window = max(WINDOW_MB << 20, 4 * _llc_bytes()) // 8
    windows = _windows(arr, min(window, len(arr)))
    runs = []
    try:
        for kernel in kernels:
            for n in counts:
                run, nbytes = (_read_kernel if kernel == "read" else _triad_kernel)(windows, n)
                timed, pinned = _timed_passes(run, n, len(windows), cpus, passes)
                clean = [p for p in timed if p.undisturbed]
                rates = sorted(nbytes / p.seconds / 1e9 for p in (clean or timed))
                runs.append(KernelRun(kernel, n, pinned, len(timed), round(rates[0], 2),
                                      round(statistics.median(rates), 2), round(rates[-1], 2), len(clean)))
    finally:
        del arr, owner  # the mapping is unmapped when the last view of it is gone
    cpu = detect_cpu()
    machine, fingerprint = machine_fingerprint()
    report = BandwidthReport(0.0, cpu.physical_cores, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             machine, fingerprint, size_mb, advised, round(time.perf_counter() - t_start, 2), runs,
                             load_average=load,
                             busy=_is_busy(load, cpu.logical_cores)
                             or any(r.undisturbed < 3 for r in runs if r.kernel == "read"))
    report.gbps = report.read_gbps(cpu.physical_cores)
    return report


# --- the cache -----------------------------------------------------------------------------------------------------

def cache_path() -> Path:
    """`<store>/bandwidth.json`: one entry per machine fingerprint."""
    from ondevice.models.store import store_dir

    return store_dir() / "bandwidth.json"


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def cached_bandwidth() -> BandwidthReport | None:
    """This machine's cached measurement, or None."""
    _, fingerprint = machine_fingerprint()
    entry = _read_cache().get("machines", {}).get(fingerprint)
    if not entry:
        return None
    try:
        report = BandwidthReport.from_dict(entry)
    except TypeError:  # an entry written by another version of this module
        return None
    report.cached = True
    return report


def _save(report: BandwidthReport) -> None:
    from ondevice.files import atomic_output

    data = _read_cache() or {"version": CACHE_VERSION, "machines": {}}
    data["machines"][report.fingerprint] = {**report.to_dict(), "cached": False}
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


_lock = threading.Lock()


def machine_bandwidth(refresh: bool = False, passes: int = DEFAULT_PASSES,
                      progress: Callable[[str], None] | None = None) -> BandwidthReport:
    """This machine's bandwidth: the cached measurement, or a new one (saved) when there is none or `refresh`.

    Measure on a quiet machine: the cached figure is reused until asked again (`ondevice doctor --bandwidth`),
    except that one taken on a busy machine (`busy`) is measured again once the machine is quiet."""
    with _lock:
        if not refresh:
            cached = cached_bandwidth()
            from ondevice.machine.cpu import detect_cpu

            if cached is not None and not (cached.busy and not _is_busy(_load_average(), detect_cpu().logical_cores)):
                return cached
        if progress:
            progress("measuring memory bandwidth (2-10 s, longer on a busy machine; cached for this machine after)")
        report = measure_bandwidth(passes=passes)
        try:
            _save(report)
        except OSError:  # a read-only store: still report the measurement
            pass
        return report


def anchor_note(efficiency: float | None, bandwidth: float) -> str:
    """A warning when a decode reached more than the bandwidth anchor allows (efficiency > 1): then the anchor is
    too low, not the decode too fast. Empty otherwise."""
    if efficiency is None or efficiency <= 1.0:
        return ""
    return (f"decode reached {efficiency:.0%} of the roofline at {bandwidth:.1f} GB/s: the bandwidth anchor is below "
            f"what decode itself reads per second (the anchor is wrong, not the decode); re-measure on a quiet "
            f"machine with `ondevice doctor --bandwidth`")
