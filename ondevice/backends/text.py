"""The one decode loop: every text-generation backend inherits it from `TextBackend`.

`TextBackend.stream(prompt, params)` does, for every backend:

1. at call time, check the prompt: tokenise, refuse an empty one, refuse one that does not fit `n_ctx`
   (`ContextOverflow`), so errors raise before any response is sent;
2. prefill (timed as `prompt_ms`): `self._prefill(tokens)` makes the context hold the prompt and returns how many
   leading tokens it already held (prefix reuse, `Timings.reused_tokens`);
3. repeat `self._step(state)` -> 1..k accepted tokens, until `max_tokens`, the end of the context, an
   end-of-generation token (unless `ignore_eos`), or a stop string;
4. per token, the finish rules (`ondevice.backends.finish.FinishRules`, shared with the batch engine and the
   remote backend): end-of-generation, incremental UTF-8 decoding, stop strings, one `StreamEvent`;
5. a last event with `finish_reason` ("stop" or "length") and `Timings` (TTFT, prompt/decode/total ms).

What a backend supplies (the primitives):

- `_prefill(tokens) -> int`: evaluate the prompt; afterwards the logits of its last token are ready to sample.
  Return the number of leading tokens reused from the cache (always re-evaluate at least the last one).
- `_new_sampler(params) -> Sampler`: an object with `sample() -> int` (the next token from the current logits)
  and `close()`. The loop closes it when the generation ends, however it ends.
- `_feed(tokens)`: evaluate accepted tokens after what the context holds (the default step feeds lazily: the
  last token of an answer is never evaluated, so no work is spent on a token nobody reads).
- `_piece(token) -> bytes`: the token's bytes (the loop decodes UTF-8 incrementally), or override
  `_text_decoder()` when the runtime has its own streaming detokenizer.
- `_is_eog(token) -> bool`, plus `tokenize`, `detokenize`, `render_chat`, `logits` from `Backend`.
- The cache record (`ondevice.backends.cache`): `cached_tokens()` (exactly what the context holds, kept exact by
  every path that touches it, `logits()` included), `clear_cache()`, and where the runtime can serialise its
  cache, `export_cache()` / `import_cache()` (saved sessions, the server's prefix slots).

Extension hooks (so new decoding methods do not rewrite the loop):

- Multi-token steps (speculative / lookup decoding): override or wrap `_step(state) -> list[int]`. On entry,
  `state.pending` holds accepted tokens that the context has not evaluated yet; the step must leave in
  `state.pending` whatever it returns that is still unevaluated. A verifier evaluates `pending + draft` in one
  batch, samples at each position, keeps the longest agreeing prefix plus one token, trims the rest from the
  cache, and returns those 1..k+1 tokens; it records `state.timings.drafted_tokens` / `accepted_tokens`.
  The loop truncates a step's tokens to the budget and stops at an end-of-generation token or a stop string.
- Constrained sampling (JSON schema / grammar): wrap the `Sampler` returned by `_new_sampler(params)` (mask or
  reject tokens before `sample()` returns). A sampler whose `complete` is true allows only end-of-text next, so
  the loop ends there without the forward pass that would only confirm it.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from ondevice.machine.autoconfig import choose_context
from ondevice.backends.base import Backend, StreamEvent, Timings
from ondevice.backends.cache import CacheState, PrefixCache, common_prefix
from ondevice.backends.finish import FinishRules
from ondevice.errors import ContextOverflow, InvalidInput, UnsupportedOperation
from ondevice.decoding.sampling import SamplingParams


class Sampler(Protocol):
    """Picks the next token from the context's current logits."""

    def sample(self) -> int: ...

    def close(self) -> None: ...


@dataclass
class DecodeState:
    """One generation in progress, as the step hook sees it."""

    params: SamplingParams
    prompt: list[int]
    budget: int                                          # most tokens this generation may emit
    sampler: Any = None
    generated: list[int] = field(default_factory=list)   # tokens emitted so far
    pending: list[int] = field(default_factory=list)     # accepted but not yet evaluated by the context
    timings: Timings = field(default_factory=Timings)
    speculator: Any = None                               # a backend's multi-token stepper (ondevice.decoding.speculative)


