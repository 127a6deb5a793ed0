"""The one interface every runtime implements, and the plain data it returns.

Text-generation backends subclass `ondevice.backends.text.TextBackend`, which owns the decode loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from ondevice.errors import UnsupportedOperation
from ondevice.models.model_info import ModelInfo
from ondevice.backends.options import RuntimeOptions
from ondevice.decoding.sampling import SamplingParams
from ondevice.models.store import ModelRef


@dataclass
class Timings:
    """Wall-clock timings of one generation, in milliseconds."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float = 0.0       # request start -> first generated token available
    prompt_ms: float = 0.0     # prompt evaluation
    decode_ms: float = 0.0     # first token -> last token
    total_ms: float = 0.0
    reused_tokens: int = 0     # prompt tokens the context already held (prefix reuse): not evaluated again
    drafted_tokens: int = 0    # speculative decoding: tokens proposed by the drafter
    accepted_tokens: int = 0   # speculative decoding: drafted tokens the model accepted

    @property
    def decode_tokens_per_s(self) -> float:
        steps = self.completion_tokens - 1
        return steps * 1000.0 / self.decode_ms if steps > 0 and self.decode_ms > 0 else 0.0

    @property
    def prompt_tokens_per_s(self) -> float:
        return self.prompt_tokens * 1000.0 / self.prompt_ms if self.prompt_ms > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "ttft_ms": round(self.ttft_ms, 2), "prompt_ms": round(self.prompt_ms, 2),
            "decode_ms": round(self.decode_ms, 2), "total_ms": round(self.total_ms, 2),
            "prompt_tokens_per_s": round(self.prompt_tokens_per_s, 2),
            "decode_tokens_per_s": round(self.decode_tokens_per_s, 2),
            "reused_tokens": self.reused_tokens, "drafted_tokens": self.drafted_tokens,
            "accepted_tokens": self.accepted_tokens,
        }


@dataclass
class StreamEvent:
    """One step of a streamed generation: new text (possibly empty while a UTF-8 sequence is incomplete)."""

    text: str
    token: int | None = None
    finish_reason: str | None = None  # set on the last event: "stop" or "length"
    timings: Timings | None = None    # set on the last event


@dataclass
class Generation:
    """A finished generation."""

    text: str
    finish_reason: str
    tokens: list[int]
    timings: Timings
    parsed: Any = None            # with schema=: the JSON (or pydantic instance) the text holds
    tool_calls: list | None = None  # with tools=: the ondevice.decoding.tools.ToolCall list ([] when the model answered)

    def to_dict(self) -> dict:
        out = {"text": self.text, "finish_reason": self.finish_reason, "tokens": len(self.tokens),
               "timings": self.timings.to_dict()}
        if self.parsed is not None:
            out["parsed"] = self.parsed.model_dump() if hasattr(self.parsed, "model_dump") else self.parsed
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return out


class Backend(ABC):
    """A loaded model in one runtime. Subclasses register by name in `ondevice.backends`.

    Text generation backends subclass `TextBackend` (ondevice.backends.text), which implements `stream` once on
    top of a few primitives; a backend that generates elsewhere (a remote service) may override `stream` and
    `stream_chat` directly. Encoders implement `embed`. The rest raise UnsupportedOperation with a clear message.
    """

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    # The backend-specific RuntimeOptions it honours (ondevice.backends.options.BACKEND_OPTIONS); others must stay at their
    # defaults, checked by `RuntimeOptions.check_backend` when a model loads.
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ref: ModelRef, info: ModelInfo, options: RuntimeOptions):
        self.ref = ref
        self.info = info
        self.options = options
        self.device = "cpu"
        self.n_ctx = 0

    # --- text generation -------------------------------------------------------------------------------------
    def stream(self, prompt: str | Sequence[int], params: SamplingParams) -> Iterator[StreamEvent]:
        raise UnsupportedOperation(f"{self.ref.name}: the {self.name} backend does not generate text")

    def stream_chat(self, messages: list[dict], params: SamplingParams) -> Iterator[StreamEvent]:
        """Answer checked chat messages (role/content dicts). Default: render the chat template, then `stream`."""
        return self.stream(self.render_chat(messages), params)

    def render_chat(self, messages: list[dict]) -> str:
        """Format chat messages into a prompt with the model's own chat template."""
        raise UnsupportedOperation(f"{self.ref.name}: the {self.name} backend has no chat template")

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        raise UnsupportedOperation(f"{self.ref.name}: the {self.name} backend has no tokenizer")

    def detokenize(self, tokens: Sequence[int]) -> str:
        raise UnsupportedOperation(f"{self.ref.name}: the {self.name} backend has no tokenizer")

    def logits(self, tokens: Sequence[int], first: int = 0) -> np.ndarray:
        """Logits for positions `first`.. of `tokens` (shape [len(tokens) - first, vocab]), from an empty context;
        a backend that can skips computing the earlier positions' logits (the vocabulary projection)."""
        raise UnsupportedOperation(f"{self.ref.name}: the {self.name} backend does not expose logits")

    # --- embeddings -------------------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise UnsupportedOperation(f"{self.ref.name} does not produce embeddings (use an embedding model such as "
                                   f"minilm-l6)")

    @abstractmethod
    def close(self) -> None:
        """Free the runtime's memory. Safe to call twice."""
