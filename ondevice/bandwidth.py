"""A quick memory-bandwidth probe: how many GB/s this machine can read from RAM with several threads.

Token generation on CPUs is bandwidth-bound (every weight is read once per token), so this number predicts the
decode ceiling: tg_max = bandwidth / bytes read per token.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class BandwidthResult:
    """Measured read bandwidth."""

    gbps: float
    threads: int
    buffer_mb: int
    seconds: float


def measure_bandwidth(seconds: float = 1.0, threads: int | None = None, buffer_mb: int = 512) -> BandwidthResult:
    """Read a buffer much larger than the caches repeatedly from `threads` threads for about `seconds`.

    numpy releases the GIL inside its reductions, so Python threads read in parallel. The best pass is reported,
    as bandwidth tools do (it is the least disturbed by other work on the machine).
    """
    from ondevice.cpu import detect_cpu

    threads = threads or detect_cpu().physical_cores
    n = buffer_mb * 1024 * 1024 // 8
    buf = np.ones(n, dtype=np.float64)
    slices = np.array_split(buf, threads)
    best = 0.0
    start = time.perf_counter()

    def read(part: np.ndarray) -> None:
        part.sum()

    while True:
        workers = [threading.Thread(target=read, args=(s,)) for s in slices]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        dt = time.perf_counter() - t0
        best = max(best, buf.nbytes / dt / 1e9)
        if time.perf_counter() - start >= seconds:
            break
    return BandwidthResult(gbps=round(best, 2), threads=threads, buffer_mb=buffer_mb,
                           seconds=round(time.perf_counter() - start, 3))
