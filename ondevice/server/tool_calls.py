"""Structured output and tool calls on /v1/chat/completions.

`response_format`, `tools`, `tool_choice` and `parallel_tool_calls` become the core's `ChatPlan` (the grammar every
token follows, the conversation in the model's tool format: its own, `ondevice.decoding.tool_formats`, else the generic
one); the answer's text becomes message `content` or `tool_calls`. Streamed answers hold text back only while it
could still be the start of a tool call, then send each call as a `delta.tool_calls` entry with finish_reason
"tool_calls".
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from ondevice.backends import StreamEvent
from ondevice.errors import InvalidInput
from ondevice.server.errors import APIError
from ondevice.decoding.structured import Grammar, schema_grammar
from ondevice.decoding.tools import OPEN, ChatPlan, parse_tool_calls


def response_schema(response_format: Any) -> Grammar | None:
    """OpenAI `response_format` -> the compiled schema (None for plain text); a bad one is a 400 on that field."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    try:
        if kind == "text":
            return None
        if kind == "json_object":
            return schema_grammar("json")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise InvalidInput("response_format json_schema needs {'name': ..., 'schema': {...}}")
            return schema_grammar(spec["schema"], spec.get("name"))
    except InvalidInput as exc:
        raise APIError(400, f"response_format: {exc}", "invalid_value", "response_format") from None
    raise APIError(400, "response_format type must be 'text', 'json_object' or 'json_schema'", "invalid_value",
                   "response_format")


def legacy_call(calls: list[dict]) -> dict:
    """The deprecated `functions` API's `function_call` ({name, arguments}) from the first OpenAI tool call."""
    return {key: calls[0]["function"][key] for key in ("name", "arguments")}


def tool_call_list(calls) -> list[dict]:
    """OpenAI's `tool_calls` entries (with `index`, as stream deltas carry it and plain messages ignore it)."""
    return [{"index": i, **call.to_openai()} for i, call in enumerate(calls)]


def answer(plan: ChatPlan, text: str, finish_reason: str) -> tuple[str | None, list[dict] | None, str]:
    """(content, tool_calls, finish_reason) of a finished, non-streamed answer."""
    if plan.with_tools:
        content, calls = parse_tool_calls(text, plan.tool_format)
        if calls:
            return content, [call.to_openai() for call in calls], "tool_calls"
    return text, None, finish_reason


class ToolCallRun:
    """A `generation.Run` for a request with tools: streamed text is held back while it may be a tool call; a
    call ends the stream with finish_reason "tool_calls" and `tool_calls` set (everything else is the run's)."""

    def __init__(self, run, tool_format=None):
        self.run = run
        self.tool_format = tool_format  # a native ondevice.decoding.tool_formats.ToolFormat; None: the generic format
        self.tool_calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.run, name)

    def _may_be_call(self, held: str) -> bool:
        if self.tool_format is not None:
            return self.tool_format.may_be_call(held)
        return held.startswith(OPEN) or OPEN.startswith(held)

    async def events(self) -> AsyncIterator[StreamEvent]:
        held, decided = "", False
        async for event in self.run.events():
            if event.finish_reason is not None:
                content, calls = parse_tool_calls(held, self.tool_format) if held else (held, [])
                if calls:
                    self.tool_calls = tool_call_list(calls)
                    yield StreamEvent("", None, finish_reason="tool_calls", timings=event.timings)
                    return
                if content:
                    yield StreamEvent(content)
                yield event
                return
            if decided:
                yield event
                continue
            held += event.text
            if self._may_be_call(held):
                continue  # a tool call, or still maybe one
            decided = True
            yield StreamEvent(held, event.token)
            held = ""