class Utf8Pieces:
    """Token -> text through the backend's byte pieces, holding back an incomplete UTF-8 sequence."""

    def __init__(self, backend: "TextBackend"):
        self._piece = backend._piece
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, token: int) -> str:
        return self._utf8.decode(self._piece(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


class TextBackend(Backend):
    """A backend that generates text token by token; subclasses supply the primitives listed in the module doc."""

    prefix_cache: PrefixCache | None = None  # snapshots of past contexts (the server turns this on)

    # Whether the runtime can open a context longer than the trained one (llama.cpp can, with a warning about
    # quality; onnxruntime-genai refuses a max_length over the model's context_length).
    can_exceed_trained_context: bool = True

    def context_length(self, requested: int | None) -> int:
        """The context length to open: the one policy for every text backend (`ondevice.machine.autoconfig`)."""
        trained = self.info.context_length
        if requested is not None and trained and requested > trained and not self.can_exceed_trained_context:
            raise InvalidInput(f"n_ctx {requested} is longer than {self.ref.name}'s trained context of {trained} "
                               f"tokens, which the {self.name} backend cannot exceed")
        return choose_context(self.info, requested, kv_type=self.options.kv_type, mmap=self.options.use_mmap)

    # --- primitives a backend supplies -------------------------------------------------------------------------
    def _prefill(self, tokens: list[int]) -> int:
        raise NotImplementedError

    def _new_sampler(self, params: SamplingParams) -> Sampler:
        raise NotImplementedError

    def _feed(self, tokens: list[int]) -> None:
        raise NotImplementedError

    def _piece(self, token: int) -> bytes:
        raise NotImplementedError

    def _is_eog(self, token: int) -> bool:
        raise NotImplementedError

    def cached_tokens(self) -> list[int]:
        """The tokens the context holds now, from position 0 (what the next prompt can reuse)."""
        return []

    def reusable_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading tokens of the prompt `tokens` the context can keep (not evaluate again) without changing
        the answer: `ondevice.backends.cache.exact_reuse` where the runtime's kernels need it (GGUF)."""
        return common_prefix(self.cached_tokens(), tokens)

    def export_cache(self) -> CacheState:
        """The context as data (tokens, and the KV bytes where the runtime can serialise them)."""
        return CacheState(tuple(self.cached_tokens()))

    def import_cache(self, state: CacheState) -> bool:
        """Load a state from `export_cache` into the context; False if this runtime cannot (or it does not fit),
        in which case the context is left empty."""
        return False

    def clear_cache(self) -> None:
        """Empty the context (the next prompt is evaluated from scratch; benchmarks use it for cold starts)."""

    def keep_prefixes(self, slots: int = 4, max_bytes: int = 256 << 20) -> PrefixCache:
        """Keep up to `slots` snapshots of past contexts (at most `max_bytes`) and restore the best one before
        each prompt: requests that share a prefix with any recent one reuse it, not only with the last one."""
        self.prefix_cache = PrefixCache(slots, max_bytes, mode=self.options.cache_reuse)
        return self.prefix_cache

    def prefill(self, prompt: str | Sequence[int]) -> int:
        """Make the context hold `prompt` (reusing what it already holds) without generating; returns the number
        of tokens reused. Sessions use it to bring the cache up to date before saving it."""
        return self._prefill(self.prompt_tokens(prompt))

    def eos_token(self) -> int | None:
        """The model's end-of-sequence token id (None if it has none)."""
        return None

    def _text_decoder(self):
        """An object with decode(token) -> str and flush() -> str (default: UTF-8 over `_piece` bytes)."""
        return Utf8Pieces(self)

    # --- the step hook -----------------------------------------------------------------------------------------
    def _step(self, state: DecodeState) -> list[int]:
        """One decoding step: evaluate what is pending, sample one token. Returns the accepted tokens."""
        if state.pending:
            self._feed(state.pending)
            state.pending = []
        token = state.sampler.sample()
        state.pending = [token]
        return [token]

    def native_tool_chat(self):
        """The tool-call format this model's chat template is written for, ready to render and constrain
        (`ondevice.decoding.tool_formats.native_template`), or None for the generic format."""
        from ondevice.decoding.tool_formats import native_template

        return native_template(self)

    # --- constrained decoding (ondevice.decoding.structured) ----------------------------------------------------------
    def vocabulary(self):
        """The tokens as the constraint engine sees them (`_build_vocabulary()` on first use, then kept)."""
        if getattr(self, "_vocabulary", None) is None:
            self._vocabulary = self._build_vocabulary()
        return self._vocabulary

    def _build_vocabulary(self):
        raise UnsupportedOperation(f"{self.ref.name}: the {self.name} backend has no structured output")

    def _sampler_for(self, params: SamplingParams) -> Sampler:
        """The backend's sampler; with `params.grammar`, wrapped so every token follows the grammar."""
        if params.grammar is None:
            return self._new_sampler(params)
        sampler = self._constrained_sampler(params, params.grammar.constraint(self.vocabulary()))
        sampler.budget = params.max_tokens  # near the end, the answer closes what it opened (still valid JSON)
        return sampler

    def _constrained_sampler(self, params: SamplingParams, constraint) -> Sampler:
        """Default for backends that sample in NumPy from `_last_logits()`: the mask is applied to this step's
        logits row, which the LogitsSampler then reads."""
        from ondevice.decoding.sampling import LogitsSampler
        from ondevice.decoding.structured import ConstrainedSampler

        step: dict = {}

        def fetch():
            step["row"] = np.array(self._last_logits(), dtype=np.float32).reshape(-1)
            return step["row"]

        return ConstrainedSampler(LogitsSampler(params, lambda: step["row"]), constraint, fetch)

    # --- the loop ----------------------------------------------------------------------------------------------
    def prompt_tokens(self, prompt: str | Sequence[int]) -> list[int]:
        """The prompt as token ids, checked: not empty, and leaving room for at least one generated token."""
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not tokens:
            raise InvalidInput("prompt is empty")
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(f"prompt is {len(tokens)} tokens but the context holds {self.n_ctx} "
                                  f"(load with a larger n_ctx, up to {self.info.context_length})")
        return tokens

    def check_params(self, params: SamplingParams) -> None:
        """What only the loaded model can check (logit_bias token ids against its vocabulary), at call time."""
        if params.logit_bias:
            params.check_vocabulary(self.vocab_size())

    def vocab_size(self) -> int:
        """Tokens in the model's vocabulary (the logits row's length)."""
        return int(self.info.vocab_size)

    def stream(self, prompt: str | Sequence[int], params: SamplingParams) -> Iterator[StreamEvent]:
        tokens = self.prompt_tokens(prompt)  # checked before the generator starts, so errors raise at call time
        self.check_params(params)
        return self._decode_loop(tokens, params)

    def _decode_loop(self, tokens: list[int], params: SamplingParams) -> Iterator[StreamEvent]:
        timings = Timings(prompt_tokens=len(tokens))
        state = DecodeState(params, tokens, min(params.max_tokens, self.n_ctx - len(tokens)), timings=timings)
        rules = FinishRules(params, state.budget, is_eog=self._is_eog, timings=timings)  # the one set of rules
        state.sampler = self._sampler_for(params)
        finish = None
        try:
            if self.prefix_cache is not None:
                best = self.prefix_cache.best(tokens, self.reusable_prefix(tokens))
                if best is not None:
                    self.import_cache(best)
            timings.reused_tokens = self._prefill(tokens)
            if self.prefix_cache is not None:
                self.prefix_cache.count(len(tokens), timings.reused_tokens)
            timings.prompt_ms = (time.perf_counter() - rules.t0) * 1000
            rules.decoder = self._text_decoder()
            while finish is None and rules.remaining > 0:
                accepted = self._step(state)
                rules.first_token(prompt_done=False)
                if not accepted:  # the runtime ended the sequence itself
                    finish = rules.stop()
                    break
                for token in accepted[:rules.remaining]:
                    # A complete grammar allows only end-of-text next: the rules end there and skip the forward
                    # pass that would only confirm it (one decode less per structured answer, same output).
                    events, finish = rules.token(token, getattr(state.sampler, "complete", False))
                    if events:
                        state.generated.append(token)
                    yield from events
                    if finish is not None:
                        break
        finally:
            state.sampler.close()
        last = rules.end(finish)
        yield from last[:-1]
        if self.prefix_cache is not None and not self.prefix_cache.covers(self.cached_tokens()):
            self.prefix_cache.put(self.export_cache())  # file this context before the caller moves on
        yield last[-1]

    # --- benchmarking ------------------------------------------------------------------------------------------
    def reference_decode(self, tokens: Sequence[int]) -> float:
        """Seconds to evaluate tokens[1:] one at a time after an untimed tokens[0], from an empty context, with
        no sampling and no text: the runtime's bare decode loop, the floor `ondevice bench --reference` compares
        the public streaming path against. Leaves the context empty."""
        raise UnsupportedOperation(f"{self.ref.name}: the {self.name} backend has no bare reference loop")
