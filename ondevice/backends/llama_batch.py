"""Continuous batching for GGUF models: many generations, one `llama_decode` per step.

Decoding one stream reads every weight once per token. `BatchEngine` decodes up to `slots` streams together on a
second libllama context over the same loaded model (the weights are shared, only the KV cache is per slot): each
request is one sequence id, each step is one `llama_decode` that carries one token of every decoding sequence plus
prompt chunks of sequences that are joining. New requests join between steps; finished or cancelled ones leave, and
their slot keeps its tokens so a later request with the same prefix (a system prompt, a growing conversation)
evaluates only what follows it (per-slot prefix reuse, trimmed with `llama_memory_seq_rm`).

The context is opened with a non-unified KV cache (`kv_unified=False`): each sequence has its own cells starting at
0, exactly as the single-stream context lays them out, so every sequence's attention sums the same numbers in the
same order and greedy output is token-identical to `LlamaCppBackend`'s one-at-a-time path (the tests assert it).
The cost: libllama splits a step into one micro-batch per run of consecutive sequence ids, so free slots are handed
out lowest id first to keep the active ones contiguous.

Per token, a request follows the one set of finish rules the single-stream loop uses
(`ondevice.backends.finish.FinishRules`): end-of-generation, incremental UTF-8, stop strings, the
`max_tokens`/context budget, one `StreamEvent` per token and a last one with `finish_reason` and `Timings`. Sampling is libllama's own chain per sequence (`ChainSampler`), reading
that sequence's row of the step's logits.

Not served here (the server falls back to the single-stream path): grammars / JSON schemas, speculative decoding,
prompts longer than a slot's context. All methods run on one thread (the server's model thread).
"""

from __future__ import annotations

import ctypes
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ondevice.backends.base import StreamEvent, Timings
from ondevice.backends.cache import MIN_FRESH_ROWS, exact_reuse
from ondevice.backends.llama_cpp_backend import ChainSampler, LlamaCppBackend
from ondevice.backends.finish import FinishRules
from ondevice.backends.text import Utf8Pieces
from ondevice.errors import ContextOverflow, InvalidInput, UnsupportedOperation
from ondevice.decoding.sampling import SamplingParams

import llama_cpp as lc

MAX_SLOTS = 64


def batchable(params: SamplingParams) -> bool:
    """Whether a request can join a batch: plain sampling only (a grammar or speculative decoding needs the
    single-stream loop, which owns those hooks)."""
    return params.grammar is None and getattr(params, "speculative", None) in (None, "off", "auto")


