"""Local first, remote when needed: a `Router` answers like a `Model` and decides, per request, who answers.

    local = ondevice.load("smollm2-135m")
    remote = ondevice.load("remote:qwen2.5-7b@http://gpu-box:8000/v1")
    router = ondevice.Router(local, remote, policy="privacy,size,confidence")
    result = router.chat(messages)
    result.text, result.routed_to, result.route_reason

Policies (combinable; each decision is recorded on the result with its reason):

- privacy: text with sensitive data (see `ondevice.routing.privacy`: emails, phone numbers, card and bank numbers, API keys
  and secrets, text marked private) never leaves the device. It is a veto: no other policy can send it remote.
- size: a prompt that does not fit the local context (prompt + max_tokens > n_ctx) goes remote.
- confidence: the local answer's mean token log-probability (one batched scoring pass over prompt + answer) below
  `min_logprob`, or an answer that fails its schema, is asked again of the remote model.
- availability (always on): a remote that is down, slow (timeout) or failing (5xx/429 after retries) gives a local
  answer, marked as such; a remote stream cut mid-answer is finished by the local model from where it stopped.
  No request is lost.

Streaming: with `stream=True` the answer streams from whoever the pre-generation policies pick; the confidence
policy needs the whole local answer, so when it is on, a local answer is generated first and then streamed.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from ondevice.backends.base import Generation, StreamEvent
from ondevice.errors import ContextOverflow, InvalidInput, RemoteUnavailable
from ondevice.decoding.messages import check_messages
from ondevice.model import TextStream
from ondevice.decoding.request import Request, build_request
from ondevice.routing.privacy import Detector, default_detector
from ondevice.decoding.sampling import SamplingParams

POLICIES = ("privacy", "size", "confidence")
DEFAULT_MIN_LOGPROB = -2.5
RECENT = 1000  # requests whose timings RouteStats keeps  # mean natural-log probability per answer token; below it the answer is a guess


@dataclass
class RoutedGeneration(Generation):
    """A Generation plus who answered and why (`routed_to` is "local" or "remote")."""

    routed_to: str = "local"
    route_reason: str = ""
    decisions: list[str] = field(default_factory=list)  # every policy's verdict, in order

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update(routed_to=self.routed_to, route_reason=self.route_reason, decisions=list(self.decisions))
        return out


@dataclass
class RouteStats:
    """How many requests went where, and why (for `/health` and the README's mixed-workload table)."""

    local: int = 0
    remote: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # Per-request timings of the most recent requests (bounded: a server's router lives as long as the server).
    overhead_ms: deque = field(default_factory=lambda: deque(maxlen=RECENT))  # deciding (privacy scan, size)
    scoring_ms: deque = field(default_factory=lambda: deque(maxlen=RECENT))   # the confidence pass (0 when not run)

    def summary(self) -> dict:
        """Counts and the median decision overhead (what /health shows)."""
        import statistics

        return {"local": self.local, "remote": self.remote, "reasons": dict(self.reasons),
                "median_overhead_ms": round(statistics.median(self.overhead_ms), 2) if self.overhead_ms else 0.0}

    def record(self, routed_to: str, reason: str, overhead_ms: float, scoring_ms: float = 0.0) -> None:
        if routed_to == "remote":
            self.remote += 1
        else:
            self.local += 1
        key = reason.split(":", 1)[0]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        self.overhead_ms.append(overhead_ms)
        self.scoring_ms.append(scoring_ms)


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    names = [p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy) if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise InvalidInput(f"unknown routing policy {unknown[0]!r}: choose from {', '.join(POLICIES)}")
    return tuple(dict.fromkeys(names))


class Router:
    """Answers like a `Model` (generate, chat, stream, embed) from a local model or a remote one, by policy.

    - local, remote: loaded `Model`s (the remote one usually `ondevice.load("remote:MODEL@URL")`).
    - policy: "privacy,size,confidence" or a list of those names.
    - detector: callable text -> list of `ondevice.routing.privacy.Finding` (default: `ondevice.routing.privacy.default_detector`).
    - min_logprob: the confidence policy's threshold.
    - prefer: who answers when no policy decides: "local" (local first, the default) or "remote" (for example
      `rag ask --remote`, where the user asked for the larger model; privacy still keeps sensitive text here).
    """

    def __init__(self, local, remote, policy: str | Sequence[str] = "privacy,size",
                 detector: Detector | None = None, min_logprob: float = DEFAULT_MIN_LOGPROB,
                 private_markers: Sequence[str] = (), prefer: str = "local"):
        if prefer not in ("local", "remote"):
            raise InvalidInput(f"prefer must be 'local' or 'remote', got {prefer!r}")
        self.local = local
        self.remote = remote
        self.prefer = prefer
        self.policies = parse_policy(policy)
        self.detector = detector or default_detector(private_markers=private_markers)
        self.min_logprob = float(min_logprob)
        self.stats = RouteStats()
        self.last_result: RoutedEvent | None = None  # the last event of the most recent answer, with its route

    # --- Model-like facts -------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"router({self.local.name} | {self.remote.name})"

    @property
    def n_ctx(self) -> int:
        return self.local.n_ctx

    @property
    def info(self):
        return self.local.info

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.local.tokenize(text, add_special)

    def render_chat(self, messages: Sequence[dict]) -> str:
        return self.local.render_chat(messages)

    def embed(self, texts):
        """Embeddings stay on the device (they are of the user's own text)."""
        return self.local.embed(texts)

    def close(self) -> None:
        self.local.close()
        self.remote.close()

    def __enter__(self) -> "Router":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- decisions --------------------------------------------------------------------------------------------
    def sensitive(self, text: str) -> list[str]:
        """Kinds of sensitive data in `text` (empty when none): what the privacy policy looks at."""
        return sorted({f.kind for f in self.detector(text)})

    def _before(self, text: str, prompt_tokens: int, max_tokens: int,
                local_only: bool = False) -> tuple[str, str, list[str], bool]:
        """(target, reason, decisions, may_escalate) before anything is generated."""
        decisions: list[str] = []
        private, sensitive = local_only, False
        if local_only:
            decisions.append("structure: tool calls are enforced on the device; stays on device")
        if "privacy" in self.policies:
            kinds = self.sensitive(text)
            sensitive = bool(kinds)
            private = private or sensitive
            decisions.append(f"privacy: {'found ' + ', '.join(kinds) + '; stays on device' if kinds else 'clean'}")
        if "size" in self.policies:
            need = prompt_tokens + max_tokens
            too_big = need > self.local.n_ctx
            decisions.append(f"size: {prompt_tokens} prompt + {max_tokens} answer tokens "
                             f"{'>' if too_big else '<='} local context {self.local.n_ctx}")
            if too_big and private:
                why = "holds sensitive data" if sensitive else "needs tool calls enforced on the device"
                raise ContextOverflow(f"this prompt {why}, so it stays on the device, but "
                                      f"{need} tokens do not fit the local context of {self.local.n_ctx}")
            if too_big:
                return "remote", decisions[-1], decisions, False
        if private:
            return "local", decisions[0], decisions, False  # the first decision is the one that keeps it here
        if self.prefer == "remote":
            return "remote", "default: remote preferred", decisions, False
        return "local", "default: local first", decisions, "confidence" in self.policies

    def mean_logprob(self, prompt_tokens: list[int], answer_tokens: list[int]) -> float:
        """Mean log-probability the local model gives its own answer (one batched pass over prompt + answer)."""
        if not answer_tokens:
            return 0.0
        return self.local.mean_logprob(prompt_tokens, answer_tokens)

    # --- generation (the same signature as Model: ondevice.decoding.request.Answerer) ---------------------------------
    def chat(self, messages: Sequence[dict], max_tokens: int = 256, *, stream: bool = False, **options):
        """Answer a conversation from whoever the policies pick: a RoutedGeneration, or a TextStream whose
        `.result` is one. Options as `Model.chat` (schema, tools, sampling, speculative)."""
        return self.run(build_request(messages=messages, max_tokens=max_tokens, backend=self.local.backend,
                                      **options), stream)

    def generate(self, prompt: str, max_tokens: int = 128, *, stream: bool = False, **options):
        """Complete `prompt` from whoever the policies pick (see `chat`)."""
        if not isinstance(prompt, str):
            raise InvalidInput("a routed prompt must be text")
        return self.run(build_request(prompt=prompt, max_tokens=max_tokens, **options), stream)

    def run(self, request: Request, stream: bool = False):
        """Generate the answer to a `Request` from whoever the policies pick (a RoutedGeneration or TextStream)."""
        return _finish(self.events(request), stream, request.finish)

    def events(self, request: Request) -> Iterator[StreamEvent]:
        """Routed events (what the server streams); the last one is a `RoutedEvent`. Decisions that refuse the
        request (a sensitive prompt too long for the device) raise here, at call time."""
        if request.rendered is not None:
            prompt, text = request.rendered, "\n".join(m["content"] for m in request.messages)
        elif request.is_chat:
            prompt = self.local.render_chat(request.messages)
            text = "\n".join(m["content"] for m in request.messages)
        elif isinstance(request.prompt, str):
            prompt = text = request.prompt
        else:
            raise InvalidInput("a routed prompt must be text")
        # Tool calls and other non-JSON grammars are enforced token by token here; a remote server is sent only
        # what the OpenAI API carries (a JSON schema), so such requests stay on the device.
        grammar = request.params.grammar
        local_only = grammar is not None and grammar.kind not in ("json_schema", "json_object")
        return self._route(text, prompt, request.params, lambda: self.local.events(request),
                           lambda: self.remote.events(request), local_only)

    def chat_events(self, messages: Sequence[dict], params: SamplingParams) -> Iterator[StreamEvent]:
        """Routed chat events for checked messages and sampling (see `events`)."""
        return self.events(Request(params, messages=check_messages(messages)))

    def stream_events(self, prompt: str, params: SamplingParams) -> Iterator[StreamEvent]:
        """Routed completion events (see `events`)."""
        return self.events(Request(params, prompt=prompt))

    def _route(self, text: str, prompt: str, params: SamplingParams, open_local: Callable,
               open_remote: Callable, local_only: bool = False) -> Iterator[StreamEvent]:
        t0 = time.perf_counter()
        prompt_tokens = self.local.tokenize(prompt)
        target, reason, decisions, may_escalate = self._before(text, len(prompt_tokens), params.max_tokens,
                                                               local_only)
        route = _Route(reason, decisions, (time.perf_counter() - t0) * 1000)
        if target == "remote":
            return self._remote_events(open_remote, prompt, params, route, local_answer=None)
        if may_escalate:
            return self._confident_events(open_local, open_remote, prompt, prompt_tokens, params, route)
        return self._local_events(open_local(), route)

    def _finished(self, event: StreamEvent, to: str, route: "_Route") -> "RoutedEvent":
        routed = RoutedEvent(event.text, event.token, event.finish_reason, event.timings, routed_to=to,
                             route_reason=route.reason, decisions=list(route.decisions))
        self.last_result = routed
        self.stats.record(to, route.reason, route.overhead_ms, route.scoring_ms)
        return routed

    def _local_events(self, events: Iterator[StreamEvent], route: "_Route") -> Iterator[StreamEvent]:
        for event in events:
            yield self._finished(event, "local", route) if event.finish_reason is not None else event

    def _confident_events(self, open_local, open_remote, prompt: str, prompt_tokens: list[int],
                          params: SamplingParams, route: "_Route") -> Iterator[StreamEvent]:
        answer = list(open_local())  # the whole local answer: confidence needs all of it
        t1 = time.perf_counter()
        score = self.mean_logprob(prompt_tokens, [e.token for e in answer if e.token is not None])
        route.scoring_ms = (time.perf_counter() - t1) * 1000
        low = score < self.min_logprob
        verdict = f"confidence: mean log-prob {score:.2f} {'<' if low else '>='} {self.min_logprob:.2f}"
        route.decisions.append(verdict)
        if low:
            route.reason = verdict
            yield from self._remote_events(open_remote, prompt, params, route, local_answer=answer)
        else:
            yield from self._local_events(iter(answer), route)

    def _remote_events(self, open_remote, prompt: str, params: SamplingParams, route: "_Route",
                       local_answer: list[StreamEvent] | None) -> Iterator[StreamEvent]:
        sent: list[str] = []
        try:
            for event in open_remote():
                if event.finish_reason is not None:
                    yield self._finished(event, "remote", route)
                    return
                sent.append(event.text)
                yield event
        except RemoteUnavailable as exc:
            route.decisions.append(f"availability: {exc}")
            where = "mid-answer" if sent else "before answering"
            route.reason = f"availability: remote failed {where} ({exc}); answered locally"
            try:
                if sent:  # the reader already has part of an answer: the local model continues it
                    events = self.local.stream_events(prompt + "".join(sent), params)
                else:
                    events = iter(local_answer) if local_answer is not None else \
                        self.local.stream_events(prompt, params)
            except ContextOverflow as overflow:
                raise RemoteUnavailable(f"{exc}; the local model cannot answer instead: {overflow}") from None
            yield from self._local_events(events, route)


@dataclass
class _Route:
    """A request's routing record while it runs."""

    reason: str
    decisions: list[str]
    overhead_ms: float
    scoring_ms: float = 0.0


@dataclass
class RoutedEvent(StreamEvent):
    """The last event of a routed generation: who answered and why."""

    routed_to: str = "local"
    route_reason: str = ""
    decisions: list[str] = field(default_factory=list)


def _finish(events: Iterator[StreamEvent], stream: bool, post: Callable | None = None):
    """Events -> a RoutedGeneration (or a TextStream whose `.result` becomes one); `post` reads parsed JSON or
    tool calls from it (`Request.finish`)."""
    last: dict[str, RoutedEvent] = {}

    def tap() -> Iterator[StreamEvent]:
        for event in events:
            if isinstance(event, RoutedEvent):
                last["event"] = event
            yield event

    def routed(g: Generation) -> RoutedGeneration:
        e = last["event"]
        result = RoutedGeneration(g.text, g.finish_reason, g.tokens, g.timings, routed_to=e.routed_to,
                                  route_reason=e.route_reason, decisions=list(e.decisions))
        return post(result) if post is not None else result

    text_stream = TextStream(tap(), routed)
    if stream:
        return text_stream
    for _ in text_stream:
        pass
    return text_stream.result


__all__ = ["Router", "RoutedGeneration", "RoutedEvent", "RouteStats", "POLICIES", "parse_policy"]
