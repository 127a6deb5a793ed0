"""Many streams per pass: the server's continuous-batching path (`ondevice serve MODEL --parallel N`).

With N > 1 slots, chat and completion requests that the batch engine can serve (plain sampling, a prompt that fits a
slot) join `ondevice.backends.llama_batch.BatchEngine` instead of waiting for the model one at a time. The engine's
steps run on the model's own thread (`ModelWorker`), one executor task per step that queues the next: the executor
is FIFO, so a request on the single-stream path (a grammar, a router, a prompt too long for a slot) interleaves with
the steps instead of waiting for the batch to drain, and the two never touch libllama at the same time.

Each request's events reach the event loop through its own `asyncio.Queue`, a step's events in one hand-over (one
wake-up of the loop per step, not per token). Admission is bounded like the
single-stream queue: with every slot busy and `max_queue` requests already waiting, a request gets 429 with
Retry-After. A client that goes away cancels its job; the engine frees the slot before its next step.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import AsyncIterator, Callable, Sequence

from ondevice.backends import StreamEvent, Timings
from ondevice.errors import ContextOverflow
from ondevice.decoding.sampling import SamplingParams
from ondevice.server.errors import APIError
from ondevice.server.scheduler import ModelWorker

log = logging.getLogger("ondevice.server")
DEFAULT_MAX_SLOTS = 4      # the default --parallel: at most this many, fewer when RAM is short
RAM_SHARE = 0.5            # slots' KV may take at most this share of the RAM available after loading


def auto_slots(model, slot_ctx: int, available_bytes: int | None = None, limit: int = DEFAULT_MAX_SLOTS) -> int:
    """How many slots of `slot_ctx` tokens to open: up to `limit`, as many as fit in half the available RAM
    (`ondevice.models.memory` sizes one slot's KV cache). 1 means no batching."""
    from ondevice.machine.autoconfig import memory
    from ondevice.models.memory import kv_bytes

    if available_bytes is None:
        available_bytes = memory().available_bytes
    per_slot = max(1, kv_bytes(model.info, slot_ctx, model.backend.options.kv_type))
    return max(1, min(limit, int(available_bytes * RAM_SHARE // per_slot)))


class Batcher:
    """The batch engine of a served model, driven on the model's worker thread."""

    def __init__(self, engine, worker: ModelWorker, max_queue: int):
        self.engine = engine
        self.worker = worker
        self.max_queue = max_queue
        self.admitted = 0          # requests in the engine (waiting for a slot or decoding)
        self.served = 0
        self._scheduled = False    # a step task is queued on the worker (touched on the worker thread only)
        self._outbox: list = []    # (queue, event) pairs of the running step, handed to the event loop at its end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mean_s = 1.0

    @classmethod
    def create(cls, model, worker: ModelWorker, parallel: int | None, max_queue: int) -> "Batcher | None":
        """A batcher with `parallel` slots (None: sized by `auto_slots`), or None when there is nothing to batch
        (1 slot, or a backend other than GGUF). Runs on the worker thread."""
        from ondevice.backends.llama_batch import BatchEngine
        from ondevice.backends.llama_cpp_backend import LlamaCppBackend

        if not isinstance(model.backend, LlamaCppBackend):
            return None
        # A batch puts concurrent requests' rows in one evaluation; on a model whose logits depend on how rows are
        # batched (the load-time check, `LlamaCppBackend.split_invariant`) a temperature-0 answer would then depend
        # on what else is running. "auto" serves such a model one request at a time; an explicit N is obeyed.
        if not model.backend.split_invariant:
            if parallel is None:
                log.info("no batching: %s's logits depend on how a prompt is batched, so batched answers would "
                         "depend on concurrent requests (one request at a time keeps temperature 0 exact)",
                         model.name)
                return None
            log.warning("--parallel %d on %s: its logits depend on how rows are batched, so temperature-0 answers "
                        "may change with concurrent requests", parallel, model.name)
        slots = auto_slots(model, model.n_ctx) if parallel is None else parallel
        if slots <= 1:
            return None
        try:
            engine = BatchEngine(model.backend, slots, model.n_ctx)
        except MemoryError as exc:  # the slots' KV cache did not fit after all: serve one at a time
            log.warning("no batching: %s", exc)
            return None
        return cls(engine, worker, max_queue)

    # --- the step loop (worker thread) -------------------------------------------------------------------------
    def _kick(self) -> None:
        if not self._scheduled and self.engine.busy:
            self._scheduled = True
            self.worker.submit(self._step)

    def _step(self) -> None:
        self._scheduled = False
        try:
            self.engine.step()
        except Exception as exc:  # a bug must not leave every client of the batch waiting forever
            log.exception("batched decoding step failed")
            self.engine.fail_all(exc)
        if self._outbox:  # one wake-up of the event loop per step, not one per token
            outbox, self._outbox = self._outbox, []
            self._loop.call_soon_threadsafe(_deliver, outbox)
        self._kick()

    def _submit(self, job) -> None:
        self.engine.submit(job)
        self._kick()

    # --- requests (event loop) ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.admitted > 0

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - self.engine.n_slots)

    def info(self) -> dict:
        return {"slots": self.engine.n_slots, "slot_ctx": self.engine.slot_ctx, "active": min(self.admitted,
                self.engine.n_slots), "waiting": self.waiting, "steps": self.engine.steps,
                "reused_tokens": self.engine.reused_tokens}

    async def start(self, params: SamplingParams, prompt: Callable[[], str | Sequence[int]]) -> "BatchRun | None":
        """Admit a request whose prompt is `prompt()` (rendered on the worker thread); None when the batch cannot
        serve it (the caller then takes the single-stream path). Prompt errors raise here, before any response."""
        from ondevice.backends.llama_batch import Job, batchable

        if not batchable(params):
            return None
        if self.admitted >= self.engine.n_slots + self.max_queue:
            self.worker.stats.rejected += 1
            retry = max(1, min(60, math.ceil(self._mean_s * (self.waiting + 1) / self.engine.n_slots)))
            raise APIError(429, f"the server is busy: all {self.engine.n_slots} slots are taken and "
                                f"{self.waiting} requests are waiting; retry later", "queue_full",
                           headers={"Retry-After": str(retry)})
        self.admitted += 1
        try:
            self.engine.backend.check_params(params)
            tokens = await self.worker.call(self.engine.backend.prompt_tokens, await self.worker.call(prompt))
        except BaseException:
            self.admitted -= 1
            raise
        if len(tokens) >= self.engine.slot_ctx:  # fits the model's context but not a slot: one at a time
            self.admitted -= 1
            return None
        self._loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        job = Job(tokens, params, lambda event: self._outbox.append((queue, event)))  # on the worker thread
        try:
            await self.worker.call(self._submit, job)
        except ContextOverflow:
            self.admitted -= 1
            return None
        return BatchRun(self, job, queue)

    def _done(self, seconds: float, completed: bool) -> None:
        self.admitted -= 1
        self._mean_s = 0.8 * self._mean_s + 0.2 * seconds
        if completed:
            self.worker.stats.served += 1
        else:
            self.worker.stats.cancelled += 1

    def close(self) -> None:
        """Free the engine (on the worker thread, after the last step)."""
        self.engine.close()


def _deliver(outbox: list) -> None:
    for queue, event in outbox:
        queue.put_nowait(event)


class BatchRun:
    """One request in the batch, with the interface of `ondevice.server.generation.Run` (events, close, usage)."""

    def __init__(self, batcher: Batcher, job, queue: asyncio.Queue):
        self.batcher = batcher
        self.job = job
        self._queue = queue
        self._start = time.monotonic()
        self._closed = False
        self.finish_reason: str | None = None
        self.timings: Timings | None = None
        self.final: StreamEvent | None = None
        self.tokens = 0

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Events as the engine produces them; the last one has `finish_reason` and `timings`."""
        while self.finish_reason is None:
            event: StreamEvent = await self._queue.get()
            if event.finish_reason == "error":
                self.timings = event.timings
                raise RuntimeError(str(getattr(self.batcher.engine, "last_error", "batched decoding failed")))
            if event.token is not None:
                self.tokens += 1
                self.batcher.worker.stats.tokens += 1
            if event.finish_reason is not None:
                self.finish_reason, self.timings, self.final = event.finish_reason, event.timings, event
            yield event

    def close(self) -> None:
        """Leave the batch (idempotent, never awaits): a request that has not finished is cancelled, and the engine
        frees its slot before the next step."""
        if self._closed:
            return
        self._closed = True
        if self.finish_reason is None:
            self.job.cancel()
            self.batcher.worker.submit(self.batcher._kick)  # let the engine notice even if it is idle
        self.batcher._done(time.monotonic() - self._start, completed=self.finish_reason is not None)

    @property
    def prompt_tokens(self) -> int:
        return self.timings.prompt_tokens if self.timings else 0


async def maybe_start(state, request) -> BatchRun | None:
    """The batched run of a `Request` (chat or completion), or None when this server does not batch or the request
    needs the single-stream path (grammar, speculative decoding, a router, a long prompt)."""
    batcher = getattr(state, "batcher", None)
    if batcher is None or getattr(state, "router", None) is not None:
        return None
    backend = state.model.backend
    messages, prompt = request.messages, request.rendered or request.prompt
    render = (lambda: backend.render_chat(messages)) if prompt is None else (lambda: prompt)
    return await batcher.start(request.params, render)
