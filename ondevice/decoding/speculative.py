"""Lookup (prompt n-gram) speculative decoding: more than one token per pass over the weights, with no draft model.

Answers grounded in notes, summaries and rewrites copy spans of their own input. `NgramDrafter` finds the last few
generated tokens earlier in the prompt or the answer and proposes what followed them there. The backend evaluates
the pending token plus that draft in ONE batch (`LookupDecoder.step`), samples at every position with the same
sampler chain plain decoding uses, keeps the drafted tokens while the sample equals the draft, and adds the model's
own token at the first disagreement (or after a fully accepted draft). The cache entries of rejected tokens are
trimmed. One batch of k+1 tokens costs little more than one token when decoding is bound by reading the weights.

Why the output is the model's own:

- Temperature > 0: the draft is deterministic, so "sample x from the model; accept the drafted token iff x equals
  it; else emit x" is exactly speculative sampling's accept/resample rule (accept with probability p(d); on
  rejection the residual (p - q)+ for a one-point q is p restricted to x != d). Every emitted token is a draw from
  the model's distribution given the tokens before it: the distribution does not change. The sampler's random
  stream is used once per emitted token, as in plain decoding.
- Temperature 0: libllama picks different CPU kernels for a batch than for one token (tinyBLAS GEMM for n >= 2,
  split-KV flash attention for one token at >= 512 cached tokens), so batch logits differ from single-token logits
  by up to about a logit, and a near-tie can flip. The guard below accepts a greedy choice from a batch only where
  its top-1 lead is wider than `GREEDY_MARGIN`; at a narrower position it falls back to the single-token path for
  that token. Tested token-identical on both embedded models; where plain decoding itself sits on near-ties, the
  two can still part (docs/speculative.md says when).

`DraftController` sets the draft length: in "auto" mode from the acceptance counted per context and the measured
cost of verify batches (it drafts only where a step is expected to emit tokens faster than plain decoding), in
"lookup" mode from the last step's acceptance alone.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

MODES = ("auto", "off", "lookup")
GREEDY_MARGIN = 1.5       # logits; batch vs single-token logits were measured to move top-1/top-2 gaps by < 1
MAX_DRAFT = 12            # longest draft; verify batches stay small (kernel choice and cost grow with the batch)
# "auto" drafts only from a match of AUTO_MIN_NGRAM+ tokens: in open chat a single-token match is almost always
# there and almost never right ("lookup" mode drafts from any match).
AUTO_MIN_NGRAM = 3


def check_mode(mode: object, param: str = "speculative") -> str:
    """Validate a speculative mode name ("auto", "off", "lookup")."""
    from ondevice.errors import InvalidInput

    if mode not in MODES:
        error = InvalidInput(f"{param} must be one of {', '.join(MODES)}, got {mode!r}")
        error.param = param
        raise error
    return mode  # type: ignore[return-value]


class NgramDrafter:
    """Proposes the continuation of the text's last n-gram from its latest earlier occurrence.

    Tries the longest n-gram first (`max_ngram` down to `min_ngram`). An index maps each n-gram to the position that
    followed its most recent occurrence; it is updated as tokens arrive, so drafting costs a few dict lookups.
    """

    def __init__(self, tokens: Sequence[int] = (), max_ngram: int = 3, min_ngram: int = 1):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.tokens: list[int] = []
        self._index: list[dict[tuple[int, ...], int]] = [{} for _ in range(max_ngram + 1)]
        self.extend(tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        """Append tokens. The n-grams ending just before each new token are indexed to point at it."""
        hist = self.tokens
        for token in tokens:
            i = len(hist)  # the n-grams ending at i-1 are now followed by position i
            for n in range(self.min_ngram, self.max_ngram + 1):
                if i >= n:
                    self._index[n][tuple(hist[i - n:i])] = i
            hist.append(int(token))

    def _match(self) -> tuple[int, int | None]:
        hist = self.tokens
        for n in range(min(self.max_ngram, len(hist)), self.min_ngram - 1, -1):
            start = self._index[n].get(tuple(hist[-n:]))
            if start is not None:
                return n, start
        return 0, None

    def match_order(self) -> int:
        """Length of the longest suffix n-gram seen earlier (0: none, nothing to draft)."""
        return self._match()[0]

    def draft(self, k: int) -> list[int]:
        """Up to k tokens that followed the latest earlier occurrence of the longest matching suffix n-gram."""
        if k <= 0:
            return []
        _, start = self._match()
        return [] if start is None else self.tokens[start:start + k]


def prior_verify_cost(k: int) -> float:
    """What a verify batch of k tokens costs relative to one plain step before anything is measured: a 2-token batch
    nearly two steps, each further token 0.42 (SmolLM2 Q4_1 at 2 threads of a 2-core CPU, the costliest curve
    measured; docs/speculative.md). The step's own measurements replace it."""
    return 1.0 + 0.9 * min(k - 1, 1) + 0.42 * max(k - 2, 0)


