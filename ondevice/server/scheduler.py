"""One model context, one thread, one request at a time; the rest wait in a bounded FIFO queue.

Every call that touches a model runs on the worker's single thread (llama.cpp contexts are not thread-safe, and the
event loop must never block). Admission is an `asyncio.Lock` (FIFO-fair): a request that would make the queue longer
than `max_queue` is refused at once with 429 + Retry-After, so no request is ever dropped silently, and each holds
the lock from its first model call until its lease is released, so no two requests interleave tokens.

Releasing a lease queues the generator's `close()` on the worker thread (fire-and-forget) and frees the lock at
once: the single-thread executor is FIFO, so the close (which frees the sampler) runs before the next request's
first model call, without the releasing task having to await anything (it may be a cancelled task).
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from ondevice.server.errors import APIError


@dataclass
class WorkerStats:
    """Counters reported by /health (the tests use them to see that a disconnect stopped its generation)."""

    served: int = 0           # leases released after a complete answer
    cancelled: int = 0        # leases released before the answer finished (client went away)
    rejected: int = 0         # 429s
    tokens: int = 0           # tokens generated, all requests


class ModelWorker:
    """Owns one model's thread and its admission queue."""

    def __init__(self, name: str, max_queue: int):
        self.name = name
        self.max_queue = max_queue
        self.waiting = 0
        self.stats = WorkerStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ondevice-{name}")
        self._lock = asyncio.Lock()
        self._mean_s = 1.0  # running mean of lease durations, for Retry-After

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` on the worker thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue `fn(*args)` on the worker thread without waiting for it."""
        return self._executor.submit(fn, *args)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: everyone waiting, at the mean request duration."""
        return max(1, min(60, math.ceil(self._mean_s * (self.waiting + 1))))

    async def acquire(self) -> "Lease":
        """Wait for the model; raise 429 at once when the queue is full."""
        if self._lock.locked() and self.waiting >= self.max_queue:
            self.stats.rejected += 1
            raise APIError(429, f"the server is busy: {self.waiting} requests are already waiting for "
                                f"{self.name}; retry later", "queue_full",
                           headers={"Retry-After": str(self.retry_after())})
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        return Lease(self)

    def _released(self, seconds: float) -> None:
        self._mean_s = 0.8 * self._mean_s + 0.2 * seconds
        self._lock.release()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)


class Lease:
    """The right to use a worker's model until `release()` (idempotent, never awaits)."""

    def __init__(self, worker: ModelWorker):
        self.worker = worker
        self._start = time.monotonic()
        self._released = False

    def release(self, cleanup: Callable[[], Any] | None = None, completed: bool = True) -> None:
        if self._released:
            return
        self._released = True
        if cleanup is not None:
            self.worker.submit(cleanup)
        if completed:
            self.worker.stats.served += 1
        else:
            self.worker.stats.cancelled += 1
        self.worker._released(time.monotonic() - self._start)

    async def __aenter__(self) -> "Lease":
        return self

    async def __aexit__(self, *exc) -> None:
        self.release(completed=exc[0] is None)
