"""POST /v1/chat/completions and POST /v1/completions, plain and streamed (SSE ending with `data: [DONE]`)."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import AsyncIterator, Callable

from fastapi import APIRouter
from fastapi import Request as HTTPRequest  # ondevice.decoding.request.Request is the core's request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ondevice.errors import InvalidInput
from ondevice.decoding.request import Request, build_request
from ondevice.server import batching, generation, schemas, tool_calls
from ondevice.server.errors import APIError, error_body
from ondevice.server.state import ServerState

log = logging.getLogger("ondevice.server")
router = APIRouter()
MAX_STOPS = 4                # as OpenAI
DISCONNECT_CHECK_EVERY = 8   # tokens between disconnect checks of a non-streamed request


def _refuse_unsupported(body: schemas.SamplingFields) -> None:
    """A 400 for fields this server cannot honour that would change the answer (never silently ignored)."""
    if body.n != 1:
        raise APIError(400, "n > 1 is not supported: this server generates one choice per request.",
                       "unsupported_parameter", "n")
    refused = body.refused_field()
    if refused is not None:
        raise APIError(400, f"{refused} is not supported by this server.", "unsupported_parameter", refused)
    if len(body.stops()) > MAX_STOPS:
        raise APIError(400, f"At most {MAX_STOPS} stop sequences are allowed.", "invalid_value", "stop")


def _as_api_error(exc: InvalidInput, body: schemas.SamplingFields, fallback: str) -> APIError:
    param = getattr(exc, "param", None) or fallback
    if param == "max_tokens" and getattr(body, "max_completion_tokens", None) is not None:
        param = "max_completion_tokens"
    if param == fallback and "tool_choice" in str(exc):
        param = "tool_choice"
    return APIError(400, str(exc), "invalid_value", param)


def chat_request(body: schemas.ChatCompletionRequest, state: ServerState) -> Request:
    """An OpenAI chat body -> the runtime's one `Request` (ondevice.decoding.request.build_request checks it); bad input is
    a 400 naming the field. The protocol adapters build theirs through this function too."""
    _refuse_unsupported(body)
    schema = tool_calls.response_schema(body.response_format)
    try:
        return build_request(messages=[m.to_core() for m in body.messages], schema=schema, tools=body.tools,
                             tool_choice=body.tool_choice, parallel_tool_calls=bool(body.parallel_tool_calls),
                             functions=body.functions, function_call=body.function_call,
                             default_max_tokens=state.settings.default_max_tokens, backend=state.model.backend,
                             **body.sampling_values())
    except InvalidInput as exc:
        raise _as_api_error(exc, body, "tools" if (body.tools or body.functions) else "messages") from None


def completion_request(body: schemas.CompletionRequest, state: ServerState) -> Request:
    """An OpenAI text-completion body -> the runtime's one `Request`."""
    _refuse_unsupported(body)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(400, "Exactly one prompt per request is supported.", "unsupported_parameter", "prompt")
    if body.suffix:
        raise APIError(400, "suffix (fill-in-the-middle) is not supported.", "unsupported_parameter", "suffix")
    try:
        return build_request(prompt=prompts[0], default_max_tokens=state.settings.default_max_tokens,
                             **body.sampling_values())
    except InvalidInput as exc:
        raise _as_api_error(exc, body, "prompt") from None


async def start_run(state: ServerState, request: Request):
    """Start generating `request` on the served model: in the batch when it can join one, else on the
    single-stream path. Returns a run (`generation.Run` or `batching.BatchRun`: `events()`, `close()`,
    `finish_reason`, `timings`); prompt errors raise here, before any response is sent."""
    return await batching.maybe_start(state, request) \
        or await generation.start(state.llm, lambda: state.answerer.events(request))


def usage(run: generation.Run) -> schemas.Usage:
    t = run.timings
    prompt, completion = (t.prompt_tokens, t.completion_tokens) if t else (0, run.tokens)
    return schemas.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def with_route(reply: dict, run: generation.Run) -> dict:
    """With --remote, say who answered and why (an extra field; OpenAI clients ignore it)."""
    routed_to = getattr(run.final, "routed_to", None)
    if routed_to is not None:
        reply["ondevice_route"] = {"routed_to": routed_to, "reason": run.final.route_reason}
    return reply


def sse(payload: BaseModel | dict) -> str:
    data = payload.model_dump_json(exclude_none=False) if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"data: {data}\n\n"


