"""GGUF models through llama-cpp-python.

`llama_cpp.Llama` loads the model and context and tokenises; decoding runs on libllama's own API (batch decode +
C-side sampler chain) so that no logits are copied into Python per token. That keeps the public API's decode speed
close to a bare libllama loop (the bench's `--reference` checks the ratio).
"""

from __future__ import annotations

import ctypes
import random
import time
from typing import Sequence

import numpy as np

from ondevice.models import chat_template
from ondevice.machine.autoconfig import llama_gpu_offload_supported
from ondevice.backends.cache import MIN_FRESH_ROWS, REUSE_ALIGN, CacheState, chunk_ends, exact_reuse
from ondevice.backends.text import TextBackend
from ondevice.errors import BackendUnavailable, ContextOverflow, InvalidModelFile, UnsupportedOperation
from ondevice.machine.hugepages import huge_pages
from ondevice.models.model_info import ModelInfo
from ondevice.backends.options import RuntimeOptions
from ondevice.decoding.sampling import SamplingParams
from ondevice.decoding.speculative import lookup_decoder
from ondevice.models.store import ModelRef

import llama_cpp as lc

# RuntimeOptions.kv_type -> ggml type id of the KV cache (llama_context_params.type_k / type_v).
GGML_KV_TYPES = {"f32": 0, "f16": 1, "q8_0": 8, "q4_0": 2}


class ChainSampler:
    """libllama's C-side sampler chain (no logits copied into Python per token), in the order `ondevice.decoding.sampling`
    documents: logit bias, penalties, then greedy, or top-k, top-p, min-p, temperature and a seeded draw."""

    def __init__(self, ctx, params: SamplingParams, n_vocab: int):
        self._ctx = ctx
        self.chain = chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if params.logit_bias:
            biases = (lc.llama_logit_bias * len(params.logit_bias))()
            for i, (token, bias) in enumerate(sorted(params.logit_bias.items())):
                biases[i].token, biases[i].bias = token, bias
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_logit_bias(n_vocab, len(biases), biases))
        if params.penalised:  # counted over every token of this answer (the window is the whole budget)
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_penalties(
                n_vocab, params.max_tokens, params.repeat_penalty, params.frequency_penalty, params.presence_penalty))
        if params.greedy:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(params.min_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, index: int = -1) -> int:
        """The next token from the logits at batch position `index` (default: the last evaluated token)."""
        return lc.llama_sampler_sample(self.chain, self._ctx, index)

    def close(self) -> None:
        if self.chain is not None:
            lc.llama_sampler_free(self.chain)
            self.chain = None


