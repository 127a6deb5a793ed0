"""A generation running on a ModelWorker: started with the lease held, pulled one token at a time.

Each token is one hop to the worker thread (`next(gen)`), so between any two tokens the event loop can notice a
client that went away; `close()` then releases the lease and closes the generator on the worker thread, which stops
decoding within one token (the GGUF backend frees its sampler in its `finally`).
"""

from __future__ import annotations

from typing import AsyncIterator, Callable, Iterator

from ondevice.backends import StreamEvent, Timings
from ondevice.server.scheduler import Lease, ModelWorker


class Run:
    """One admitted request: the lease, the backend's event generator, and what it produced so far."""

    def __init__(self, worker: ModelWorker, lease: Lease, events):
        self.worker = worker
        self.lease = lease
        self._events = events
        self.finish_reason: str | None = None
        self.timings: Timings | None = None
        self.final: StreamEvent | None = None  # the last event (a router's says who answered and why)
        self.tokens = 0

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Events as the model produces them; the last one has `finish_reason` and `timings`."""
        while self.finish_reason is None:
            event = await self.worker.call(next, self._events, None)
            if event is None:  # generator ended without a final event (should not happen): treat as a stop
                self.finish_reason = "stop"
                return
            if event.token is not None:
                self.tokens += 1
                self.worker.stats.tokens += 1
            if event.finish_reason is not None:
                self.finish_reason, self.timings, self.final = event.finish_reason, event.timings, event
            yield event

    def close(self) -> None:
        """Release the model (idempotent, never awaits: safe from a cancelled task or a `finally`)."""
        self.lease.release(cleanup=self._events.close, completed=self.finish_reason is not None)

    @property
    def prompt_tokens(self) -> int:
        return self.timings.prompt_tokens if self.timings else 0


async def start(worker: ModelWorker, open_events: Callable[[], Iterator[StreamEvent]]) -> Run:
    """Wait for the model, then open the generation on its thread (`open_events` renders and checks the prompt:
    `Model.chat_events` or `Model.stream_events`).

    Errors that depend on the prompt (over the context, empty) raise here, before any response is sent, so they
    become proper HTTP errors rather than a broken stream.
    """
    lease = await worker.acquire()
    try:
        events = await worker.call(open_events)
    except BaseException:
        lease.release()  # an error answer, not a disconnect
        raise
    return Run(worker, lease, events)
