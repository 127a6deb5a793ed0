"""Local first, remote when needed: a `Router` answers like a `Model` and decides, per request, who answers.

    local = ondevice.load("smollm2-135m")
    remote = ondevice.load("remote:qwen2.5-7b@http://gpu-box:8000/v1")
    router = ondevice.Router(local, remote, policy="privacy,size,confidence")
    result = router.chat(messages)
    result.text, result.routed_to, result.route_reason

Policies (combinable; each decision is recorded on the result with its reason):

- privacy: text with sensitive data (see `ondevice.privacy`: emails, phone numbers, card and bank numbers, API keys
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
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from ondevice.backends.base import Generation, Timings
from ondevice.errors import ContextOverflow, InvalidInput, RemoteUnavailable
from ondevice.privacy import Detector, default_detector

POLICIES = ("privacy", "size", "confidence")
DEFAULT_MIN_LOGPROB = -2.5  # mean natural-log probability per answer token; below it the answer is a guess


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
    overhead_ms: list[float] = field(default_factory=list)  # time spent deciding, per request

    def record(self, result: RoutedGeneration, overhead_ms: float) -> None:
        if result.routed_to == "remote":
            self.remote += 1
        else:
            self.local += 1
        key = result.route_reason.split(":", 1)[0]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        self.overhead_ms.append(overhead_ms)


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
    - detector: callable text -> list of `ondevice.privacy.Finding` (default: `ondevice.privacy.default_detector`).
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

    def _before(self, text: str, prompt_tokens: int, max_tokens: int) -> tuple[str, str, list[str], bool]:
        """(target, reason, decisions, may_escalate) before anything is generated."""
        decisions: list[str] = []
        private = False
        if "privacy" in self.policies:
            kinds = self.sensitive(text)
            private = bool(kinds)
            decisions.append(f"privacy: {'found ' + ', '.join(kinds) + '; stays on device' if kinds else 'clean'}")
        if "size" in self.policies:
            need = prompt_tokens + max_tokens
            too_big = need > self.local.n_ctx
            decisions.append(f"size: {prompt_tokens} prompt + {max_tokens} answer tokens "
                             f"{'>' if too_big else '<='} local context {self.local.n_ctx}")
            if too_big and private:
                raise ContextOverflow(f"this prompt holds sensitive data, so it stays on the device, but "
                                      f"{need} tokens do not fit the local context of {self.local.n_ctx}")
            if too_big:
                return "remote", decisions[-1], decisions, False
        if private:
            return "local", decisions[0], decisions, False
        if self.prefer == "remote":
            return "remote", "default: remote preferred", decisions, False
        return "local", "default: local first", decisions, "confidence" in self.policies

    def mean_logprob(self, prompt_tokens: list[int], answer_tokens: list[int]) -> float:
        """Mean log-probability the local model gives its own answer (one batched pass over prompt + answer)."""
        if not answer_tokens:
            return 0.0
        tokens = list(prompt_tokens) + list(answer_tokens)
        logits = np.asarray(self.local.logits(tokens), dtype=np.float64)
        start = len(prompt_tokens) - 1
        rows = logits[start:start + len(answer_tokens)]
        rows = rows - rows.max(axis=1, keepdims=True)
        logprobs = rows[np.arange(len(answer_tokens)), answer_tokens] - np.log(np.exp(rows).sum(axis=1))
        return float(logprobs.mean())

    # --- generation -------------------------------------------------------------------------------------------
    def chat(self, messages: Sequence[dict], max_tokens: int = 256, stream: bool = False, **sampling):
        """Answer a conversation from whoever the policies pick; returns a RoutedGeneration (or a RoutedStream)."""
        prompt = self.local.render_chat(messages)
        text = "\n".join(_message_text(m) for m in messages)
        return self._route(text, prompt, max_tokens, stream, sampling,
                           local=lambda prefix="", **kw: self._local_call(prompt + prefix, kw),
                           remote=lambda **kw: self.remote.chat(messages, **kw))

    def generate(self, prompt: str, max_tokens: int = 128, stream: bool = False, **sampling):
        """Complete `prompt` from whoever the policies pick; returns a RoutedGeneration (or a RoutedStream)."""
        if not isinstance(prompt, str):
            raise InvalidInput("prompt must be a string")
        return self._route(prompt, prompt, max_tokens, stream, sampling,
                           local=lambda prefix="", **kw: self._local_call(prompt + prefix, kw),
                           remote=lambda **kw: self.remote.generate(prompt, **kw))

    def _local_call(self, prompt: str, kw: dict):
        return self.local.generate(prompt, **kw)

    def _route(self, text: str, prompt: str, max_tokens: int, stream: bool, sampling: dict,
               local: Callable, remote: Callable):
        t0 = time.perf_counter()
        prompt_tokens = self.local.tokenize(prompt)
        target, reason, decisions, may_escalate = self._before(text, len(prompt_tokens), max_tokens)
        kw = dict(sampling, max_tokens=max_tokens)
        overhead_ms = (time.perf_counter() - t0) * 1000
        if stream and not may_escalate:
            return RoutedStream(self, target, reason, decisions, local, remote, kw, overhead_ms)
        if target == "remote":
            result = self._remote_or_local(remote, local, kw, reason, decisions)
        else:
            answer = local(**kw)
            result = _routed(answer, "local", reason, decisions)
            if may_escalate:
                t1 = time.perf_counter()
                score = self.mean_logprob(prompt_tokens, answer.tokens)
                overhead_ms += (time.perf_counter() - t1) * 1000
                low = score < self.min_logprob
                verdict = (f"confidence: mean log-prob {score:.2f} "
                           f"{'<' if low else '>='} {self.min_logprob:.2f}")
                decisions.append(verdict)
                if low:
                    result = self._remote_or_local(remote, lambda **_: answer, kw, verdict, decisions)
        self.stats.record(result, overhead_ms)
        if stream:
            return RoutedStream.replay(self, result)
        return result

    def _remote_or_local(self, remote: Callable, local: Callable, kw: dict, reason: str,
                         decisions: list[str]) -> RoutedGeneration:
        try:
            return _routed(remote(**kw), "remote", reason, decisions)
        except RemoteUnavailable as exc:
            decisions.append(f"availability: {exc}")
            return _routed(local(**kw), "local", f"availability: remote failed ({exc}); answered locally",
                           decisions)


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _routed(answer: Generation, to: str, reason: str, decisions: list[str]) -> RoutedGeneration:
    return RoutedGeneration(answer.text, answer.finish_reason, list(answer.tokens), answer.timings,
                            routed_to=to, route_reason=reason, decisions=list(decisions))


class RoutedStream:
    """Text pieces as they arrive from whoever answers; `.result` is the RoutedGeneration afterwards.

    A remote stream that fails before its first piece falls back to a local answer; one cut mid-answer is
    finished by the local model, continuing from the text already streamed (so the reader sees one answer).
    """

    def __init__(self, router: Router, target: str, reason: str, decisions: list[str], local: Callable,
                 remote: Callable, kw: dict, overhead_ms: float):
        self._router, self._target, self._reason, self._decisions = router, target, reason, decisions
        self._local, self._remote, self._kw, self._overhead_ms = local, remote, kw, overhead_ms
        self._replay: RoutedGeneration | None = None
        self.result: RoutedGeneration | None = None

    @classmethod
    def replay(cls, router: Router, result: RoutedGeneration) -> "RoutedStream":
        stream = cls(router, result.routed_to, result.route_reason, result.decisions, None, None, {}, 0.0)
        stream._replay = result
        return stream

    def __iter__(self) -> Iterator[str]:
        if self._replay is not None:
            self.result = self._replay
            if self._replay.text:
                yield self._replay.text
            return
        if self._target == "local":
            yield from self._from_local("", self._reason)
        else:
            yield from self._from_remote()
        self._router.stats.record(self.result, self._overhead_ms)

    def _from_local(self, prefix: str, reason: str) -> Iterator[str]:
        stream = self._local(prefix, **dict(self._kw, stream=True))
        yield from stream
        answer = stream.result
        self.result = _routed(Generation(prefix + answer.text, answer.finish_reason, answer.tokens, answer.timings),
                              "local", reason, self._decisions)

    def _from_remote(self) -> Iterator[str]:
        sent: list[str] = []
        try:
            stream = self._remote(**dict(self._kw, stream=True))
            for piece in stream:
                sent.append(piece)
                yield piece
        except RemoteUnavailable as exc:
            self._decisions.append(f"availability: {exc}")
            where = "mid-answer" if sent else "before answering"
            reason = f"availability: remote failed {where} ({exc}); answered locally"
            yield from self._from_local("".join(sent), reason)
            return
        answer = stream.result or Generation("".join(sent), "stop", [], Timings())
        self.result = _routed(answer, "remote", self._reason, self._decisions)

    def close(self) -> None:
        """Nothing to free: the underlying streams close when their iterators are dropped."""


__all__ = ["Router", "RoutedGeneration", "RoutedStream", "RouteStats", "POLICIES", "parse_policy"]
