"""What a text backend's context holds, as data: for prefix reuse, saved sessions and the server's prefix slots.

- `CacheState`: the tokens the KV cache holds (in order, from position 0) and, where the runtime can serialise it,
  the cache itself (libllama's per-sequence state). ONNX Runtime GenAI cannot serialise its cache: `data` is None.
- `PrefixCache`: a bounded, least-recently-used set of `CacheState` snapshots. Before a prompt is evaluated, the
  backend restores the snapshot sharing the longest prefix with it when that beats what the live cache holds;
  after a generation it files the live cache as a snapshot. The server turns this on (`TextBackend.keep_prefixes`)
  so requests that share a system prompt or continue a conversation reuse it even after other requests ran.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# Temperature 0 is a contract: a request's answer must not depend on what the cache happened to hold. libllama's CPU
# kernels compute a position evaluated alone (one decode step) slightly differently from the same position evaluated
# in a batch of two or more rows (a prompt chunk), and at a near-tie that flips a greedy token. Measured on SmolLM2
# (tests/ondevice/test_determinism.py): every split of a prompt into chunks of >= 2 rows gives bit-identical logits,
# but positions written by decode steps (an earlier answer) and then reused as part of a new prompt changed later
# answers, and so did a batch slot whose reused cells ended exactly where the new prompt parted from the old one.
# So a cache is reused only up to the positions it evaluated as a prompt (`prefilled`), less the last of the shared
# ones, and at least MIN_FRESH_ROWS prompt tokens are evaluated again: measured on bursts of identical and
# different prompts through the batch engine and on continued conversations, a prompt's answer is then the one a
# cold start gives, whatever the cache held (tests/ondevice/test_determinism.py).
MIN_FRESH_ROWS = 2

# That rule rests on a property of the model's kernels that not every model has. On gemma3-270m (Q4_K_M: weights
# repacked for AVX-512 matrix kernels that treat a batch's rows in groups, and a flash-attention path that depends
# on the batch) a prompt split once at most places gives logits that differ from the whole prompt's, so a repeated
# prompt or a continued conversation answered differently from a cold start. The backend measures the property
# when it loads a model (`LlamaCppBackend.split_invariant`); where it fails, every prompt is evaluated in chunks
# that end at multiples of REUSE_ALIGN positions (a cold start too) and reuse stops at such a multiple, so every
# chunk a warm prompt evaluates is the very chunk a cold start evaluates: the same logits by construction, whatever
# the kernels do. 128: prompt speed at chunks of 128 equals chunks of 512 (llama-bench -ub 128,512, both embedded
# models, 2 threads), and a warm prompt evaluates at most 127 positions more than it would with any split allowed.
REUSE_ALIGN = 128


def exact_reuse(cached: Sequence[int], prefilled: int, prompt: Sequence[int], mode: str = "exact",
                align: int = 1) -> int:
    """How many leading tokens of `prompt` a cache holding `cached` (of which the first `prefilled` were evaluated
    as a prompt) may keep so that the prompt's logits are exactly those of a cold start. align: reuse only a
    multiple of this many positions (REUSE_ALIGN for a model whose prompts are evaluated in aligned chunks; 1 where
    any split is exact). mode "all" (`RuntimeOptions.cache_reuse`, an explicit opt-in): every shared position but
    the prompt's last, faster and not exact."""
    if mode == "all":
        return max(0, min(common_prefix(cached, prompt), len(prompt) - 1))
    shared = min(common_prefix(cached, prompt), prefilled, len(prompt) - 1)
    n = max(0, shared - 1)
    return n - n % align


def chunk_ends(start: int, end: int, size: int, align: int = 1) -> list[int]:
    """Where the chunks that evaluate positions [start, end) end: every `size` positions from `start`, or, with
    align > 1, at the multiples of `align` (so a chunk is the same whatever position the evaluation started at,
    provided it started at a multiple of `align`)."""
    ends, at = [], start
    while at < end:
        at = min(end, (at // align + 1) * align if align > 1 else at + size)
        ends.append(at)
    return ends


@dataclass(frozen=True)
class CacheState:
    """A context's KV cache: the tokens it holds, how many leading ones were evaluated as a prompt (the part a
    later prompt may reuse exactly, see `exact_reuse`; None: all of them) and, if the runtime can serialise it,
    its bytes."""

    tokens: tuple[int, ...]
    data: bytes | None = None
    prefilled: int | None = None

    @property
    def reusable(self) -> int:
        return len(self.tokens) if self.prefilled is None else min(self.prefilled, len(self.tokens))

    @property
    def nbytes(self) -> int:
        return len(self.data or b"") + 4 * len(self.tokens)


@dataclass
class PrefixStats:
    """Counters for /health: a hit is a generation that reused at least one cached prompt token."""

    hits: int = 0
    misses: int = 0
    restored: int = 0          # snapshots loaded back into the context because they beat the live cache
    reused_tokens: int = 0     # prompt tokens not evaluated again, all requests
    prompt_tokens: int = 0     # prompt tokens, all requests

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class PrefixCache:
    """A few snapshots of the context, least recently used evicted, capped in count and bytes."""

    def __init__(self, slots: int = 4, max_bytes: int = 256 << 20, min_tokens: int = 16, mode: str = "exact"):
        self.slots, self.max_bytes, self.min_tokens, self.mode = slots, max_bytes, min_tokens, mode
        self._entries: OrderedDict[tuple[int, ...], CacheState] = OrderedDict()
        self.stats = PrefixStats()
        self._lock = threading.Lock()  # the server reads the counters from another thread

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def best(self, tokens: Sequence[int], live: int) -> CacheState | None:
        """The snapshot that can reuse the longest prefix of `tokens` exactly (`exact_reuse`), if longer than
        `live` (what the context can reuse already) by at least `min_tokens` (restoring costs a copy)."""
        best, best_n = None, live + self.min_tokens - 1
        with self._lock:
            for key, state in self._entries.items():
                n = exact_reuse(key, state.reusable, tokens, self.mode)
                if n > best_n:
                    best, best_n = state, n
            if best is not None:
                self._entries.move_to_end(best.tokens)
                self.stats.restored += 1
        return best

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether a snapshot already holds `tokens` (or more): filing them again would only cost a copy."""
        with self._lock:
            return any(common_prefix(key, tokens) == len(tokens) for key in self._entries)

    def put(self, state: CacheState) -> None:
        """File a snapshot; a snapshot that another one extends is dropped (the longer one serves both)."""
        if state.data is None or len(state.tokens) < self.min_tokens or state.nbytes > self.max_bytes:
            return
        with self._lock:
            self._put(state)

    def _put(self, state: CacheState) -> None:
        for key in self._entries:
            if common_prefix(key, state.tokens) == len(state.tokens):  # an existing snapshot already covers it
                self._entries.move_to_end(key)
                return
        for key in list(self._entries):
            if common_prefix(key, state.tokens) == len(key):  # key is a prefix of the new state
                del self._entries[key]
        self._entries[state.tokens] = state
        while len(self._entries) > self.slots or self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    def count(self, prompt_tokens: int, reused: int) -> None:
        with self._lock:
            self.stats.prompt_tokens += prompt_tokens
            self.stats.reused_tokens += reused
            if reused > 0:
                self.stats.hits += 1
            else:
                self.stats.misses += 1

    def to_dict(self) -> dict:
        with self._lock:
            return {"slots": self.slots, "used": len(self._entries), "bytes": self.nbytes,
                    "max_bytes": self.max_bytes, **self.stats.to_dict()}
