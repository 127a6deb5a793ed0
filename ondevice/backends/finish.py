"""When and how a generation ends: the one set of finish rules every decode path uses.

`FinishRules` is what the single-stream loop (`ondevice.backends.text`), the batch engine
(`ondevice.backends.llama_batch`) and the remote backend (`ondevice.backends.remote`) all hand each new token or text piece
to. It owns, once:

- end-of-generation: an end-of-generation token ends the answer (unless `ignore_eos`), and is not part of it;
- the budget: `max_tokens`, or less where the context ends first ("length");
- stop strings: text is held back only while it could still become one; a hit ends the answer before it ("stop");
- a complete grammar: the answer ends there (the next token could only be end-of-text);
- UTF-8: a token's bytes are decoded incrementally, an incomplete sequence held back until it completes;
- timings: time to first token, prompt, decode and total milliseconds, tokens counted.

    rules = FinishRules(params, budget, decoder, is_eog, t0=time.perf_counter())
    events, finish = rules.token(token)      # the text events to send; finish is None, "stop" or "length"
    events += rules.end(finish)              # the held-back tail and the last event with finish_reason and timings
"""

from __future__ import annotations

import time
from typing import Callable

from ondevice.backends.base import StreamEvent, Timings
from ondevice.backends.stops import StopMatcher
from ondevice.decoding.sampling import SamplingParams


class FinishRules:
    """The finish rules and timings of one generation (see the module doc).

    decoder: an object with `decode(token) -> str` and `flush() -> str` (the backend's incremental UTF-8 decoder),
    or None for text that arrives already decoded (`text()`). is_eog: token -> whether it ends generation.
    """

    def __init__(self, params: SamplingParams, budget: int, decoder=None,
                 is_eog: Callable[[int], bool] | None = None, t0: float | None = None,
                 timings: Timings | None = None):
        self.params = params
        self.budget = budget
        self.decoder = decoder
        self.is_eog = is_eog or (lambda token: False)
        self.stops = StopMatcher(params.stop)
        self.timings = timings if timings is not None else Timings()
        self.t0 = time.perf_counter() if t0 is None else t0
        self.t_first: float | None = None
        self.hit_stop = False
        self.finished: str | None = None

    @property
    def remaining(self) -> int:
        """Tokens the budget still allows."""
        return self.budget - self.timings.completion_tokens

    def first_token(self, prompt_done: bool = True) -> None:
        """Record the time to first token (once); the prompt time too when the prompt ended there."""
        if self.t_first is None:
            self.t_first = time.perf_counter()
            self.timings.ttft_ms = (self.t_first - self.t0) * 1000
            if prompt_done and not self.timings.prompt_ms:
                self.timings.prompt_ms = self.timings.ttft_ms

    def token(self, token: int, grammar_complete: bool = False) -> tuple[list[StreamEvent], str | None]:
        """One generated token: the events to send and whether the answer ended ("stop", "length") or not."""
        if not self.params.ignore_eos and self.is_eog(token):
            return [], self._finish("stop")
        self.timings.completion_tokens += 1
        piece, self.hit_stop = self.stops.feed(self.decoder.decode(token))
        events = [StreamEvent(piece, token)]
        if self.hit_stop:
            return events, self._finish("stop")
        if grammar_complete and not self.params.ignore_eos:
            return events, self._finish("stop")
        if self.timings.completion_tokens >= self.budget:
            return events, self._finish("length")
        return events, None

    def text(self, piece: str) -> tuple[list[StreamEvent], str | None]:
        """Text that arrives decoded (a remote server's stream: one chunk ~ one token): stop strings, as for
        tokens."""
        self.first_token()
        self.timings.completion_tokens += 1
        out, self.hit_stop = self.stops.feed(piece)
        events = [StreamEvent(out)] if out else []
        if self.hit_stop:
            return events, self._finish("stop")
        return events, None

    def _finish(self, reason: str) -> str:
        self.finished = self.finished or reason
        return self.finished

    def stop(self) -> str:
        """The runtime ended the sequence itself (or a remote server said so): a "stop"."""
        return self._finish("stop")

    def end(self, finish: str | None = None) -> list[StreamEvent]:
        """The held-back tail (a possible stop-string prefix, an incomplete UTF-8 sequence) unless a stop string
        was hit, and the last event with the finish reason and timings."""
        finish = self.finished or finish or "length"
        events = []
        if not self.hit_stop:
            tail = (self.stops.feed(self.decoder.flush())[0] if self.decoder is not None else "") + \
                self.stops.flush()
            if tail:
                events.append(StreamEvent(tail))
        t_end = time.perf_counter()
        self.timings.decode_ms = (t_end - self.t_first) * 1000 if self.t_first else 0.0
        self.timings.total_ms = (t_end - self.t0) * 1000
        events.append(StreamEvent("", None, finish_reason=finish, timings=self.timings))
        return events
