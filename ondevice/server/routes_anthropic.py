"""Anthropic's Messages API: POST /v1/messages, plain and streamed (docs/server.md, "Protocols").

A thin adapter: the Messages body (system, content blocks, tool_use / tool_result, tools, tool_choice,
max_tokens, stop_sequences, temperature / top_p / top_k) becomes the one `Request` (`protocol.build`), runs on the
one engine (`routes_generate.start_run`), and the answer comes back as content blocks (text, tool_use) with
Anthropic's stop reasons and usage, or as its event stream (message_start, content_block_start / _delta / _stop,
message_delta, message_stop). Errors answer `{"type": "error", "error": {"type": ..., "message": ...}}`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncIterator, Union

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ondevice.server import errors, schemas, tool_calls
from ondevice.server.protocol import ProtocolStream, bad, build, call_arguments, finished, openai_call, sse_event
from ondevice.server.routes_generate import collect, start_run, state_of

log = logging.getLogger("ondevice.server")
router = APIRouter()
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _error(status: int, message: str, code: str | None, param: str | None) -> dict:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


errors.ERROR_SHAPES["/v1/messages"] = _error


class MessagesBody(BaseModel):
    model_config = {"extra": "allow"}  # metadata, service_tier, ... accepted and ignored

    model: str
    max_tokens: int = Field(ge=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: Union[str, list[dict[str, Any]], None] = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None  # {"format": {"type": "json_schema", "schema": {...}}}


def _schema(body: MessagesBody) -> Any:
    fmt = (body.output_config or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise bad("output_config.format must be {'type': 'json_schema', 'schema': {...}}", "output_config.format")
    return fmt["schema"]


def _text(content: Any, where: str) -> str:
    """The text of a string or a list of text blocks (anything else is refused by name)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad(f"{where}: content must be a string or a list of content blocks", "messages")
    parts = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind != "text":
            raise bad(f"{where}: content block type {kind!r} is not supported here (text only)", "messages")
        parts.append(str(block.get("text", "")))
    return "".join(parts)


def _messages(body: MessagesBody) -> list[dict]:
    """Anthropic messages -> OpenAI-shaped ones (tool_use -> tool_calls, tool_result -> role "tool")."""
    out = [{"role": "system", "content": _text(body.system, "system")}] if body.system else []
    for i, message in enumerate(body.messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise bad(f"messages.{i}.role must be 'user' or 'assistant'", f"messages.{i}.role")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise bad(f"messages.{i}.content must be a string or a list of content blocks", f"messages.{i}.content")
        texts, calls = [], []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use" and role == "assistant":
                calls.append(openai_call(str(block.get("id")), block.get("name"), block.get("input")))
            elif kind == "tool_result" and role == "user":
                result = block.get("content", "")
                out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id")),
                            "content": _text(result, f"messages.{i} tool_result") if result else ""})
            else:
                raise bad(f"messages.{i}: content block type {kind!r} is not supported here", f"messages.{i}")
        if calls:
            out.append({"role": "assistant", "content": "".join(texts), "tool_calls": calls})
        elif texts or role == "assistant":
            out.append({"role": role, "content": "".join(texts)})
    return out


def _tools(body: MessagesBody) -> tuple[list | None, Any]:
    if not body.tools:
        return None, None
    tools = []
    for i, tool in enumerate(body.tools):
        if not isinstance(tool.get("name"), str) or "input_schema" not in tool:
            raise bad(f"tools.{i}: a custom tool needs a name and an input_schema (server tools are not "
                      f"supported)", f"tools.{i}")
        tools.append({"type": "function", "function": {"name": tool["name"], "description":
                      tool.get("description", ""), "parameters": tool["input_schema"]}})
    choice = body.tool_choice or {"type": "auto"}
    kind = choice.get("type")
    if kind == "tool":
        return tools, {"type": "function", "function": {"name": choice.get("name")}}
    if kind in ("auto", "any", "none"):
        return tools, {"auto": "auto", "any": "required", "none": "none"}[kind]
    raise bad("tool_choice type must be auto, any, tool or none", "tool_choice")


def _usage(run) -> dict:
    t = run.timings
    return {"input_tokens": t.prompt_tokens if t else 0, "output_tokens": t.completion_tokens if t else run.tokens}


def _tool_block(call: dict) -> dict:
    return {"type": "tool_use", "id": call.get("id") or schemas.new_id("toolu"), "name": call["function"]["name"],
            "input": call_arguments(call)}


@router.post("/v1/messages", response_model=None)
async def messages(body: MessagesBody, request: Request):
    state = state_of(request)
    state.check_model(body.model)
    if body.thinking and body.thinking.get("type") == "enabled":
        raise bad("extended thinking is not supported by this model", "thinking")
    tools, tool_choice = _tools(body)
    req = build(state, messages=_messages(body), schema=_schema(body), tools=tools, tool_choice=tool_choice, max_tokens=body.max_tokens,
                temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, stop=body.stop_sequences)
    plan = req.plan
    run = await start_run(state, req)
    mid = schemas.new_id("msg")

    if body.stream:
        events = tool_calls.ToolCallRun(run, plan.tool_format) if req.with_tools else run

        async def stream() -> AsyncIterator[str]:
            index, text_open = 0, False
            try:
                yield sse_event("message_start", {"type": "message_start", "message": {
                    "id": mid, "type": "message", "role": "assistant", "model": state.model_id, "content": [],
                    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})
                reason = "end_turn"
                async for event in events.events():
                    if event.text:
                        if not text_open:
                            yield sse_event("content_block_start", {"type": "content_block_start", "index": index,
                                                                    "content_block": {"type": "text", "text": ""}})
                            text_open = True
                        yield sse_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                                "delta": {"type": "text_delta", "text": event.text}})
                    if event.finish_reason is not None:
                        reason = STOP_REASONS.get(event.finish_reason, "end_turn")
                if text_open or not getattr(events, "tool_calls", None):
                    if not text_open:
                        yield sse_event("content_block_start", {"type": "content_block_start", "index": index,
                                                                "content_block": {"type": "text", "text": ""}})
                    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
                    index += 1
                for call in getattr(events, "tool_calls", None) or []:
                    block = _tool_block(call)
                    yield sse_event("content_block_start", {"type": "content_block_start", "index": index,
                                                            "content_block": {**block, "input": {}}})
                    yield sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                        "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
                    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
                    index += 1
                yield sse_event("message_delta", {"type": "message_delta", "delta": {
                    "stop_reason": reason, "stop_sequence": None}, "usage": _usage(run)})
                yield sse_event("message_stop", {"type": "message_stop"})
            except Exception as exc:  # headers are sent: report in-band, as Anthropic does
                log.exception("generation failed mid-stream")
                yield sse_event("error", _error(getattr(exc, "http_status", 500), str(exc) or type(exc).__name__,
                                                None, None))
            finally:
                run.close()

        return ProtocolStream(stream(), run, "text/event-stream")

    text = await collect(run, request)
    if text is None:
        return None
    answer = finished(plan, text, run.finish_reason)
    blocks = answer.items(lambda content: {"type": "text", "text": content}, _tool_block)
    return {"id": mid, "type": "message", "role": "assistant", "model": state.model_id, "content": blocks,
            "stop_reason": STOP_REASONS.get(answer.finish_reason, "end_turn"), "stop_sequence": None,
            "usage": _usage(run)}
