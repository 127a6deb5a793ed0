"""How to pick tokens: `SamplingParams`, checked once here, and the portable logits sampler.

Every entry point builds a `SamplingParams` (Model.generate/chat, the CLI, the server, bench) and relies on its
`__post_init__` checks; nothing else re-validates sampling values. A bad value raises `InvalidInput` whose `param`
attribute names the field (the server reports it as OpenAI's `param`).

Adding a sampling option (for a newcomer): add the field here with its check, then use it in
`ondevice.backends.text` (the one decode loop) or in the backend's sampler; the server maps OpenAI fields onto this
class in `ondevice/server/routes_generate.py: sampling()`, the CLI in `ondevice/cli/generate.py`. Planned fields:
`schema`/`grammar` (structured output: a per-token constraint wrapped around the backend's sampler) and
`speculative` (lookup decoding: a multi-token `TextBackend._step`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ondevice.errors import InvalidInput


def _bad(param: str, message: str) -> InvalidInput:
    error = InvalidInput(message)
    error.param = param  # the server puts this in the OpenAI error's `param`
    return error


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


@dataclass
class SamplingParams:
    """How to pick tokens. temperature 0 means greedy (deterministic).

    - max_tokens: most tokens to generate (a positive int); the context may end the answer sooner ("length").
    - temperature: >= 0; 0 is greedy.
    - top_p: nucleus sampling, in (0, 1]; 1 keeps every token.
    - top_k: keep the k most likely tokens; 0 keeps all.
    - seed: an int for a reproducible sample, None for a random one.
    - stop: a string or list of strings that end the answer (not included in it).
    - ignore_eos: keep generating past end-of-generation tokens (benchmarks need exactly max_tokens).
    - grammar: an `ondevice.structured.Grammar` (from `schema_grammar(...)` or tools) that every token must follow;
      None for free text.
    - speculative: lookup decoding for this generation, "auto", "off" or "lookup" (`ondevice.speculative`); None
      uses the model's `RuntimeOptions.speculative`. The output is the same either way (token-identical at
      temperature 0, the same distribution above).
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] | str | None = field(default_factory=list)
    ignore_eos: bool = False
    grammar: Any = None
    speculative: str | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise _bad("max_tokens", f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not _is_number(self.temperature) or self.temperature < 0:
            raise _bad("temperature", f"temperature must be a number >= 0, got {self.temperature!r}")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise _bad("top_p", f"top_p must be in (0, 1], got {self.top_p!r}")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise _bad("top_k", f"top_k must be an integer >= 0, got {self.top_k!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise _bad("seed", f"seed must be an integer or None, got {self.seed!r}")
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        if stop is None:
            stop = []
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
            raise _bad("stop", f"stop must be a string or a list of strings, got {self.stop!r}")
        if not isinstance(self.ignore_eos, bool):
            raise _bad("ignore_eos", f"ignore_eos must be True or False, got {self.ignore_eos!r}")
        if self.grammar is not None:
            from ondevice.structured import Grammar

            if not isinstance(self.grammar, Grammar):
                raise _bad("grammar", f"grammar must be an ondevice.structured.Grammar, got {self.grammar!r}")
        if self.speculative is not None:
            from ondevice.speculative import check_mode

            check_mode(self.speculative)
        self.max_tokens, self.top_k = int(self.max_tokens), int(self.top_k)
        self.temperature, self.top_p = float(self.temperature), float(self.top_p)
        self.seed = None if self.seed is None else int(self.seed)
        self.stop = list(stop)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class LogitsSampler:
    """Picks a token from a logits vector in NumPy, for backends without a native sampler chain (ONNX).

    The same steps and order as libllama's chain in the GGUF backend: greedy at temperature 0, else top-k, top-p,
    temperature, then a draw from a generator seeded by `params.seed`.
    """

    def __init__(self, params: SamplingParams, logits: Callable[[], np.ndarray]):
        self.params = params
        self._logits = logits
        self._rng = np.random.default_rng(params.seed)

    def sample(self) -> int:
        logits = np.asarray(self._logits(), dtype=np.float64).reshape(-1)
        p = self.params
        if p.greedy:
            return int(logits.argmax())
        ids = np.arange(logits.size)
        if p.top_k > 0 and p.top_k < logits.size:
            keep = np.argpartition(-logits, p.top_k - 1)[:p.top_k]
            ids, logits = ids[keep], logits[keep]
        if p.top_p < 1.0:
            ids, logits = self._nucleus(ids, logits, p.top_p)
        # With neither cut the draw needs no order: skipping the sort of the whole vocabulary (milliseconds per
        # token at 49k entries) leaves the distribution as it is.
        scaled = logits / p.temperature
        probs = np.exp(scaled - scaled.max())
        cdf = np.cumsum(probs)
        # numpy's Generator.choice(n, p=probs) draws this way: one uniform number against the normalised CDF.
        return int(ids[min(int(np.searchsorted(cdf / cdf[-1], self._rng.random(), side="right")), ids.size - 1)])

    @staticmethod
    def _nucleus(ids: np.ndarray, logits: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
        """The smallest most-likely-first set whose probability reaches top_p (ids and logits in that order).
        Sorts only the head of the distribution: the top 64 tokens, then 4x more while they fall short."""
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        head = 64
        while True:
            if head >= ids.size:
                order = np.argsort(-logits, kind="stable")
            else:
                top = np.argpartition(-logits, head - 1)[:head]
                order = top[np.lexsort((top, -logits[top]))]  # by logit, ties by position (as a stable sort)
            reached = np.cumsum(probs[order])
            if head >= ids.size or reached[-1] >= top_p:
                cut = min(int(np.searchsorted(reached, top_p)) + 1, order.size)  # smallest set reaching top_p
                return ids[order[:cut]], logits[order[:cut]]
            head *= 4

    def close(self) -> None:
        pass
