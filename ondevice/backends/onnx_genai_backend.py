"""ONNX LLM folders (genai_config.json + model.onnx) through onnxruntime-genai, on CPU or an NPU/GPU provider."""

from __future__ import annotations

import time
from typing import Iterator, Sequence

import numpy as np
import onnxruntime_genai as og

from ondevice import chat_template
from ondevice.autoconfig import choose_onnx_provider
from ondevice.backends.base import Backend, SamplingParams, StreamEvent, Timings
from ondevice.backends.stops import StopMatcher
from ondevice.errors import ContextOverflow, InvalidInput, InvalidModelFile
from ondevice.model_info import ModelInfo
from ondevice.options import RuntimeOptions
from ondevice.store import ModelRef

# onnxruntime provider name -> onnxruntime-genai's name for it.
GENAI_PROVIDER = {
    "CUDAExecutionProvider": "cuda", "DmlExecutionProvider": "dml", "QNNExecutionProvider": "qnn",
    "OpenVINOExecutionProvider": "OpenVINO", "CoreMLExecutionProvider": "CoreML",
}


def _eos_ids(folder) -> set[int]:
    """End-of-sequence ids from genai_config.json (an int or a list)."""
    import json

    eos = json.loads((folder / "genai_config.json").read_text())["model"].get("eos_token_id", [])
    return {int(e) for e in (eos if isinstance(eos, list) else [eos])}


class OnnxGenaiBackend(Backend):
    """Generates text from an onnxruntime-genai model folder."""

    name = "onnx-genai"
    formats = ("onnx-genai",)

    def __init__(self, ref: ModelRef, info: ModelInfo, options: RuntimeOptions):
        super().__init__(ref, info, options)
        provider = choose_onnx_provider(options.device)
        try:
            config = og.Config(str(ref.path))
            config.clear_providers()
            if provider in GENAI_PROVIDER:
                config.append_provider(GENAI_PROVIDER[provider])
            self._model = og.Model(config)
            self._tokenizer = og.Tokenizer(self._model)
        except Exception as exc:
            raise InvalidModelFile(f"{ref.path}: onnxruntime-genai could not load this model ({exc})") from None
        self.device = provider
        self.n_ctx = min(options.n_ctx or info.context_length or 2048, info.context_length or 1 << 30)
        self._eos_ids = _eos_ids(ref.path)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return [int(t) for t in self._tokenizer.encode(text)]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._tokenizer.decode(np.asarray(tokens, dtype=np.int32))

    def render_chat(self, messages: list[dict]) -> str:
        template, bos, eos = chat_template.template_from_folder(self.ref.path)
        return chat_template.render(template, messages, bos_token=bos, eos_token=eos)

    def _prompt_tokens(self, prompt: str | Sequence[int]) -> list[int]:
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not tokens:
            raise InvalidInput("prompt is empty")
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(f"prompt is {len(tokens)} tokens but the context holds {self.n_ctx}")
        return tokens

    def _generator(self, tokens: list[int], params: SamplingParams, max_length: int) -> og.Generator:
        gp = og.GeneratorParams(self._model)
        options = {"max_length": max_length, "do_sample": params.temperature > 0}
        if params.ignore_eos:  # onnxruntime-genai suppresses EOS until min_length
            options["min_length"] = max_length
        if params.temperature > 0:
            options.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or 0)
            if params.seed is not None:
                options["random_seed"] = int(params.seed)
        gp.set_search_options(**options)
        generator = og.Generator(self._model, gp)
        generator.append_tokens(np.asarray(tokens, dtype=np.int32))
        return generator

    def stream(self, prompt: str | Sequence[int], params: SamplingParams) -> Iterator[StreamEvent]:
        tokens = self._prompt_tokens(prompt)
        return self._stream(tokens, params)

    def _stream(self, tokens: list[int], params: SamplingParams) -> Iterator[StreamEvent]:
        timings = Timings(prompt_tokens=len(tokens))
        t0 = time.perf_counter()
        budget = min(params.max_tokens, self.n_ctx - len(tokens))
        generator = self._generator(tokens, params, len(tokens) + budget)
        timings.prompt_ms = (time.perf_counter() - t0) * 1000
        decoder = self._tokenizer.create_stream()
        stops = StopMatcher(params.stop)
        finish, hit_stop, t_first = "length", False, None
        for _ in range(budget):
            if generator.is_done():
                finish = "stop"
                break
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if t_first is None:
                t_first = time.perf_counter()
                timings.ttft_ms = (t_first - t0) * 1000
            # Done after this token: EOS (not part of the answer), or max_length reached (a real token).
            if generator.is_done() and token in self._eos_ids:
                finish = "stop"
                break
            timings.completion_tokens += 1
            text, hit_stop = stops.feed(decoder.decode(token))
            yield StreamEvent(text, token)
            if hit_stop:
                finish = "stop"
                break
        if not hit_stop:
            tail = stops.flush()
            if tail:
                yield StreamEvent(tail)
        del generator
        t_end = time.perf_counter()
        timings.decode_ms = (t_end - t_first) * 1000 if t_first else 0.0
        timings.total_ms = (t_end - t0) * 1000
        yield StreamEvent("", None, finish_reason=finish, timings=timings)

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        tokens = [int(t) for t in tokens]
        if len(tokens) > self.n_ctx:
            raise ContextOverflow(f"{len(tokens)} tokens do not fit in the context of {self.n_ctx}")
        generator = self._generator(tokens, SamplingParams(max_tokens=1), len(tokens) + 1)
        out = np.asarray(generator.get_output("logits"), dtype=np.float32)
        return out.reshape(-1, out.shape[-1])[-len(tokens):]

    def close(self) -> None:
        self._tokenizer = None
        self._model = None
