"""How to pick tokens: `SamplingParams`, checked once here, and the portable logits sampler.

Every front end builds its request through `ondevice.decoding.request.build_request` (Model.generate/chat, Router, the CLI,
the server and its protocol adapters), which builds one `SamplingParams`; nothing else re-validates sampling values.
A bad value raises `InvalidInput` whose `param` attribute names the field (the server reports it as OpenAI's
`param`).

Adding a sampling option: add the field here with its check, honour it in both samplers (`LogitsSampler` below for
NumPy backends, `ChainSampler` in `ondevice.backends.llama_cpp_backend` for GGUF), pass it through in
`ondevice.backends.remote` (or refuse it there), and give the server's wire type its OpenAI spelling
(`ondevice/server/schemas.py`). No front end lists the fields: they forward keywords to `build_request`.

The order of the steps is libllama's common sampler chain, in both samplers: logit bias, penalties (repeat,
frequency, presence: over the tokens generated so far), then greedy at temperature 0, else top-k, top-p, min-p,
temperature and a seeded draw.
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
    - top_p: nucleus sampling, in [0, 1]; 1 keeps every token; 0 (OpenAI's spelling of "only the most likely
      token") means greedy.
    - top_k: keep the k most likely tokens; 0 keeps all.
    - min_p: drop tokens less likely than min_p times the most likely one, in [0, 1]; 0 keeps all.
    - logit_bias: {token id: bias in [-100, 100]} added to the logits before anything else (OpenAI's rule; -100
      bans a token in practice). Token ids are the model's own; an id outside its vocabulary is refused at run.
    - frequency_penalty, presence_penalty: in [-2, 2] (OpenAI): subtract count * frequency + presence from the
      logit of every token already generated in this answer.
    - repeat_penalty: > 0, 1 is off (llama.cpp's): a generated token's logit is divided by it (multiplied when
      negative).
    - seed: an int for a reproducible sample, None for a random one.
    - stop: a string or list of strings that end the answer (not included in it).
    - ignore_eos: keep generating past end-of-generation tokens (benchmarks need exactly max_tokens).
    - grammar: an `ondevice.decoding.structured.Grammar` (from `schema_grammar(...)` or tools) that every token must follow;
      None for free text.
    - speculative: lookup decoding for this generation, "auto", "off" or "lookup" (`ondevice.decoding.speculative`); None
      uses the model's `RuntimeOptions.speculative`. Above temperature 0 the output has the same distribution
      either way; at temperature 0 the verify batch's kernels can part from plain decoding at a near-tie
      (docs/speculative.md), so the default is off.
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
    min_p: float = 0.0
    logit_bias: dict[int, float] | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repeat_penalty: float = 1.0

    def __post_init__(self) -> None:
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise _bad("max_tokens", f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not _is_number(self.temperature) or self.temperature < 0:
            raise _bad("temperature", f"temperature must be a number >= 0, got {self.temperature!r}")
        if not _is_number(self.top_p) or not 0 <= self.top_p <= 1:
            raise _bad("top_p", f"top_p must be in [0, 1], got {self.top_p!r}")
        if self.top_p == 0:  # OpenAI allows top_p=0: only the most likely token, i.e. greedy
            self.temperature, self.top_p = 0.0, 1.0
        if not _is_number(self.min_p) or not 0 <= self.min_p <= 1:
            raise _bad("min_p", f"min_p must be in [0, 1], got {self.min_p!r}")
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if not _is_number(value) or not -2 <= value <= 2:
                raise _bad(name, f"{name} must be a number in [-2, 2], got {value!r}")
        if not _is_number(self.repeat_penalty) or self.repeat_penalty <= 0:
            raise _bad("repeat_penalty", f"repeat_penalty must be a number > 0 (1 is off), got {self.repeat_penalty!r}")
        self.logit_bias = _check_logit_bias(self.logit_bias)
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
            from ondevice.decoding.structured import Grammar

            if not isinstance(self.grammar, Grammar):
                raise _bad("grammar", f"grammar must be an ondevice.decoding.structured.Grammar, got {self.grammar!r}")
        if self.speculative is not None:
            from ondevice.decoding.speculative import check_mode

            check_mode(self.speculative)
        self.max_tokens, self.top_k = int(self.max_tokens), int(self.top_k)
        self.temperature, self.top_p, self.min_p = float(self.temperature), float(self.top_p), float(self.min_p)
        self.frequency_penalty, self.presence_penalty = float(self.frequency_penalty), float(self.presence_penalty)
        self.repeat_penalty = float(self.repeat_penalty)
        self.seed = None if self.seed is None else int(self.seed)
        self.stop = list(stop)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    @property
    def penalised(self) -> bool:
        """Whether a penalty depends on the tokens generated so far (the sampler then keeps their counts)."""
        return self.frequency_penalty != 0 or self.presence_penalty != 0 or self.repeat_penalty != 1

    def check_vocabulary(self, n_vocab: int) -> None:
        """Refuse logit_bias token ids outside a vocabulary of `n_vocab` tokens (called by the backend)."""
        bad = [t for t in (self.logit_bias or {}) if not 0 <= t < n_vocab]
        if bad:
            raise _bad("logit_bias", f"logit_bias names token {bad[0]}, outside this model's vocabulary of "
                                     f"{n_vocab} tokens")


def _check_logit_bias(bias: Any) -> dict[int, float] | None:
    """{token id (int or its decimal string, as JSON keys are): bias in [-100, 100]} -> {int: float}."""
    if bias is None or bias == {}:
        return None
    if not isinstance(bias, dict):
        raise _bad("logit_bias", f"logit_bias must map token ids to numbers, got {bias!r}")
    out: dict[int, float] = {}
    for key, value in bias.items():
        token = int(key) if _is_int(key) else int(key) if isinstance(key, str) and key.strip().isdigit() else None
        if token is None:
            raise _bad("logit_bias", f"logit_bias keys must be token ids (integers), got {key!r}")
        if not _is_number(value) or not -100 <= value <= 100:
            raise _bad("logit_bias", f"logit_bias values must be numbers in [-100, 100], got {value!r}")
        out[token] = float(value)
    return out


class LogitsSampler:
    """Picks a token from a logits vector in NumPy, for backends without a native sampler chain (ONNX).

    The same steps and order as libllama's chain in the GGUF backend (see the module doc). `sample()` counts the
    token it returns for the penalties, as libllama's `llama_sampler_sample` does.
    """

    def __init__(self, params: SamplingParams, logits: Callable[[], np.ndarray]):
        self.params = params
        self._logits = logits
        self._rng = np.random.default_rng(params.seed)
        self._counts: dict[int, int] = {}

    def _adjust(self, logits: np.ndarray) -> np.ndarray:
        """Logit bias and penalties, on a float64 copy."""
        p = self.params
        if p.logit_bias:
            for token, bias in p.logit_bias.items():
                if token < logits.size:
                    logits[token] += bias
        if p.penalised and self._counts:
            ids = np.fromiter(self._counts, dtype=np.int64)
            ids = ids[ids < logits.size]
            counts = np.array([self._counts[int(t)] for t in ids], dtype=np.float64)
            rows = logits[ids]
            if p.repeat_penalty != 1:
                rows = np.where(rows > 0, rows / p.repeat_penalty, rows * p.repeat_penalty)
            logits[ids] = rows - counts * p.frequency_penalty - p.presence_penalty
        return logits

    def sample(self) -> int:
        token = self._pick(np.array(self._logits(), dtype=np.float64).reshape(-1))
        if self.params.penalised:
            self._counts[token] = self._counts.get(token, 0) + 1
        return token

    def _pick(self, logits: np.ndarray) -> int:
        p = self.params
        logits = self._adjust(logits)
        if p.greedy:
            return int(logits.argmax())
        ids = np.arange(logits.size)
        if p.top_k > 0 and p.top_k < logits.size:
            keep = np.argpartition(-logits, p.top_k - 1)[:p.top_k]
            ids, logits = ids[keep], logits[keep]
        if p.top_p < 1.0:
            ids, logits = self._nucleus(ids, logits, p.top_p)
        if p.min_p > 0:
            keep = logits >= logits.max() + np.log(p.min_p)  # p >= min_p * p_max, in logit space
            ids, logits = ids[keep], logits[keep]
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