CALIBRATION_MAX_STEP_S = 0.04   # calibrate only models whose one-token step is quicker (~50 steps: < 2 s)
_calibrated: "weakref.WeakKeyDictionary[object, dict[int, float]]" = weakref.WeakKeyDictionary()


def calibrate_verify_costs(target: "VerifyTarget", pending: list[int], cached: int,
                           max_batch: int = MAX_DRAFT + 1) -> dict[int, float]:
    """What a verify batch of k = 1..max_batch tokens costs in one-token steps on this model and machine, timed
    once right after `cached` context tokens (the cache is cut back afterwards; `pending` are only timing filler).

    The curve is not smooth: libllama's repacked kernels take rows in groups (a Q4_K_M model's 8-token batch cost
    less than its 7-token batch here), which a smooth prior misses. An empty dict when a step is too slow to spend
    ~50 steps on (large models: the prior and the steps' own timings serve there)."""
    filler = (pending * max_batch)[:max_batch]

    def timed(k: int) -> float:
        t0 = time.perf_counter()
        target._feed_all(filler[:k])
        seconds = time.perf_counter() - t0
        if target._trim(cached) != cached:
            raise RuntimeError(f"lookup decoding: the cache could not be trimmed to {cached} tokens")
        return seconds

    one = min(timed(1), timed(1))
    if one > CALIBRATION_MAX_STEP_S:
        return {}
    return {k: max(1.0, timed(k) / one) for k in range(2, max_batch + 1)}


