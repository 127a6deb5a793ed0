"""ONNX LLM folders (genai_config.json + model.onnx) through onnxruntime-genai, on CPU or an NPU/GPU provider.

One `og.Generator` lives as long as the backend and holds the KV cache; its sequence is the record of what the
cache holds. The decode loop (`ondevice.backends.text`) drives it with `append_tokens` (evaluate tokens) and
`get_logits` (the last position's logits), and samples in NumPy (`ondevice.decoding.sampling.LogitsSampler`): sampling options
are fixed when a generator is created, so sampling ourselves is what lets one generator serve every request.

Prefix reuse: a new prompt rewinds the generator to the longest common prefix (`rewind_to`) and appends the rest.
What onnxruntime-genai 0.11 cannot do: serialise its KV cache (a saved session keeps the tokens, and the first turn
after loading re-reads them), or hold several sequences in one generator (one live prefix, no snapshot slots).
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import onnxruntime_genai as og

from ondevice.models import chat_template
from ondevice.machine.autoconfig import resolve_onnx_device
from ondevice.backends.cache import common_prefix
from ondevice.backends.text import TextBackend
from ondevice.errors import ContextOverflow, InvalidModelFile, UnsupportedOperation
from ondevice.machine.hugepages import huge_pages
from ondevice.models.model_info import ModelInfo
from ondevice.models.onnx_folder import check_genai_folder
from ondevice.backends.options import RuntimeOptions
from ondevice.machine.providers import CPU, fallback_warning, register_for_genai
from ondevice.decoding.sampling import LogitsSampler, SamplingParams
from ondevice.models.store import ModelRef

# onnxruntime provider name -> onnxruntime-genai's name for it.
GENAI_PROVIDER = {
    "CUDAExecutionProvider": "cuda", "DmlExecutionProvider": "dml", "QNNExecutionProvider": "qnn",
    "OpenVINOExecutionProvider": "OpenVINO", "CoreMLExecutionProvider": "CoreML",
}


def _genai_model(folder, provider: str, kind: str | None = None, threads: int | None = None) -> og.Model:
    """An og.Model on `provider` (`kind`: its device_type, e.g. "GPU"); a plugin EP (ondevice.machine.providers) is
    registered with onnxruntime-genai first.

    threads: onnxruntime's intra-op threads. Set explicitly because onnxruntime-genai 0.11 left alone runs this
    model as fast as with one thread: SmolLM2-135M int4 decoded 118 tok/s with the folder's own settings, 118 with
    1 thread and 166 with 2 set here (2-core CPU, docs/quantize-quality.md "Speed")."""
    config = og.Config(str(folder))
    if threads:
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": int(threads)}}}}))
    config.clear_providers()
    if provider in GENAI_PROVIDER:
        register_for_genai(provider)
        config.append_provider(GENAI_PROVIDER[provider])
        if kind:
            config.set_provider_option(GENAI_PROVIDER[provider], "device_type", kind)
    return og.Model(config)


def _eos_ids(folder) -> set[int]:
    """End-of-sequence ids from genai_config.json (an int or a list; checked by ondevice.models.onnx_folder)."""
    return set(check_genai_folder(folder, graph=False).eos_ids)


class _StreamDecoder:
    """onnxruntime-genai's own streaming detokenizer (it holds back partial UTF-8 itself)."""

    def __init__(self, tokenizer):
        self._stream = tokenizer.create_stream()

    def decode(self, token: int) -> str:
        return self._stream.decode(token)

    def flush(self) -> str:
        return ""


