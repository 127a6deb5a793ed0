"""OpenAI's Responses API: POST /v1/responses, plain and streamed (docs/server.md, "Protocols").

A thin adapter: `input` (text, or items: messages, `function_call` and `function_call_output`), `instructions`,
`text.format` (json_schema / json_object), function `tools` / `tool_choice`, `max_output_tokens` and the sampling
fields become the one `Request` (`protocol.build`), run on the one engine (`routes_generate.start_run`), and come
back as a `response` object (output items: a message with `output_text`, `function_call`s; usage) or as the
Responses event stream (response.created, output_item.added, content_part.added, output_text.delta, ...,
response.completed). Responses are stored unless `store: false` (as OpenAI's default is) in the server's bounded
`ResponseStore`: `previous_response_id` continues from a stored one, GET / DELETE /v1/responses/{id} read and drop
it. Errors keep OpenAI's shape.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, Union

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ondevice.server import schemas, tool_calls
from ondevice.server.errors import APIError
from ondevice.server.protocol import ProtocolStream, build, finished, openai_call, sse_event
from ondevice.server.routes_generate import collect, start_run, state_of

log = logging.getLogger("ondevice.server")
router = APIRouter()
# Fields of the Responses API that would change the answer and that this server cannot honour (400 when set).
REFUSED = {"conversation": "conversation is not supported: this server keeps no conversations; send the whole "
                           "conversation as input items.",
           "background": "background responses are not supported.",
           "top_logprobs": "top_logprobs is not supported by this server."}


class ResponsesBody(BaseModel):
    model_config = {"extra": "allow"}  # metadata, user, truncation, include, ... accepted and ignored

    model: str
    input: Union[str, list[dict[str, Any]]]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = Field(None, le=2)
    top_p: float | None = None
    top_k: Any = None             # llama.cpp extension, as on chat completions
    min_p: Any = None
    seed: Any = None
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None


def _refuse(body: ResponsesBody, state) -> None:
    extra = body.model_extra or {}
    for field, message in REFUSED.items():
        if extra.get(field) not in (None, False):
            raise APIError(400, message, "unsupported_parameter", field)
    if body.store and not state.responses.capacity:
        raise APIError(400, "store: true is not supported: this server keeps no responses (started with "
                            "max_stored_responses 0); send store: false.", "unsupported_parameter", "store")
    if body.reasoning and body.reasoning.get("effort") not in (None, "none", "minimal"):
        raise APIError(400, "reasoning is not supported by this model.", "unsupported_parameter", "reasoning")


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where}: content must be a string or a list of parts", "invalid_value", "input")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text", "text"):
            raise APIError(400, f"{where}: content part type {kind!r} is not supported (text only)",
                           "unsupported_parameter", "input")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def _previous(body: ResponsesBody, state) -> list[dict]:
    """The conversation of the stored response named by `previous_response_id` ([] without one)."""
    if body.previous_response_id is None:
        return []
    stored = state.responses.get(body.previous_response_id)
    if stored is None:
        raise APIError(400, f"Previous response with id {body.previous_response_id!r} not found (never stored, "
                            f"deleted, or evicted: this server keeps the {state.responses.capacity} most recently "
                            f"used).", "previous_response_not_found", "previous_response_id")
    return [dict(m) for m in stored.messages]


def _input_messages(body: ResponsesBody) -> list[dict]:
    """input -> OpenAI chat messages (function_call items -> assistant tool_calls; outputs -> role "tool")."""
    out: list[dict] = []
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    for i, item in enumerate(body.input):
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise APIError(400, f"input[{i}].role must be user, system, developer or assistant",
                               "invalid_value", f"input[{i}].role")
            out.append({"role": "system" if role == "developer" else role,
                        "content": _content(item.get("content"), f"input[{i}]")})
        elif kind == "function_call":
            call = openai_call(str(item.get("call_id")), item.get("name"), item.get("arguments") or "{}")
            if out and out[-1]["role"] == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)  # several calls of one turn
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            out.append({"role": "tool", "tool_call_id": str(item.get("call_id")),
                        "content": output if isinstance(output, str) else _content(output, f"input[{i}]")})
        elif kind == "reasoning":
            continue  # a reasoning item sent back by a client: nothing for this model to read
        else:
            raise APIError(400, f"input[{i}]: item type {kind!r} is not supported", "unsupported_parameter",
                           f"input[{i}].type")
    return out


def _tools(body: ResponsesBody) -> tuple[list | None, Any]:
    if not body.tools:
        return None, None
    tools = []
    for i, tool in enumerate(body.tools):
        if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise APIError(400, f"tools[{i}]: only function tools are supported (got {tool.get('type')!r})",
                           "unsupported_parameter", f"tools[{i}].type")
        tools.append({"type": "function", "function": {k: tool[k] for k in ("name", "description", "parameters")
                                                       if k in tool}})
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    return tools, choice


def _schema(body: ResponsesBody) -> Any:
    fmt = (body.text or {}).get("format")
    if fmt is None:
        return None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        fmt = {"type": "json_schema", "json_schema": {"name": fmt.get("name"), "schema": fmt.get("schema")}}
    try:
        return tool_calls.response_schema(fmt)
    except APIError as exc:
        raise APIError(400, exc.message.replace("response_format", "text.format"), exc.code, "text.format") from None


def _answer_message(output: list[dict]) -> dict:
    """A response's output items as the assistant message a continuation's history holds (call ids kept, so a
    later function_call_output finds its call)."""
    text = "".join(part.get("text", "") for item in output if item["type"] == "message" for part in item["content"])
    calls = [openai_call(item["call_id"], item["name"], item["arguments"]) for item in output
             if item["type"] == "function_call"]
    return {"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}


def _usage(run) -> dict:
    t = run.timings
    prompt, completion = (t.prompt_tokens, t.completion_tokens) if t else (0, run.tokens)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": t.reused_tokens if t else 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text is not None
            else []}


def _call_item(call: dict, status: str = "completed") -> dict:
    call_id = call.get("id") or schemas.new_id("call")
    return {"id": "fc_" + call_id, "type": "function_call", "call_id": call_id, "name": call["function"]["name"],
            "arguments": call["function"].get("arguments") or "{}", "status": status}


@router.post("/v1/responses", response_model=None)
async def responses(body: ResponsesBody, request: Request):
    state = state_of(request)
    state.check_model(body.model)
    _refuse(body, state)
    tools, tool_choice = _tools(body)
    conversation = _previous(body, state) + _input_messages(body)  # without the instructions (not carried over)
    instructions = [{"role": "system", "content": body.instructions}] if body.instructions else []
    req = build(state, messages=instructions + conversation, schema=_schema(body), tools=tools,
                tool_choice=tool_choice, parallel_tool_calls=bool(body.parallel_tool_calls), fallback_param="input",
                max_tokens=body.max_output_tokens, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
                min_p=body.min_p, seed=body.seed)
    plan = req.plan
    run = await start_run(state, req)
    rid, created = schemas.new_id("resp"), schemas.now()
    store = body.store is not False and state.responses.capacity > 0

    def finish(output: list[dict]) -> dict:
        """The final response object, stored (with the conversation it ends) unless store is false."""
        status = "incomplete" if run.finish_reason == "length" else "completed"
        final = response(status, output, _usage(run))
        if store:
            state.responses.put(rid, final, conversation + [_answer_message(output)])
        return final

    def response(status: str, output: list[dict], usage: dict | None) -> dict:
        incomplete = status == "incomplete"
        return {"id": rid, "object": "response", "created_at": created, "status": status, "model": state.model_id,
                "output": output, "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
                "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
                "parallel_tool_calls": bool(body.parallel_tool_calls),
                "previous_response_id": body.previous_response_id,
                "temperature": body.temperature, "top_p": body.top_p, "tool_choice": body.tool_choice or "auto",
                "tools": body.tools or [], "text": body.text or {"format": {"type": "text"}}, "store": store,
                "metadata": (body.model_extra or {}).get("metadata") or {}, "usage": usage}

    if body.stream:
        events = tool_calls.ToolCallRun(run, plan.tool_format) if req.with_tools else run

        async def stream() -> AsyncIterator[str]:
            seq = 0

            def emit(kind: str, **fields) -> str:
                nonlocal seq
                seq += 1
                return sse_event(kind, {"type": kind, "sequence_number": seq - 1, **fields})

            output, index, text, item_id = [], 0, None, schemas.new_id("msg")
            try:
                yield emit("response.created", response=response("in_progress", [], None))
                yield emit("response.in_progress", response=response("in_progress", [], None))
                async for event in events.events():
                    if not event.text:
                        continue
                    if text is None:
                        text = ""
                        yield emit("response.output_item.added", output_index=index,
                                   item=_message_item(item_id, None, "in_progress"))
                        yield emit("response.content_part.added", item_id=item_id, output_index=index,
                                   content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                          "logprobs": []})
                    text += event.text
                    yield emit("response.output_text.delta", item_id=item_id, output_index=index, content_index=0,
                               delta=event.text, logprobs=[])
                if text is not None:
                    done = _message_item(item_id, text)
                    yield emit("response.output_text.done", item_id=item_id, output_index=index, content_index=0,
                               text=text, logprobs=[])
                    yield emit("response.content_part.done", item_id=item_id, output_index=index, content_index=0,
                               part=done["content"][0])
                    yield emit("response.output_item.done", output_index=index, item=done)
                    output.append(done)
                    index += 1
                for call in getattr(events, "tool_calls", None) or []:
                    item = _call_item(call)
                    yield emit("response.output_item.added", output_index=index,
                               item={**item, "arguments": "", "status": "in_progress"})
                    yield emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                               delta=item["arguments"])
                    yield emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                               name=item["name"], arguments=item["arguments"])
                    yield emit("response.output_item.done", output_index=index, item=item)
                    output.append(item)
                    index += 1
                final = finish(output)
                yield emit(f"response.{final['status']}", response=final)
            except Exception as exc:  # headers are sent: report in-band, as OpenAI does
                log.exception("generation failed mid-stream")
                yield emit("error", code=getattr(exc, "code", "server_error"), message=str(exc) or
                           type(exc).__name__, param=None)
            finally:
                run.close()

        return ProtocolStream(stream(), run, "text/event-stream")

    text = await collect(run, request)
    if text is None:
        return None
    output = finished(plan, text, run.finish_reason).items(
        lambda content: _message_item(schemas.new_id("msg"), content), _call_item)
    return finish(output)


def _stored(request: Request, response_id: str):
    stored = state_of(request).responses.get(response_id)
    if stored is None:
        raise APIError(404, f"Response with id {response_id!r} not found (never stored, deleted, or evicted).",
                       "not_found", "response_id")
    return stored


@router.get("/v1/responses/{response_id}")
async def retrieve_response(response_id: str, request: Request) -> dict:
    return _stored(request, response_id).response


@router.get("/v1/responses/{response_id}/input_items")
async def response_input_items(response_id: str, request: Request) -> dict:
    """The conversation a stored response answered, as input items (messages and function calls), oldest first."""
    items = _items(list(_stored(request, response_id).messages[:-1]))
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": False}


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> dict:
    _stored(request, response_id)
    state_of(request).responses.delete(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


def _items(messages: list[dict]) -> list[dict]:
    """Chat messages back as Responses input items."""
    items = []
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            items.append({"id": f"fco_{i}", "type": "function_call_output", "call_id": m.get("tool_call_id"),
                          "output": m["content"], "status": "completed"})
            continue
        if m.get("content") or not m.get("tool_calls"):
            kind = "output_text" if m["role"] == "assistant" else "input_text"
            items.append({"id": f"msg_{i}", "type": "message", "role": m["role"], "status": "completed",
                          "content": [{"type": kind, "text": m.get("content") or ""}]})
        for call in m.get("tool_calls") or []:
            items.append({"id": "fc_" + call["id"], "type": "function_call", "call_id": call["id"],
                          "name": call["function"]["name"], "arguments": call["function"]["arguments"],
                          "status": "completed"})
    return items