class DraftController:
    """How many tokens to draft at each step.

    "lookup" mode (`auto=False`): +2 after a fully accepted draft, accepted+1 otherwise, within
    [1, max_draft]; it never stops drafting (for measuring).

    "auto" mode drafts d tokens only where a verify step is expected to emit more tokens per second than a plain
    step: E(d) / c(d+1) > 1, with E(d) = 1 + q + ... + q^d the expected tokens emitted (the kept prefix plus the
    model's own token) and c(k) the cost of a k-token batch in plain steps. q, the chance that the next drafted token
    is kept, is counted separately for each context (the length of the matched n-gram, and whether the previous
    draft was kept whole: a copy that has held so far tends to go on), starting from an optimistic prior of 4 kept
    to 1 rejected so each context is tried. c(k) starts from a calibration of the model (`calibrate_verify_costs`,
    put in `costs` by the decoder) or else `prior_verify_cost`, and follows the steps' own timings (a moving average
    per batch size, against the moving average of plain steps). On a CPU where a batch costs nearly as much as its
    tokens one by one (2 cores), this drafts only along copies that keep holding; where batches are cheap (more
    cores, bigger models) it drafts more and longer.
    """

    PRIOR_KEPT, PRIOR_REJECTED = 4.0, 1.0

    def __init__(self, auto: bool = True, max_draft: int = MAX_DRAFT, start: int = 4, alpha: float = 0.3):
        self.auto = auto
        self.max_draft = max_draft
        self.k = min(start, max_draft)          # lookup mode's current length
        self.alpha = alpha
        self.plain_cost: float | None = None    # moving average, seconds per plain step
        self.costs: dict[int, float] = {}       # batch size -> cost in plain steps (calibrated, then measured)
        self.counts: dict[tuple[int, bool], list[float]] = {}  # context -> [kept, rejected]
        self.context: tuple[int, bool] = (0, False)
        self._whole = False                     # the previous draft was kept whole

    def _ema(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.alpha * (new - old)

    def cost(self, k: int) -> float:
        """A k-token verify batch in plain steps (measured, else the prior)."""
        return self.costs.get(k) or prior_verify_cost(k)

    def keep_chance(self, context: tuple[int, bool]) -> float:
        """Estimated chance that the next drafted token is kept in `context` (its counts plus the prior)."""
        kept, rejected = self.counts.get(context, (self.PRIOR_KEPT, self.PRIOR_REJECTED))
        return kept / (kept + rejected)

    def draft_length(self, order: int = 0) -> int:
        """How many tokens to draft now (0: take a plain step); `order` is the length of the matched n-gram."""
        if not self.auto:
            return self.k
        if order <= 0:
            return 0
        self.context = (order, self._whole)
        q = self.keep_chance(self.context)
        best, length, expected, power = 1.0, 0, 1.0, 1.0
        for d in range(1, self.max_draft + 1):
            power *= q
            expected += power
            gain = expected / self.cost(d + 1)
            if gain > best:
                best, length = gain, d
        return length

    def record_plain(self, seconds: float) -> None:
        self.plain_cost = self._ema(self.plain_cost, seconds)
        self._whole = False

    def record_draft(self, drafted: int, accepted: int, emitted: int, seconds: float) -> None:
        """One verify step: `drafted` proposed, `accepted` kept, `emitted` tokens returned in `seconds` (a step cut
        short by a near-tie counts as a rejection there: for speed it is one)."""
        self.k = min(self.k + 2, self.max_draft) if accepted == drafted else max(1, min(self.k, accepted + 1))
        kept, rejected = self.counts.get(self.context, (self.PRIOR_KEPT, self.PRIOR_REJECTED))
        self.counts[self.context] = [kept + accepted, rejected + (accepted < drafted)]
        self._whole = accepted == drafted
        if self.plain_cost:
            k = drafted + 1
            self.costs[k] = self._ema(self.costs.get(k), seconds / self.plain_cost)


class VerifyTarget(Protocol):
    """What a backend provides for lookup decoding (the GGUF backend implements these)."""

    def _feed(self, tokens: list[int]) -> None:
        """Evaluate tokens after what the context holds; logits of the last one become sampleable (index -1)."""

    def _feed_all(self, tokens: list[int]) -> None:
        """Evaluate tokens after what the context holds in ONE batch, keeping logits at every position
        (sampleable by index 0..len-1)."""

    def _trim(self, n: int) -> int:
        """Cut the cache back to its first n tokens; returns how many it kept."""

    def _output_logits(self, index: int) -> np.ndarray:
        """Logits of output row `index` of the last batch (a view; copy to keep)."""


def top_margin(logits: np.ndarray) -> float:
    """Gap between the largest and second largest logit (two vectorised max passes; no sort of the vocabulary)."""
    top = int(logits.argmax())
    rest = max(logits[:top].max(initial=-np.inf), logits[top + 1:].max(initial=-np.inf))
    return float(logits[top] - rest)


@dataclass
class LookupStats:
    drafted: int = 0
    accepted: int = 0
    guarded: int = 0   # greedy positions handed to the single-token path because of a near-tie


class LookupDecoder:
    """The multi-token step of one generation (plugs into `TextBackend._step`).

    `step(state)` follows the decode loop's contract: on entry `state.pending` holds tokens accepted but not yet
    evaluated; it returns the tokens it accepts and leaves the unevaluated ones in `state.pending`.
    """

    def __init__(self, target: VerifyTarget, prompt: Sequence[int], mode: str = "auto", greedy: bool = True,
                 n_ctx: int | None = None):
        self.target = target
        auto = mode == "auto"
        self.drafter = NgramDrafter(prompt, min_ngram=AUTO_MIN_NGRAM if auto else 1)
        self.controller = DraftController(auto=auto)
        self._calibrate = auto   # time the model's verify batches (once per loaded model) at the first match
        self.greedy = greedy
        self.n_ctx = n_ctx
        self.n_prompt = len(prompt)
        self._seen = 0           # generated tokens already given to the drafter
        self._plain_next = False  # the pending token must be evaluated alone (guarded near-tie)
        self.stats = LookupStats()

    def step(self, state) -> list[int]:
        """Draft, verify in one batch, keep the agreeing prefix plus one token; or a plain step."""
        self.drafter.extend(state.generated[self._seen:])
        self._seen = len(state.generated)
        pending = list(state.pending)
        cached = self.n_prompt + len(state.generated) - len(pending)  # tokens the context holds now
        order = self.drafter.match_order() if pending else 0
        if self._calibrate and order and (self.n_ctx is None or cached + MAX_DRAFT + 1 <= self.n_ctx):
            self._calibrate = False
            self.controller.costs.update(_calibration(self.target, pending, cached))
        k = 0 if (self._plain_next or not pending) else self.controller.draft_length(order)
        remaining = state.budget - len(state.generated)  # the loop keeps at most this many of our tokens
        k = min(k, remaining - 1)
        if self.n_ctx is not None:
            k = min(k, self.n_ctx - cached - len(pending))
        draft = self.drafter.draft(k) if k > 0 else []
        t0 = time.perf_counter()
        if not draft:
            self._plain_next = False
            token = self._plain(state, pending)
            if pending:  # the first step only samples the prompt's logits: not a decode cost
                self.controller.record_plain(time.perf_counter() - t0)
            return [token]
        out = self._verify(state, pending, draft, cached)
        accepted = min(len(out), len(draft))
        accepted = next((i for i in range(accepted) if out[i] != draft[i]), accepted)
        self.stats.drafted += len(draft)
        self.stats.accepted += accepted
        state.timings.drafted_tokens += len(draft)
        state.timings.accepted_tokens += accepted
        self.controller.record_draft(len(draft), accepted, len(out), time.perf_counter() - t0)
        return out

    def _trim(self, n: int) -> None:
        if self.target._trim(n) != n:  # the cache could not be cut back (never for the models libllama trims)
            raise RuntimeError(f"lookup decoding: the cache could not be trimmed to {n} tokens")

    def _plain(self, state, pending: list[int]) -> int:
        if pending:
            self.target._feed(pending)
        token = state.sampler.sample()
        state.pending = [token]
        return token

    def _verify(self, state, pending: list[int], draft: list[int], cached: int) -> list[int]:
        target, sampler = self.target, state.sampler
        target._feed_all(pending + draft)
        base = len(pending) - 1  # output row that predicts the token after the pending ones
        out: list[int] = []
        for i in range(len(draft) + 1):
            row = base + i
            if self.greedy and top_margin(target._output_logits(row)) < GREEDY_MARGIN:
                return self._guarded(state, pending, draft, i, cached)
            token = sampler.sample(row)
            out.append(token)
            if i == len(draft) or token != draft[i]:
                break
        n_accepted = len(out) - 1
        self._trim(cached + len(pending) + n_accepted)  # drop rejected draft tokens from the cache
        state.pending = [out[-1]]
        return out

    def _guarded(self, state, pending: list[int], draft: list[int], i: int, cached: int) -> list[int]:
        """A near-tie at draft position i: keep the i confirmed draft tokens, and let the single-token path
        evaluate the last token before the tie, so the choice at the tie is made from single-token logits."""
        self.stats.guarded += 1
        if i == 0:  # the tie follows the pending token: re-evaluate it alone and sample plainly
            target = self.target
            self._trim(cached + len(pending) - 1)
            target._feed(pending[-1:])
            token = state.sampler.sample()
            state.pending = [token]
            return [token]
        accepted = draft[:i]
        self._trim(cached + len(pending) + i - 1)  # keep all but the last confirmed token
        state.pending = [accepted[-1]]
        self._plain_next = True
        return accepted


def _calibration(target: VerifyTarget, pending: list[int], cached: int) -> dict[int, float]:
    """The model's calibrated verify costs, measured on its first lookup generation and kept while it is loaded."""
    if target not in _calibrated:
        _calibrated[target] = calibrate_verify_costs(target, pending, cached)
    return _calibrated[target]


def lookup_decoder(target: VerifyTarget, state, default_mode: str = "auto") -> LookupDecoder | None:
    """The stepper for one generation, or None when it decodes plainly: speculative "off" (the request's
    `SamplingParams.speculative`, else the model's default), or a grammar (its sampler checks one token at a time)."""
    params = state.params
    mode = params.speculative or default_mode
    if mode == "off" or getattr(params, "grammar", None) is not None:
        return None
    return LookupDecoder(target, state.prompt, mode, params.greedy, getattr(target, "n_ctx", None))
