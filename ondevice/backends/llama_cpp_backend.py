"""GGUF models through llama-cpp-python.

`llama_cpp.Llama` loads the model and context and tokenises; decoding runs on libllama's own API (batch decode +
C-side sampler chain) so that no logits are copied into Python per token. That keeps the public API's decode speed
close to a bare libllama loop (the bench's `--reference` checks the ratio).
"""

from __future__ import annotations

import codecs
import ctypes
import random
import time
from typing import Iterator, Sequence

import numpy as np

from ondevice import chat_template
from ondevice.autoconfig import choose_context, llama_gpu_offload_supported
from ondevice.backends.base import Backend, SamplingParams, StreamEvent, Timings
from ondevice.backends.stops import StopMatcher
from ondevice.errors import BackendUnavailable, ContextOverflow, InvalidInput, InvalidModelFile, UnsupportedOperation
from ondevice.model_info import ModelInfo
from ondevice.options import RuntimeOptions
from ondevice.store import ModelRef

import llama_cpp as lc


class LlamaCppBackend(Backend):
    """Runs GGUF files with libllama (CPU, or GPU offload when the build supports it)."""

    name = "gguf"
    formats = ("gguf",)

    def __init__(self, ref: ModelRef, info: ModelInfo, options: RuntimeOptions):
        super().__init__(ref, info, options)
        self.n_ctx = choose_context(info, options.n_ctx)
        n_gpu_layers = self._gpu_layers(options.device)
        extra = dict(options.extra)
        if options.embedding:  # causal LMs default to per-token outputs; one vector per text is what embed() means
            extra.setdefault("pooling_type", lc.LLAMA_POOLING_TYPE_MEAN)
        try:
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

    @property
    def llama(self) -> "lc.Llama":
        """The underlying llama_cpp.Llama (bench's bare reference loop decodes on its context)."""
        return self._llm

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

    def render_chat(self, messages: list[dict]) -> str:
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise UnsupportedOperation(f"{self.ref.name} has no chat template (a base model?): use generate()")
        eos = self._llm.detokenize([self._llm.token_eos()], special=True).decode(errors="replace")
        bos = self._llm.detokenize([self._llm.token_bos()], special=True).decode(errors="replace") \
            if self._llm.token_bos() >= 0 else ""
        return chat_template.render(template, messages, bos_token=bos, eos_token=eos)

    # --- decoding ---------------------------------------------------------------------------------------------
    def _memory_clear(self) -> None:
        lc.llama_memory_clear(lc.llama_get_memory(self._llm.ctx), True)
        self._llm.reset()

    def _decode(self, tokens: Sequence[int]) -> None:
        """Feed tokens (in n_batch chunks); logits of the last one become available to the sampler."""
        n_batch = self._llm.n_batch
        for start in range(0, len(tokens), n_batch):
            chunk = tokens[start:start + n_batch]
            arr = (lc.llama_token * len(chunk))(*chunk)
            rc = lc.llama_decode(self._llm.ctx, lc.llama_batch_get_one(arr, len(chunk)))
            if rc != 0:
                raise RuntimeError(f"llama_decode failed with code {rc}")

    def _sampler(self, params: SamplingParams):
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if params.temperature <= 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
            return chain
        if params.top_k > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(params.top_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def prompt_tokens(self, prompt: str | Sequence[int]) -> list[int]:
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not tokens:
            raise InvalidInput("prompt is empty")
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(f"prompt is {len(tokens)} tokens but the context holds {self.n_ctx} "
                                  f"(load with a larger n_ctx, up to {self.info.context_length})")
        return tokens

    def stream(self, prompt: str | Sequence[int], params: SamplingParams) -> Iterator[StreamEvent]:
        tokens = self.prompt_tokens(prompt)  # checked before the generator starts, so errors raise at call time
        return self._stream(tokens, params)

    def _stream(self, tokens: list[int], params: SamplingParams) -> Iterator[StreamEvent]:
        budget = min(params.max_tokens, self.n_ctx - len(tokens))
        timings = Timings(prompt_tokens=len(tokens))
        t0 = time.perf_counter()
        self._memory_clear()
        self._decode(tokens)
        t_prompt = time.perf_counter()
        timings.prompt_ms = (t_prompt - t0) * 1000
        sampler = self._sampler(params)
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(params.stop)
        finish = "length"
        t_first = None
        hit_stop = False
        try:
            for step in range(budget):
                token = lc.llama_sampler_sample(sampler, self._llm.ctx, -1)
                if t_first is None:
                    t_first = time.perf_counter()
                    timings.ttft_ms = (t_first - t0) * 1000
                if not params.ignore_eos and lc.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                timings.completion_tokens += 1
                text, hit_stop = stops.feed(utf8.decode(self._piece(token)))
                yield StreamEvent(text, token)
                if hit_stop:
                    finish = "stop"
                    break
                if step + 1 < budget:
                    self._decode([token])
        finally:
            lc.llama_sampler_free(sampler)
        if not hit_stop:  # emit what was held back as a possible stop-string prefix or partial UTF-8
            tail = stops.feed(utf8.decode(b"", final=True))[0] + stops.flush()
            if tail:
                yield StreamEvent(tail)
        t_end = time.perf_counter()
        timings.decode_ms = (t_end - t_first) * 1000 if t_first else 0.0
        timings.total_ms = (t_end - t0) * 1000
        yield StreamEvent("", None, finish_reason=finish, timings=timings)

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        tokens = [int(t) for t in tokens]
        if len(tokens) > self.n_ctx:
            raise ContextOverflow(f"{len(tokens)} tokens do not fit in the context of {self.n_ctx}")
        self._memory_clear()
        out = np.empty((len(tokens), self._n_vocab), dtype=np.float32)
        n_batch = self._llm.n_batch
        batch = lc.llama_batch_init(n_batch, 0, 1)
        try:
            for start in range(0, len(tokens), n_batch):
                chunk = tokens[start:start + n_batch]
                for i, tok in enumerate(chunk):
                    batch.token[i] = tok
                    batch.pos[i] = start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 1
                batch.n_tokens = len(chunk)
                rc = lc.llama_decode(self._llm.ctx, batch)
                if rc != 0:
                    raise RuntimeError(f"llama_decode failed with code {rc}")
                ptr = lc.llama_get_logits(self._llm.ctx)
                out[start:start + len(chunk)] = np.ctypeslib.as_array(ptr, shape=(len(chunk), self._n_vocab))
        finally:
            lc.llama_batch_free(batch)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.options.embedding:
            raise UnsupportedOperation(f"{self.ref.name}: load with embedding=True to get embeddings from a GGUF")
        return np.asarray(self._llm.embed(list(texts), normalize=True), dtype=np.float32)

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None
