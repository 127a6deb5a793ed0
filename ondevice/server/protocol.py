"""What the protocol adapters (routes_ollama, routes_anthropic, routes_responses) share: building the one
`Request` from a protocol's values, and the streaming response that gives the model back however it ends.

Each adapter translates its protocol's body into `ondevice.decoding.request.build_request(...)` through `build` (the one
validation: bad values become a 400 in the protocol's own error shape, see `errors.ERROR_SHAPES`), starts it with
`routes_generate.start_run` (the one engine) and translates the run's events back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable


from ondevice.errors import InvalidInput
from ondevice.decoding.request import Request, build_request
from ondevice.server import tool_calls
from ondevice.server.errors import APIError
from ondevice.server.routes_generate import LeasedStream
from ondevice.server.state import ServerState


def build(state: ServerState, *, fallback_param: str = "messages", **values: Any) -> Request:
    """`build_request(...)` with the served model's backend and default max_tokens; InvalidInput is a 400 naming
    the field. `values` holds messages or prompt, schema, tools, tool_choice and sampling values by name (None:
    the default)."""
    try:
        return build_request(backend=state.model.backend, default_max_tokens=state.settings.default_max_tokens,
                             **values)
    except InvalidInput as exc:
        raise APIError(400, str(exc), "invalid_value", getattr(exc, "param", None) or fallback_param) from None


def bad(message: str, param: str | None = None, status: int = 400) -> APIError:
    return APIError(status, message, "invalid_value" if status == 400 else None, param)


def call_arguments(call: dict) -> dict:
    """The arguments of an OpenAI-shaped tool call (a JSON string there) as a dict."""
    arguments = call["function"].get("arguments") or "{}"
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        parsed = {}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def openai_call(call_id: str, name: Any, arguments: Any) -> dict:
    """An assistant tool call in OpenAI's shape (what `build_request` reads from the history)."""
    if not isinstance(name, str) or not name:
        raise bad("each tool call needs a function name", "messages")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def finish_reason(run_finish: str | None) -> str:
    return run_finish or "stop"


class ProtocolStream(LeasedStream):
    """A streamed answer (NDJSON or SSE) that gives the model back however it ends, even if its body never
    started: `routes_generate.LeasedStream` with the protocol's media type."""

    def __init__(self, content: AsyncIterator[str], run, media_type: str):
        super().__init__(content, run, media_type)


def sse_event(event: str, data: dict) -> str:
    """One named server-sent event (Anthropic's and the Responses API's streams name each event)."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@dataclass
class Answer:
    """A finished, non-streamed answer: its text, the tool calls found in it (OpenAI-shaped) and why it ended
    ("tool_calls" when it called)."""

    content: str
    calls: list[dict]
    finish_reason: str

    def items(self, text_item: Callable[[str], Any], call_item: Callable[[dict], Any]) -> list:
        """The answer as a protocol's list of parts (Anthropic's content blocks, the Responses API's output items):
        a text part when there is text or nothing else, then one part per tool call."""
        parts = [text_item(self.content)] if self.content or not self.calls else []
        return parts + [call_item(call) for call in self.calls]


def finished(plan, text: str, finish_reason: str | None) -> Answer:
    """What every adapter's non-streamed reply is built from: the collected text split into content and tool calls
    by the request's plan (`tool_calls.answer`; no plan, a bare prompt: text only)."""
    if plan is None:
        return Answer(text, [], finish_reason or "stop")
    content, calls, finish = tool_calls.answer(plan, text, finish_reason)
    return Answer(content or "", calls or [], finish or "stop")