@dataclass
class Job:
    """One request in the engine: its prompt, sampling, and where its events go (`emit`, called on the engine's
    thread). `cancel()` may be called from any thread; the engine drops the job before its next step."""

    prompt: list[int]
    params: SamplingParams
    emit: Callable[[StreamEvent], None]
    cancelled: bool = False
    done: bool = False
    # filled in by the engine
    slot: "Slot | None" = None
    todo: list[int] = field(default_factory=list)     # prompt tokens not evaluated yet
    pending: int | None = None                        # sampled, not yet evaluated
    timings: Timings = field(default_factory=Timings)
    sampler: ChainSampler | None = None
    rules: FinishRules | None = None  # the decode loop's finish rules (ondevice.backends.finish), one per job

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Slot:
    """One sequence id of the batch context, and the tokens its KV cells hold (position by position)."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    job: Job | None = None
    prefilled: int = 0  # leading cells evaluated as a prompt: what a later prompt may reuse exactly

class BatchEngine:
    """Up to `slots` concurrent generations of one loaded GGUF model, each with `slot_ctx` tokens of context."""

    def __init__(self, backend: LlamaCppBackend, slots: int, slot_ctx: int | None = None, n_batch: int = 512):
        if not isinstance(backend, LlamaCppBackend):
            raise UnsupportedOperation(f"batched decoding needs a GGUF model, not the {backend.name} backend")
        if not 1 <= slots <= MAX_SLOTS:
            raise InvalidInput(f"slots must be 1..{MAX_SLOTS}, got {slots}")
        self.backend = backend
        self.n_slots = slots
        self.slot_ctx = int(slot_ctx or backend.n_ctx)
        params = lc.llama_context_default_params()
        ctypes.memmove(ctypes.byref(params), ctypes.byref(backend._llm.context_params), ctypes.sizeof(params))
        # Same threads, KV type, flash attention and rope settings as the single-stream context; only the shape
        # differs. Each sequence gets its own KV stream of slot_ctx cells (non-unified: see the module doc).
        params.n_ctx = self.slot_ctx * slots
        params.n_seq_max = slots
        params.kv_unified = False
        params.n_batch = max(n_batch, slots)
        params.n_ubatch = max(n_batch, slots)
        params.embeddings = False
        self.ctx = lc.llama_init_from_model(backend._llm.model, params)
        if not self.ctx:
            raise MemoryError(f"libllama could not open a batch context of {slots} x {self.slot_ctx} tokens")
        self.n_batch = params.n_batch
        self._mem = lc.llama_get_memory(self.ctx)
        self._batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self._n_swa = getattr(backend, "_n_swa", 0)
        self.slots = [Slot(i) for i in range(slots)]
        self.waiting: deque[Job] = deque()
        self.steps = 0
        self.reused_tokens = 0

    # --- admission ---------------------------------------------------------------------------------------------
    def check_prompt(self, prompt: str | Sequence[int]) -> list[int]:
        """The prompt as tokens, checked as the single-stream path checks it, against one slot's context."""
        tokens = self.backend.prompt_tokens(prompt)
        if len(tokens) >= self.slot_ctx:
            raise ContextOverflow(f"prompt is {len(tokens)} tokens but a batch slot holds {self.slot_ctx}")
        return tokens

    def submit(self, job: Job) -> Job:
        """Queue a job; it joins at the start of a later step, when a slot is free."""
        if len(job.prompt) >= self.slot_ctx:
            raise ContextOverflow(f"prompt is {len(job.prompt)} tokens but a batch slot holds {self.slot_ctx}")
        self.waiting.append(job)
        return job

    @property
    def active(self) -> int:
        return sum(1 for s in self.slots if s.job is not None)

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or self.active > 0

    def _admit(self) -> None:
        while self.waiting and self.waiting[0].cancelled:
            self._finish_unstarted(self.waiting.popleft())
        free = [s for s in self.slots if s.job is None]
        while self.waiting and free:
            job = self.waiting.popleft()
            if job.cancelled:
                self._finish_unstarted(job)
                continue
            # The free slot whose cells share the longest prefix with this prompt; ties go to the lowest id, which
            # keeps active sequence ids contiguous (one micro-batch per step).
            mode = self.backend.options.cache_reuse
            best = max(free, key=lambda s: (exact_reuse(s.tokens, s.prefilled, job.prompt, mode), -s.seq))
            free.remove(best)
            self._start(job, best)

    def _start(self, job: Job, slot: Slot) -> None:
        # The same reuse rule as the single-stream path (ondevice.backends.cache.exact_reuse): the answer at
        # temperature 0 is then the same whichever slot, history or company a request gets.
        n = self._trim(slot, exact_reuse(slot.tokens, slot.prefilled, job.prompt, self.backend.options.cache_reuse))
        slot.prefilled = len(job.prompt)
        job.slot, slot.job = slot, job
        job.todo = list(job.prompt[n:])
        job.timings = Timings(prompt_tokens=len(job.prompt), reused_tokens=n)
        job.rules = FinishRules(job.params, min(job.params.max_tokens, self.slot_ctx - len(job.prompt)),
                                Utf8Pieces(self.backend), self.backend._is_eog, timings=job.timings)
        job.sampler = ChainSampler(self.ctx, job.params, self.backend._n_vocab)
        self.reused_tokens += n

    def _trim(self, slot: Slot, n: int) -> int:
        """Cut the slot's cells back to its first `n` tokens; returns how many it keeps."""
        if n > 0 and self._n_swa > 0:
            n = 0  # a sliding-window cache may no longer hold early positions: start over
        if n < len(slot.tokens):
            if n == 0 or not lc.llama_memory_seq_rm(self._mem, slot.seq, n, -1):
                lc.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
                n = 0
            del slot.tokens[n:]
        slot.prefilled = min(slot.prefilled, n)
        return n

    # --- one step ----------------------------------------------------------------------------------------------
    def step(self) -> int:
        """Admit waiting jobs, then one `llama_decode` over every active sequence; returns the tokens evaluated
        (0 when there was nothing to do)."""
        for slot in self.slots:
            if slot.job is not None and slot.job.cancelled:
                self._release(slot, None)
        self._admit()
        batch, rows = self._batch, []  # rows: (batch index, job) whose logits are sampled after the decode
        n = 0
        room = self.n_batch - sum(1 for s in self.slots if s.job is not None and not s.job.todo)
        for slot in self.slots:  # in sequence-id order: libllama groups consecutive ids into one micro-batch
            job = slot.job
            if job is None:
                continue
            if job.todo:
                # Prompt rows go in chunks of at least MIN_FRESH_ROWS (a lone prompt row would be computed as a
                # decode step is, and the answer would then depend on how busy the batch was).
                size = min(len(job.todo), max(0, room))
                if len(job.todo) - size == 1:
                    size -= 1
                if size < min(MIN_FRESH_ROWS, len(job.todo)):
                    continue
                take = job.todo[:size]
                room -= len(take)
                del job.todo[:len(take)]
                feed, wants_logits = take, not job.todo
            else:
                feed, wants_logits = [job.pending], True
            for i, token in enumerate(feed):
                batch.token[n] = token
                batch.pos[n] = len(slot.tokens) + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq
                batch.logits[n] = 0
                n += 1
            batch.logits[n - 1] = 1 if wants_logits else 0
            slot.tokens.extend(feed)
            if wants_logits:
                rows.append((n - 1, job))
        if n == 0:
            return 0
        batch.n_tokens = n
        rc = lc.llama_decode(self.ctx, batch)
        self.steps += 1
        if rc != 0:
            self.fail_all(RuntimeError(f"llama_decode failed with code {rc}"))
            return n
        for index, job in rows:
            job.rules.first_token()
            self._accept(job, job.sampler.sample(index))
        return n

    def _accept(self, job: Job, token: int) -> None:
        """One sampled token, by the decode loop's finish rules (ondevice.backends.finish)."""
        events, finish = job.rules.token(token)
        for event in events:
            job.emit(event)
        if finish is not None:
            return self._release(job.slot, finish)
        job.pending = token

    def _release(self, slot: Slot, finish: str | None) -> None:
        """End the slot's job: emit its tail and last event (unless it was cancelled) and free the slot. The cells
        stay (for prefix reuse); `slot.tokens` records exactly what they hold."""
        job, slot.job = slot.job, None
        job.sampler.close()
        job.done = True
        if finish is None:  # cancelled: nobody reads further events
            return
        for event in job.rules.end(finish):
            job.emit(event)

    def _finish_unstarted(self, job: Job) -> None:
        job.done = True

    def fail_all(self, error: Exception) -> None:
        """A failed decode leaves the cells in an unknown state: end every job with the error, clear the cache."""
        for slot in self.slots:
            job = slot.job
            if job is not None:
                slot.job = None
                job.sampler.close()
                job.done = True
                job.emit(StreamEvent("", None, finish_reason="error", timings=job.timings))
            slot.tokens = []
        lc.llama_memory_clear(self._mem, True)
        self.last_error = error

    # --- conveniences ------------------------------------------------------------------------------------------
    def generate_all(self, prompts: Sequence[str | Sequence[int]], params: SamplingParams) -> list[str]:
        """Generate every prompt together (joining as slots free up); the texts in prompt order."""
        texts: list[list[str]] = [[] for _ in prompts]
        jobs = [self.submit(Job(self.check_prompt(p), params, lambda e, i=i: texts[i].append(e.text)))
                for i, p in enumerate(prompts)]
        while not all(job.done for job in jobs):
            self.step()
        return ["".join(t) for t in texts]

    def close(self) -> None:
        for slot in self.slots:
            if slot.job is not None and slot.job.sampler is not None:
                slot.job.sampler.close()
            slot.job = None
        if getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "ctx", None):
            lc.llama_free(self.ctx)
            self.ctx = None