class LlamaCppBackend(TextBackend):
    """Runs GGUF files with libllama (CPU, or GPU offload when the build supports it)."""

    name = "gguf"
    formats = ("gguf",)
    options = frozenset({"logits_all", "embedding", "use_mmap", "kv_type", "flash_attn", "huge_pages",
                         "speculative", "chat_template", "tool_format", "cache_reuse"})

    def __init__(self, ref: ModelRef, info: ModelInfo, options: RuntimeOptions):
        super().__init__(ref, info, options)
        self.n_ctx = self.context_length(options.n_ctx)
        n_gpu_layers = self._gpu_layers(options.device)
        kv = GGML_KV_TYPES[options.kv_type]
        extra = {"type_k": kv, "type_v": kv, "flash_attn": options.flash_attention_enabled(), **options.extra}
        if options.embedding:  # causal LMs default to per-token outputs; one vector per text is what embed() means
            extra.setdefault("pooling_type", lc.LLAMA_POOLING_TYPE_MEAN)
        try:
            with huge_pages(options.huge_pages) as self.huge_pages:
                self._llm = lc.Llama(
                    model_path=str(ref.path), n_ctx=self.n_ctx, n_batch=min(512, self.n_ctx),
                    n_ubatch=min(512, self.n_ctx), n_threads=options.threads, n_threads_batch=options.threads,
                    n_gpu_layers=n_gpu_layers, use_mmap=options.use_mmap, embedding=options.embedding,
                    verbose=False, **extra,
                )
        except ValueError as exc:
            raise InvalidModelFile(f"{ref.path}: libllama could not load this GGUF ({exc})") from None
        self.device = "gpu" if n_gpu_layers else "cpu"
        self._vocab = lc.llama_model_get_vocab(self._llm.model)
        self._n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self._bos = lc.llama_vocab_bos(self._vocab)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._n_swa = int(lc.llama_model_n_swa(self._llm.model)) if hasattr(lc, "llama_model_n_swa") else 0
        self._cached: list[int] = []
        self._prefilled = 0  # leading positions of _cached evaluated as a prompt (ondevice.backends.cache.exact_reuse)
        # Whether this model, on this machine and these settings, gives a prompt split once the logits of the whole
        # prompt at once; where not, prompts are evaluated in aligned chunks (ondevice.backends.cache.REUSE_ALIGN).
        # Assumed while the check itself runs (it evaluates its splits in plain chunks).
        self.split_invariant = True
        if not options.embedding:
            self.split_invariant = self._splits_are_exact()

    @staticmethod
    def _gpu_layers(device: str) -> int:
        device = device.lower()
        if device == "cpu":
            return 0
        supported = llama_gpu_offload_supported()
        if device == "auto":
            return -1 if supported else 0
        if device in ("gpu", "cuda", "metal", "vulkan"):
            if not supported:
                raise BackendUnavailable("device 'gpu' asked for, but this libllama build has no GPU offload")
            return -1
        raise BackendUnavailable(f"device {device!r} is not one the GGUF backend knows (auto, cpu, gpu)")

    # --- tokens -----------------------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self._bos:  # template already wrote BOS
            tokens = tokens[1:]
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def _piece(self, token: int) -> bytes:
        n = lc.llama_token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:  # buffer too small: grow and retry
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        return self._piece_buf.raw[:n]

    def chat_template_parts(self) -> tuple[str, str, str]:
        """(template, bos, eos): the chat template chat() uses (the caller's, else the model's) and its tokens."""
        template = self.options.chat_template or self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise UnsupportedOperation(f"{self.ref.name} has no chat template (a base model?): use generate()")
        eos = self._llm.detokenize([self._llm.token_eos()], special=True).decode(errors="replace")
        bos = self._llm.detokenize([self._llm.token_bos()], special=True).decode(errors="replace") \
            if self._llm.token_bos() >= 0 else ""
        return template, bos, eos

    def render_chat(self, messages: list[dict]) -> str:
        template, bos, eos = self.chat_template_parts()
        return chat_template.render(template, messages, bos_token=bos, eos_token=eos)

    # --- the decode loop's primitives (ondevice.backends.text) ---------------------------------------------------
    # The context holds one sequence (id 0); `self._cached` is the record of its tokens, position by position. Every
    # path that changes the KV cache keeps it exact, so a new prompt evaluates only what follows the longest common
    # prefix (the cache is trimmed there with llama_memory_seq_rm, never cleared needlessly).
    def _memory_clear(self) -> None:
        lc.llama_memory_clear(lc.llama_get_memory(self._llm.ctx), True)
        self._llm.reset()
        self._cached = []
        self._prefilled = 0

    @property
    def reuse_align(self) -> int:
        """Prompts are evaluated in chunks ending at multiples of this, and reused in whole such chunks."""
        return 1 if self.split_invariant else REUSE_ALIGN

    # Fixed text for the load-time check below: short, so that the check costs a few dozen prompt rows.
    _PROBE_TEXT = "The farmer counted his sheep twice before the storm, and the miller closed the old gate."
    _PROBE_SPLITS = (2, 3, 5, 9)

    def _splits_are_exact(self) -> bool:
        """Evaluate a short fixed prompt whole, then split once at a few places: True when every split gives
        bit-identical last logits (SmolLM2: yes; gemma3-270m Q4_K_M on AVX-512: no, see REUSE_ALIGN)."""
        tokens = self.tokenize(self._PROBE_TEXT)[:16]
        try:
            self._decode(tokens)
            whole = self._output_logits(-1).copy()
            for split in self._PROBE_SPLITS:
                self._memory_clear()
                self._decode(tokens[:split])
                self._decode(tokens[split:])
                if not np.array_equal(self._output_logits(-1), whole):
                    return False
            return True
        finally:
            self._memory_clear()

    def _decode(self, tokens: Sequence[int]) -> None:
        """Feed tokens (in n_batch chunks, or chunks ending at multiples of reuse_align); logits of the last one
        become available to the sampler."""
        at = begin = len(self._cached)  # the first position fed: chunk ends count from position 0, not from here
        for end in chunk_ends(at, at + len(tokens), self._llm.n_batch, self.reuse_align):
            chunk, begin = tokens[begin - at:end - at], end
            arr = (lc.llama_token * len(chunk))(*chunk)
            rc = lc.llama_decode(self._llm.ctx, lc.llama_batch_get_one(arr, len(chunk)))
            if rc != 0:
                self._memory_clear()  # what the cache holds is unknown now
                raise RuntimeError(f"llama_decode failed with code {rc}")
            self._cached.extend(chunk)

    def _trim(self, n: int) -> int:
        """Cut the cache back to its first `n` tokens; returns how many it keeps (0 when it had to clear)."""
        mem = lc.llama_get_memory(self._llm.ctx)
        # A sliding-window cache no longer holds the early positions a suffix would attend to: start over.
        if n > 0 and self._n_swa > 0 and lc.llama_memory_seq_pos_min(mem, 0) > max(0, n - self._n_swa):
            n = 0
        if n == 0:
            self._memory_clear()
            return 0
        if n < len(self._cached):
            if not lc.llama_memory_seq_rm(mem, 0, n, -1):  # e.g. a recurrent model: no partial removal
                self._memory_clear()
                return 0
            del self._cached[n:]
        self._prefilled = min(self._prefilled, n)
        return n

    def reusable_prefix(self, tokens: Sequence[int]) -> int:
        return exact_reuse(self._cached, self._prefilled, tokens, self.options.cache_reuse, self.reuse_align)

    def _prefill(self, tokens: list[int]) -> int:
        # Reuse only what keeps the prompt's logits those of a cold start (and so evaluate at least its last rows).
        n = self._trim(self.reusable_prefix(tokens))
        self._decode(tokens[n:])
        self._prefilled = len(tokens)
        return n

    def cached_tokens(self) -> list[int]:
        return list(self._cached)

    def clear_cache(self) -> None:
        self._memory_clear()

    def export_cache(self) -> CacheState:
        ctx = self._llm.ctx
        size = lc.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_ubyte * max(1, size))()
        written = lc.llama_state_seq_get_data(ctx, buf, size, 0)
        return CacheState(tuple(self._cached), ctypes.string_at(buf, written), self._prefilled)

    def import_cache(self, state: CacheState) -> bool:
        self._memory_clear()
        if not state.data or len(state.tokens) >= self.n_ctx:
            return False
        buf = (ctypes.c_ubyte * len(state.data)).from_buffer_copy(state.data)
        if lc.llama_state_seq_set_data(self._llm.ctx, buf, len(state.data), 0) == 0:
            self._memory_clear()
            return False
        pos_max = lc.llama_memory_seq_pos_max(lc.llama_get_memory(self._llm.ctx), 0)
        if pos_max != len(state.tokens) - 1:  # the bytes do not describe these tokens
            self._memory_clear()
            return False
        self._cached = list(state.tokens)
        self._prefilled = state.reusable
        return True

    def _feed(self, tokens: list[int]) -> None:
        self._decode(tokens)

    # --- lookup decoding (ondevice.decoding.speculative): a multi-token step over two more primitives ---------------------
    def _step(self, state) -> list[int]:
        if state.speculator is None:
            state.speculator = lookup_decoder(self, state, self.options.speculative) or False
        return state.speculator.step(state) if state.speculator else super()._step(state)

    def _feed_all(self, tokens: list[int]) -> None:
        """Evaluate tokens after the cache in one batch, with logits kept at every position (sampler index i)."""
        batch = lc.llama_batch_init(len(tokens), 0, 1)
        try:
            start = len(self._cached)
            for i, tok in enumerate(tokens):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, start + i, 1, 1
                batch.seq_id[i][0] = 0
            batch.n_tokens = len(tokens)
            rc = lc.llama_decode(self._llm.ctx, batch)
            if rc != 0:
                self._memory_clear()
                raise RuntimeError(f"llama_decode failed with code {rc}")
            self._cached.extend(tokens)
        finally:
            lc.llama_batch_free(batch)

    def _output_logits(self, index: int) -> np.ndarray:
        """Logits row `index` of the last batch, a view of libllama's buffer."""
        return np.ctypeslib.as_array(lc.llama_get_logits_ith(self._llm.ctx, index), shape=(self._n_vocab,))

    def _is_eog(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self._vocab, token))

    def eos_token(self) -> int | None:
        eos = lc.llama_vocab_eos(self._vocab)
        return eos if eos >= 0 else None

    def vocab_size(self) -> int:
        return int(self._n_vocab)

    def _new_sampler(self, params: SamplingParams) -> "ChainSampler":
        return ChainSampler(self._llm.ctx, params, self._n_vocab)

    def _build_vocabulary(self):
        from ondevice.decoding.structured import Vocabulary

        return Vocabulary.from_llama(self._vocab)

    def _constrained_sampler(self, params: SamplingParams, constraint):
        """The C sampler chain reads libllama's logits buffer: the grammar masks it in place (no copy)."""
        from ondevice.decoding.structured import ConstrainedSampler

        view: dict = {}

        def row() -> np.ndarray:  # a NumPy view of the buffer, rebuilt only when libllama moves it
            address = ctypes.cast(lc.llama_get_logits_ith(self._llm.ctx, -1), ctypes.c_void_p).value
            if view.get("address") != address:
                buffer = (ctypes.c_float * self._n_vocab).from_address(address)
                view.update(address=address, array=np.frombuffer(buffer, dtype=np.float32))
            return view["array"]

        return ConstrainedSampler(self._new_sampler(params), constraint, row)

    def logits(self, tokens: Sequence[int], first: int = 0) -> np.ndarray:
        tokens = [int(t) for t in tokens]
        if len(tokens) > self.n_ctx:
            raise ContextOverflow(f"{len(tokens)} tokens do not fit in the context of {self.n_ctx}")
        self._memory_clear()
        out = np.empty((len(tokens) - first, self._n_vocab), dtype=np.float32)
        n_batch = self._llm.n_batch
        batch = lc.llama_batch_init(n_batch, 0, 1)
        try:
            ends = chunk_ends(0, len(tokens), n_batch, self.reuse_align)  # the chunks a prompt evaluates
            for start, end in zip([0] + ends[:-1], ends):
                chunk = tokens[start:end]
                for i, tok in enumerate(chunk):
                    batch.token[i] = tok
                    batch.pos[i] = start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = int(start + i >= first)  # rows before `first`: no vocabulary projection
                batch.n_tokens = len(chunk)
                rc = lc.llama_decode(self._llm.ctx, batch)
                if rc != 0:
                    self._memory_clear()
                    raise RuntimeError(f"llama_decode failed with code {rc}")
                self._cached.extend(chunk)  # the cache now holds these: a later prompt may reuse them
                self._prefilled = len(self._cached) if len(chunk) >= MIN_FRESH_ROWS else self._prefilled
                rows = start + len(chunk) - max(first, start)  # this chunk's positions at or after `first`
                if rows > 0:
                    ptr = lc.llama_get_logits(self._llm.ctx)
                    out[max(first, start) - first:start + len(chunk) - first] = np.ctypeslib.as_array(
                        ptr, shape=(rows, self._n_vocab))
        finally:
            lc.llama_batch_free(batch)
        return out

    def reference_decode(self, tokens: Sequence[int]) -> float:
        """Bare libllama loop: one `llama_decode` of one given token per step, then `llama_synchronize`, exactly as
        llama.cpp's llama-bench measures tg, on this backend's own context (same threads, size, KV type)."""
        self._memory_clear()
        ctx, one = self._llm.ctx, (lc.llama_token * 1)()

        def step(token: int) -> None:
            one[0] = int(token)
            if lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) != 0:
                raise RuntimeError("llama_decode failed in the reference loop")
            lc.llama_synchronize(ctx)

        try:
            step(tokens[0])  # the public path also starts timing after its first token
            t0 = time.perf_counter()
            for token in tokens[1:]:
                step(token)
            return time.perf_counter() - t0
        finally:
            self._memory_clear()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.options.embedding:
            raise UnsupportedOperation(f"{self.ref.name}: load with embedding=True to get embeddings from a GGUF")
        self._cached = []  # Llama.embed clears the cache itself
        return np.asarray(self._llm.embed(list(texts), normalize=True), dtype=np.float32)

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None
