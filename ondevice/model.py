"""The public model object: load once, generate many, close."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from ondevice.backends import Backend, Generation, SamplingParams, StreamEvent, backend_class, backend_for_format
from ondevice.errors import BackendUnavailable, InvalidInput
from ondevice.decoding.messages import check_messages
from ondevice.models.model_info import ModelInfo, read_info
from ondevice.backends.options import RuntimeOptions
from ondevice.decoding.request import Request, build_request
from ondevice.models.store import ModelRef, resolve

if TYPE_CHECKING:
    from ondevice.session import Chat

# Formats that are not run directly but converted once into one that is are handled by "ondevice.materializers"
# entry points (ondevice/plugins.py): the quantize package registers "hf" (HF folder -> GGUF or ONNX encoder).


class TextStream:
    """Iterates over text pieces as they decode; after the loop, `.result` holds the whole Generation."""

    def __init__(self, events: Iterator[StreamEvent], finish: Callable[[Generation], Generation] | None = None):
        self._events = events
        self._finish = finish  # structured output / tool calls: reads parsed JSON or calls from the text
        self.result: Generation | None = None

    def __iter__(self) -> Iterator[str]:
        pieces: list[str] = []
        tokens: list[int] = []
        for event in self._events:
            if event.token is not None:
                tokens.append(event.token)
            if event.text:
                pieces.append(event.text)
                yield event.text
            if event.finish_reason is not None:
                self.result = Generation("".join(pieces), event.finish_reason, tokens, event.timings)
                if self._finish is not None:
                    self.result = self._finish(self.result)

    def close(self) -> None:
        """Stop the generation early (the backend frees its state at the next step)."""
        close = getattr(self._events, "close", None)
        if close:
            close()


class Model:
    """A loaded model. Use as a context manager, or call close() when done."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self._closed = False

    # --- facts ------------------------------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        return self._backend.info

    @property
    def name(self) -> str:
        return self._backend.ref.alias or self._backend.ref.name

    @property
    def ref(self) -> ModelRef:
        return self._backend.ref

    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def device(self) -> str:
        """Where the model runs, e.g. "cpu" or "QNNExecutionProvider"."""
        return self._backend.device

    @property
    def device_note(self) -> str:
        """Why the model runs somewhere other than the device asked for (a provider fallback); "" when it does not."""
        return getattr(self._backend, "device_note", "")

    @property
    def n_ctx(self) -> int:
        return self._backend.n_ctx

    @property
    def threads(self) -> int | None:
        return self._backend.options.threads

    @property
    def eos_token(self) -> int | None:
        """The end-of-sequence token id, or None (encoders, models without one)."""
        eos = getattr(self._backend, "eos_token", None)
        return eos() if eos else None

    @property
    def backend(self) -> Backend:
        """The runtime object (for tools such as bench that need low-level access)."""
        return self._backend

    # --- generation -------------------------------------------------------------------------------------------
    def generate(self, prompt: str, max_tokens: int = 128, *, stream: bool = False,
                 **options: Any) -> Generation | TextStream:
        """Complete `prompt`. With stream=True returns a TextStream that yields text pieces as they decode.

        options (`ondevice.decoding.request.build_request`): the sampling values (temperature, top_p, top_k, min_p, seed,
        stop, logit_bias, frequency_penalty, presence_penalty, repeat_penalty, ignore_eos), and:
        schema: a JSON Schema dict, a pydantic model class or "json" (any object): every token is constrained so
        the text is JSON that validates; `result.parsed` holds it (docs/structured-output.md).
        speculative: "auto", "off" or "lookup" lookup decoding for this call (default: the load option; "off"
        unless set); the same distribution either way, but at temperature 0 a near-tie can part from plain
        decoding (docs/speculative.md).
        """
        if not isinstance(prompt, str):
            raise InvalidInput("prompt must be a string")
        return self.run(build_request(prompt=prompt, max_tokens=max_tokens, **options), stream)

    def chat(self, messages: Sequence[dict], max_tokens: int = 256, *, stream: bool = False,
             **options: Any) -> Generation | TextStream:
        """Answer a conversation, formatted with the model's own chat template.

        Each message is {"role": "system"|"user"|"assistant"|"tool", "content": str or [{"type": "text", ...}]}.
        options: as in `generate`, plus tools / tool_choice ("auto", "none", "required" or {"type": "function",
        "function": {"name": ...}}) / parallel_tool_calls: OpenAI-style function calling; `result.tool_calls`
        lists the calls (their arguments validate against each tool's parameters) and finish_reason is
        "tool_calls". Assistant messages with "tool_calls" and {"role": "tool", "tool_call_id": ...} results
        continue the conversation.
        """
        return self.run(build_request(messages=messages, max_tokens=max_tokens, backend=self._backend, **options),
                        stream)

    def run(self, request: Request, stream: bool = False) -> Generation | TextStream:
        """Generate the answer to a `Request` (`ondevice.decoding.request.build_request`): the one engine entry every
        front end uses. A Generation, or with stream=True a TextStream whose `.result` becomes one."""
        return self._run(self.events(request), stream, request.finish)

    def events(self, request: Request) -> Iterator[StreamEvent]:
        """The raw events of a `Request` (token ids, text pieces, the last one with finish reason and timings).
        Prompt errors (empty, over the context, a bad logit_bias id) raise here, at call time."""
        self._check_open()
        if request.rendered is not None:  # the template rendered the tools itself (a native tool format)
            return self._backend.stream(request.rendered, request.params)
        if request.is_chat:
            return self._backend.stream_chat(request.messages, request.params)
        return self._backend.stream(request.prompt, request.params)

    def session(self, system: str | None = None) -> Chat:
        """A conversation on this model (history + KV cache; `save` it, resume with `ondevice.Chat.load`)."""
        from ondevice.session import Chat

        return Chat(self, system=system)

    def stream_events(self, prompt: str | Sequence[int], params: SamplingParams) -> Iterator[StreamEvent]:
        """Low-level streaming of a prompt (text or token ids) with token ids and timings (server, bench)."""
        self._check_open()
        return self._backend.stream(prompt, params)

    def chat_events(self, messages: Sequence[dict], params: SamplingParams) -> Iterator[StreamEvent]:
        """Low-level streaming of a chat answer (the backend's `stream_chat`), with token ids and timings."""
        self._check_open()
        return self._backend.stream_chat(check_messages(messages), params)

    def render_chat(self, messages: Sequence[dict]) -> str:
        return self._backend.render_chat(check_messages(messages))

    @staticmethod
    def _run(events: Iterator[StreamEvent], stream: bool,
             finish: Callable[[Generation], Generation] | None = None) -> Generation | TextStream:
        text_stream = TextStream(events, finish)
        if stream:
            return text_stream
        for _ in text_stream:
            pass
        return text_stream.result

    # --- other capabilities -----------------------------------------------------------------------------------
    def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embeddings, one row per text (L2-normalised for sentence-embedding models)."""
        self._check_open()
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise InvalidInput("embed() needs at least one text")
        return self._backend.embed(texts)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        self._check_open()
        return self._backend.tokenize(text, add_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._check_open()
        return self._backend.detokenize(tokens)

    def logits(self, tokens: Sequence[int], first: int = 0) -> np.ndarray:
        """Logits at positions `first`.. of `tokens`, shape [len(tokens) - first, vocab] (row 0 predicts the token
        after `tokens[first]`). The whole sequence is evaluated; `first` only spares computing and copying the
        earlier rows (scoring a question after a long passage needs the question's rows alone)."""
        self._check_open()
        if not 0 <= first < max(len(tokens), 1):
            raise InvalidInput(f"first must be 0 to {len(tokens) - 1} for {len(tokens)} tokens, got {first}")
        return self._backend.logits(tokens, first)

    def mean_logprob(self, prompt_tokens: Sequence[int], continuation: Sequence[int]) -> float:
        """Mean log-probability the model gives `continuation`'s tokens after `prompt_tokens`, in one pass from an
        empty context (only the continuation's rows are projected onto the vocabulary). The router's confidence in
        its own answer and the RAG reranker's query likelihood are both this."""
        prompt, continuation = [int(t) for t in prompt_tokens], [int(t) for t in continuation]
        if not prompt or not continuation:
            raise InvalidInput("mean_logprob needs at least one prompt token and one continuation token")
        rows = self.logits(prompt + continuation, len(prompt) - 1)[:-1].astype(np.float64)
        rows -= rows.max(axis=1, keepdims=True)
        return float(np.mean(rows[np.arange(len(continuation)), continuation] - np.log(np.exp(rows).sum(axis=1))))

    def clear_cache(self) -> None:
        """Forget what the context holds: the next prompt is evaluated from its first token (a cold start).
        Generation otherwise reuses the prompt positions it already holds (`ondevice.backends.cache.exact_reuse`);
        the output is the same either way."""
        self._check_open()
        clear = getattr(self._backend, "clear_cache", None)
        if clear:
            clear()

    def reference_decode(self, tokens: Sequence[int]) -> float:
        """Benchmarking: seconds for the runtime's bare decode loop over tokens[1:] (after an untimed tokens[0]),
        no sampling and no text, on this model's own context. `ondevice bench --reference` divides the public
        API's decode speed by this floor. GGUF only (UnsupportedOperation elsewhere)."""
        self._check_open()
        tokens = [int(t) for t in tokens]
        if len(tokens) < 2 or len(tokens) > self.n_ctx:
            raise InvalidInput(f"reference_decode needs 2 to {self.n_ctx} tokens, got {len(tokens)}")
        return self._backend.reference_decode(tokens)

    # --- lifetime ---------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInput("this model is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ondevice.Model {self.name} backend={self.backend_name} device={self.device} n_ctx={self.n_ctx}>"


def _materialize(ref: ModelRef) -> ModelRef:
    from ondevice.plugins import materializer

    func = materializer(ref.format)
    if func is None:
        return ref
    path = func(ref.path)
    return ModelRef(ref.name, path, resolve(path).format, ref.alias)


def load(model: str | os.PathLike = "smollm2-135m", n_ctx: int | None = None, threads: int | None = None,
         device: str = "auto", backend: str | None = None, **options) -> Model:
    """Load a model by alias or path and return a ready Model.

    threads defaults to the physical core count; n_ctx to the trained context capped to fit in available RAM;
    device="auto" uses an NPU/GPU when the runtime offers one, else the CPU (see `Model.device`).
    Extra keyword options are fields of RuntimeOptions (logits_all, embedding, use_mmap, kv_type, flash_attn).
    """
    from ondevice.machine.autoconfig import default_threads

    # A remote model's connection settings (api_key, timeout, max_retries) travel in RuntimeOptions.extra.
    connection = {key: options.pop(key) for key in ("api_key", "timeout", "max_retries") if key in options}
    ref = _materialize(resolve(model))
    info = read_info(ref)
    opts = RuntimeOptions(n_ctx=n_ctx, threads=threads or default_threads(), device=device, backend=backend,
                          **options)
    opts.extra.update(connection)
    name = backend or backend_for_format(ref.format)
    cls = backend_class(name)
    opts.check_backend(name, cls.options)  # an option this backend does not take: one clear line, before loading
    return Model(cls(ref, info, opts))


def load_or_use(model: "str | os.PathLike | Model", **load_options) -> tuple[Model, bool]:
    """`model` ready to use, and whether the caller owns it (and so must close it).

    A name or path is loaded with `load(model, **load_options)` (owned); a model already loaded is used as it is
    (not owned: the caller that passed it keeps it open for its next use). Tools that take "a model name or a
    loaded model" (RAG answers, quality evaluation) go through this one function.
    """
    if isinstance(model, (str, os.PathLike)):
        return load(model, **load_options), True
    if isinstance(model, Model) or hasattr(model, "chat"):
        return model, False
    raise InvalidInput(f"model must be a name, a path or a loaded ondevice.Model, got {type(model).__name__}")
