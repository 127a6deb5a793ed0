"""OpenAI wire types, defined once. Requests are validated here; responses are built from these models.

Unknown request fields are ignored (clients send many optional ones), but every field that would change the answer
is either honoured or refused with a clear 400 (`ANSWER_CHANGING_REFUSED`, checked by the routes). The sampling
fields are passed by name to `ondevice.decoding.request.build_request`, which checks their values once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, Union

from pydantic import BaseModel, Field


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # A string or OpenAI's list of parts; the core (ondevice.model.check_messages) joins text parts and refuses
    # image or audio parts by name.
    content: Union[str, list[dict[str, Any]], None] = None
    tool_calls: list[dict[str, Any]] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = None                 # a tool result: the call it answers

    def to_core(self) -> dict:
        """The core's message dict ("developer" is OpenAI's newer name for "system")."""
        core = {"role": "system" if self.role == "developer" else self.role,
                "content": "" if self.content is None else self.content}
        if self.tool_calls:
            core["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            core["tool_call_id"] = self.tool_call_id
        return core


class StreamOptions(BaseModel):
    include_usage: bool = False


# Fields of OpenAI's API (or a common extension) that would change the answer and that this server cannot honour:
# refused with a 400 naming the field when set to anything but their "off" value.
ANSWER_CHANGING_REFUSED = {
    "logprobs": (None, False), "top_logprobs": (None, 0), "best_of": (None, 1), "audio": (None,),
    "web_search_options": (None,), "reasoning_effort": (None,),
}


class SamplingFields(BaseModel):
    """Fields shared by chat and text completions."""

    model_config = {"extra": "allow"}  # unknown fields are kept, so the routes can refuse answer-changing ones

    model: str
    # Value ranges are checked once, by ondevice.SamplingParams (through ondevice.decoding.request.build_request); the only
    # bound kept here is OpenAI's own temperature ceiling, which is the API's rule rather than the sampler's.
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = Field(1.0, le=2)
    top_p: Any = None
    top_k: Any = None              # llama.cpp / vLLM extension
    min_p: Any = None              # llama.cpp / vLLM extension
    seed: Any = None
    stop: Union[str, list[str], None] = Field(None)
    logit_bias: Any = None
    frequency_penalty: Any = None
    presence_penalty: Any = None
    repeat_penalty: Any = None     # llama.cpp extension
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=128)
    user: str | None = None
    speculative: str | None = None  # ondevice extension: lookup decoding "auto" | "off" | "lookup" (same output)

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]

    def sampling_values(self) -> dict[str, Any]:
        """The sampling fields by their `ondevice.SamplingParams` names (None: the default)."""
        return {"max_tokens": self.max_tokens if self.max_completion_tokens is None else self.max_completion_tokens,
                "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k, "min_p": self.min_p,
                "seed": self.seed, "stop": self.stops(), "logit_bias": self.logit_bias,
                "frequency_penalty": self.frequency_penalty, "presence_penalty": self.presence_penalty,
                "repeat_penalty": self.repeat_penalty, "speculative": self.speculative}

    def refused_field(self) -> str | None:
        """The first answer-changing field this server cannot honour that the request sets, or None."""
        extra = self.model_extra or {}
        for name, off in ANSWER_CHANGING_REFUSED.items():
            if name in extra and extra[name] not in off:
                return name
        return None

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class RagOptions(BaseModel):
    """Opt-in grounding of a chat request in the served RAG index (`"rag": true` or `"rag": {"k": 4}`)."""

    k: int = Field(4, ge=1, le=32)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None  # off unless asked for (small models mix calls up)
    response_format: Any = None              # {"type": "json_object"} or {"type": "json_schema", ...}
    functions: Any = None                    # OpenAI's deprecated tools (answered as message.function_call)
    function_call: Any = None
    rag: Union[bool, RagOptions, None] = None


class CompletionRequest(SamplingFields):
    prompt: Union[str, list[str]]
    echo: bool = False
    suffix: str | None = None


class EmbeddingRequest(BaseModel):
    model: str
    input: Union[str, list[str], list[int], list[list[int]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class RagQueryRequest(BaseModel):
    model_config = {"extra": "forbid"}  # a misspelt option is a 400 naming it, not an answer made without it

    query: str = Field(min_length=1)
    k: int = Field(4, ge=1, le=32)
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    # extractive: the retrieved sentence the model picks, quoted verbatim with its lines; generative: written by
    # the model; auto: extractive for small models (ondevice.rag.answer.resolve_mode)
    mode: Literal["auto", "extractive", "generative"] = "auto"
    lead_in: bool = False
    # re-order the top 10 by the served model's query likelihood before answering (`ondevice rag ask --rerank`)
    rerank: bool = False


# --- responses -------------------------------------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None  # the deprecated `functions` API's one call


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class Citation(BaseModel):
    source: str
    text: str
    score: float | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    citations: list[Citation] | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class TextChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: Union[list[float], str]


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ondevice"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class RagQuote(BaseModel):
    """A sentence quoted verbatim from a file (extractive answers); `source` is its citation "[n] path:lines"."""

    source: str
    text: str
    path: str
    start_line: int | None = None
    end_line: int | None = None
    page: int | None = None


class RagAnswer(BaseModel):
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage | None = None
    mode: Literal["extractive", "generative"] = "generative"
    found: bool = True
    quotes: list[RagQuote] = []
    lead_in: str = ""