class LeasedStream(StreamingResponse):
    """An SSE response that gives the model back however it ends, even if its body never started (a client that
    disconnects before the first byte cancels Starlette's streaming task before our generator runs)."""

    def __init__(self, content: AsyncIterator[str], run: generation.Run, media_type: str = "text/event-stream"):
        super().__init__(content, media_type=media_type,
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.run = run

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.run.close()


async def stream_body(run: generation.Run, chunk: Callable[[str | None, str | None], BaseModel],
                      final_usage: Callable[[schemas.Usage], BaseModel] | None) -> AsyncIterator[str]:
    """SSE lines for one run: a chunk per text piece, the finish chunk, optionally usage, then [DONE].

    A disconnect cancels this generator at its `await`; `run.close()` then stops decoding within one token.
    """
    try:
        async for event in run.events():
            if event.text:
                yield sse(chunk(event.text, None))
            if event.finish_reason is not None:
                yield sse(chunk(None, event.finish_reason))
        if final_usage is not None:
            yield sse(final_usage(usage(run)))
        yield "data: [DONE]\n\n"
    except Exception as exc:  # the headers are sent: report in-band, as OpenAI does, and end the stream
        log.exception("generation failed mid-stream")
        status, code = (getattr(exc, "http_status", 500), getattr(exc, "code", "internal_error"))
        yield sse(error_body(status, str(exc) or type(exc).__name__, code))
    finally:
        run.close()


async def collect(run: generation.Run, request: HTTPRequest) -> str | None:
    """The whole text of a non-streamed run; None if the client went away (checked every few tokens)."""
    pieces = []
    try:
        async for event in run.events():
            pieces.append(event.text)
            if run.tokens % DISCONNECT_CHECK_EVERY == 0 and await request.is_disconnected():
                return None
        return "".join(pieces)
    finally:
        run.close()


def state_of(request: HTTPRequest) -> ServerState:
    return request.app.state.server


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: schemas.ChatCompletionRequest, request: HTTPRequest):
    state = state_of(request)
    state.check_model(body.model)
    req = chat_request(body, state)
    citations = None
    if body.rag:
        from ondevice.server.routes_rag import ground  # only with --rag-index

        messages, citations = await ground(state, req.messages, body.rag)
        req = dataclasses.replace(req, messages=messages, rendered=None)  # the tools travel in the messages
    plan = req.plan
    run = await start_run(state, req)
    rid, created, model_id = schemas.new_id("chatcmpl"), schemas.now(), state.model_id

    if body.stream:
        events = tool_calls.ToolCallRun(run, plan.tool_format) if req.with_tools else run

        def chunk(text: str | None, finish: str | None) -> schemas.ChatCompletionChunk:
            delta = schemas.Delta(content=text) if text is not None else schemas.Delta()
            if finish == "tool_calls" and req.legacy_functions:
                delta, finish = schemas.Delta(function_call=tool_calls.legacy_call(events.tool_calls)), \
                    "function_call"
            elif finish == "tool_calls":
                delta = schemas.Delta(tool_calls=events.tool_calls)
            return schemas.ChatCompletionChunk(id=rid, created=created, model=model_id,
                                               choices=[schemas.ChunkChoice(delta=delta, finish_reason=finish)])

        def final(u: schemas.Usage) -> schemas.ChatCompletionChunk:
            return schemas.ChatCompletionChunk(id=rid, created=created, model=model_id, choices=[], usage=u)

        async def body_with_role() -> AsyncIterator[str]:
            first = schemas.ChatCompletionChunk(id=rid, created=created, model=model_id, choices=[
                schemas.ChunkChoice(delta=schemas.Delta(role="assistant", content=""))])
            yield sse(first)
            async for line in stream_body(events, chunk, final if body.include_usage() else None):
                yield line

        return LeasedStream(body_with_role(), run)

    text = await collect(run, request)
    if text is None:
        return None  # nobody is listening
    content, calls, finish = tool_calls.answer(plan, text, run.finish_reason)
    if calls and req.legacy_functions:
        message = schemas.AssistantMessage(content=content, function_call=tool_calls.legacy_call(calls))
        finish = "function_call"
    else:
        message = schemas.AssistantMessage(content=content, tool_calls=calls)
    reply = schemas.ChatCompletion(
        id=rid, created=created, model=model_id, usage=usage(run), citations=citations,
        choices=[schemas.ChatChoice(message=message, finish_reason=finish)]).model_dump(exclude_none=True)
    reply["choices"][0]["message"].setdefault("content", None)  # OpenAI sends content: null beside tool_calls
    return with_route(reply, run)


@router.post("/v1/completions", response_model=None)
async def completions(body: schemas.CompletionRequest, request: HTTPRequest):
    state = state_of(request)
    state.check_model(body.model)
    req = completion_request(body, state)
    prompt = req.prompt
    run = await start_run(state, req)
    rid, created, model_id = schemas.new_id("cmpl"), schemas.now(), state.model_id
    prefix = prompt if body.echo else ""

    if body.stream:
        def chunk(text: str | None, finish: str | None) -> schemas.Completion:
            return schemas.Completion(id=rid, created=created, model=model_id,
                                      choices=[schemas.TextChoice(text=text or "", finish_reason=finish)])

        def final(u: schemas.Usage) -> schemas.Completion:
            return schemas.Completion(id=rid, created=created, model=model_id, choices=[], usage=u)

        async def body_with_echo() -> AsyncIterator[str]:
            if prefix:
                yield sse(chunk(prefix, None))
            async for line in stream_body(run, chunk, final if body.include_usage() else None):
                yield line

        return LeasedStream(body_with_echo(), run)

    text = await collect(run, request)
    if text is None:
        return None
    return with_route(schemas.Completion(
        id=rid, created=created, model=model_id, usage=usage(run),
        choices=[schemas.TextChoice(text=prefix + text, finish_reason=run.finish_reason)]).model_dump(), run)