class OnnxGenaiBackend(TextBackend):
    """Generates text from an onnxruntime-genai model folder."""

    name = "onnx-genai"
    formats = ("onnx-genai",)
    options = frozenset({"huge_pages", "chat_template", "tool_format"})
    can_exceed_trained_context = False

    def __init__(self, ref: ModelRef, info: ModelInfo, options: RuntimeOptions):
        super().__init__(ref, info, options)
        if options.kv_type != "f16":
            raise UnsupportedOperation(f"{ref.name}: kv_type {options.kv_type!r} is a GGUF (llama.cpp) option; an "
                                       f"ONNX model's KV cache type is fixed when it is exported")
        # Every value onnxruntime-genai reads, checked (types, ranges, the graph's real inputs) before it allocates.
        check_genai_folder(ref.path)
        choice = resolve_onnx_device(options.device)
        provider, self.device_note = choice.provider, choice.note
        try:
            try:
                # Huge pages under the weights, as for GGUF (ondevice.machine.hugepages); onnxruntime puts its pre-packed
                # weights on the C heap, hence heap=True.
                with huge_pages(options.huge_pages and provider == CPU, heap=True) as self.huge_pages:
                    self._model = _genai_model(ref.path, provider, choice.kind, options.threads)
            except Exception as exc:  # the provider cannot take this model: the CPU provider runs it
                if provider == CPU:
                    raise
                provider, self.device_note = CPU, fallback_warning(provider, f"it could not take this model ({exc})")
                self._model = _genai_model(ref.path, CPU, threads=options.threads)
            self._tokenizer = og.Tokenizer(self._model)
        except Exception as exc:
            raise InvalidModelFile(f"{ref.path}: onnxruntime-genai could not load this model ({exc})") from None
        self.device = provider
        self.n_ctx = self.context_length(options.n_ctx)
        self._eos_ids = _eos_ids(ref.path)
        self._generator: og.Generator | None = None

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return [int(t) for t in self._tokenizer.encode(text)]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._tokenizer.decode(np.asarray(tokens, dtype=np.int32))

    def chat_template_parts(self) -> tuple[str, str, str]:
        """(template, bos, eos): the chat template chat() uses (the caller's, else the folder's) and its tokens."""
        own = self.options.chat_template
        template, bos, eos = chat_template.template_from_folder(self.ref.path, required=own is None)
        return own or template, bos, eos

    def render_chat(self, messages: list[dict]) -> str:
        template, bos, eos = self.chat_template_parts()
        return chat_template.render(template, messages, bos_token=bos, eos_token=eos)

    # --- the decode loop's primitives (ondevice.backends.text) ---------------------------------------------------
    def _new_generator(self, max_length: int) -> og.Generator:
        gp = og.GeneratorParams(self._model)
        gp.set_search_options(max_length=max_length, do_sample=False)
        return og.Generator(self._model, gp)

    def _prefill(self, tokens: list[int]) -> int:
        # Reuse the longest common prefix: rewind the generator there (always re-evaluating at least the last
        # prompt token, so its logits are fresh) and append the rest. Nothing in common rewinds to 0: the
        # generator keeps its KV buffers (n_ctx long), where a new one allocates and first-touches them again
        # (SmolLM2 at n_ctx 4096: 188 MB; a 16-token prompt took 35-130 ms that way, 24 ms rewound; same logits).
        cached = self.cached_tokens()
        n = min(common_prefix(cached, tokens), len(tokens) - 1)
        try:
            if self._generator is None:
                self._generator = self._new_generator(self.n_ctx)
            elif cached:  # an empty generator needs no rewind
                self._generator.rewind_to(n)
            self._feed(tokens[n:])
        except Exception:
            self._generator = None  # its state is unknown now
            raise
        return n

    def _feed(self, tokens: list[int]) -> None:
        self._generator.append_tokens(np.asarray(tokens, dtype=np.int32))

    def clear_cache(self) -> None:
        self._generator = None

    def cached_tokens(self) -> list[int]:
        """The generator's sequence is the record of what its cache holds."""
        return [] if self._generator is None else [int(t) for t in self._generator.get_sequence(0)]

    def _last_logits(self) -> np.ndarray:
        return np.asarray(self._generator.get_logits()).reshape(-1)

    def _new_sampler(self, params: SamplingParams) -> LogitsSampler:
        return LogitsSampler(params, self._last_logits)

    def _build_vocabulary(self):
        from ondevice.decoding.structured import Vocabulary

        return Vocabulary.from_tokenizer_json(self.ref.path / "tokenizer.json", self._eos_ids)

    def _is_eog(self, token: int) -> bool:
        return token in self._eos_ids

    def eos_token(self) -> int | None:
        return min(self._eos_ids) if self._eos_ids else None

    def _text_decoder(self) -> _StreamDecoder:
        return _StreamDecoder(self._tokenizer)

    def logits(self, tokens: Sequence[int], first: int = 0) -> np.ndarray:
        tokens = [int(t) for t in tokens]
        if len(tokens) > self.n_ctx:
            raise ContextOverflow(f"{len(tokens)} tokens do not fit in the context of {self.n_ctx}")
        generator = self._new_generator(len(tokens) + 1)  # a separate generator: the cached one stays as it is
        generator.append_tokens(np.asarray(tokens, dtype=np.int32))
        out = np.asarray(generator.get_output("logits"), dtype=np.float32)
        return out.reshape(-1, out.shape[-1])[-len(tokens):][first:]

    def close(self) -> None:
        self._generator = None
        self._tokenizer = None
        self._model = None
