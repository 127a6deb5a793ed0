"""Ollama's API under /api/: chat, generate, embed, tags, show, ps, version (docs/server.md, "Protocols").

A thin adapter: an Ollama body becomes the one `Request` (`protocol.build`), runs on the one engine
(`routes_generate.start_run`), and the run's events become Ollama's replies: one JSON object, or NDJSON lines
(`stream` defaults to true, as in Ollama) ending with a `"done": true` line that carries the counts and durations.
Errors answer in Ollama's shape, `{"error": "..."}`, with a 4xx. `options` map onto the sampling values; options
Ollama knows but that do not change a local answer here (num_thread, num_gpu, ...) are ignored, as Ollama ignores
unknown ones.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ondevice import __version__
from ondevice.server import errors, routes_embed, tool_calls
from ondevice.server.protocol import ProtocolStream, bad, build, call_arguments, finished, openai_call
from ondevice.server.routes_generate import collect, start_run, state_of
from ondevice.server.state import ServerState

log = logging.getLogger("ondevice.server")
router = APIRouter()
# The Ollama API level these routes follow (clients compare it to feature minimums); ondevice's own version is
# reported beside it.
OLLAMA_API_VERSION = "0.12.0"
# Ollama option -> SamplingParams name.
OPTION_NAMES = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
                "num_predict": "max_tokens", "stop": "stop", "repeat_penalty": "repeat_penalty",
                "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty"}

errors.ERROR_SHAPES["/api/"] = lambda status, message, code, param: {"error": message}


class OllamaBody(BaseModel):
    model_config = {"extra": "allow"}  # truncate, ... accepted and ignored

    model: str
    keep_alive: Any = None  # checked, then not acted on: see _keep_alive
    format: Any = None
    options: dict[str, Any] | None = None
    stream: bool = True
    think: Any = None


class ChatBody(OllamaBody):
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None  # an ondevice extension ("required", as OpenAI): Ollama's own API has none


class GenerateBody(OllamaBody):
    prompt: str | None = None
    system: str | None = None
    raw: bool = False
    suffix: str | None = None
    template: str | None = None
    images: list[Any] | None = None


class EmbedBody(BaseModel):
    model_config = {"extra": "allow"}
    model: str
    input: str | list[str]
    dimensions: int | None = None


def _model(state: ServerState, name: str) -> None:
    state.check_model(name[:-len(":latest")] if name.endswith(":latest") else name)


# Go's duration syntax, which Ollama parses keep_alive with ("5m", "1h30m", "-1s", "0"), or a number of seconds.
DURATION = re.compile(r"-?(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+|-?0")


def _keep_alive(value: Any) -> None:
    """keep_alive is checked as Ollama checks it (a bad value is a 400) and not acted on: `ondevice serve` serves
    the one model it was started with and holds it for the life of the process (loaded before the first request,
    its batch slots and prefix cache built over it, closed at shutdown), so unloading it after a request would only
    make the next one pay the load again. Stopping the server frees the memory (docs/server.md, "Protocols")."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if not isinstance(value, str) or not DURATION.fullmatch(value.strip()):
        raise bad(f"keep_alive {value!r} is not a duration (\"5m\", \"1h\", \"0\", -1) or a number of seconds",
                  "keep_alive")


def _sampling(state: ServerState, options: dict | None) -> dict:
    values = {}
    for option, value in (options or {}).items():
        if option == "num_ctx":
            if not isinstance(value, int) or value > state.model.n_ctx:
                raise bad(f"num_ctx {value!r} exceeds the served context of {state.model.n_ctx} tokens (restart "
                          f"`ondevice serve` with --ctx)", "options.num_ctx")
        elif option in OPTION_NAMES:
            if option == "num_predict" and isinstance(value, int) and value < 0:  # -1: until the context is full
                value = state.model.n_ctx
            values[OPTION_NAMES[option]] = value
    return values


def _schema(fmt: Any) -> Any:
    if fmt in (None, ""):
        return None
    if fmt == "json" or isinstance(fmt, dict):
        return fmt
    raise bad("format must be \"json\" or a JSON schema object", "format")


def _messages(raw: list[dict]) -> list[dict]:
    """Ollama messages -> OpenAI-shaped ones: tool calls get ids, and a tool result (`tool_name`) answers the
    earliest unanswered call of that name."""
    out, pending = [], []  # pending: (id, name) of calls not answered yet
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise bad(f"message {i} must be an object with role and content", "messages")
        if message.get("images"):
            raise bad("images are not supported: the served model reads text only", "messages")
        role, content = message.get("role"), message.get("content") or ""
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise bad(f"message {i}: each tool call needs a function", "messages")
                call_id = f"call_{i}_{len(calls)}"
                calls.append(openai_call(call_id, function.get("name"), function.get("arguments")))
                pending.append((call_id, function.get("name")))
            out.append({"role": "assistant", "content": content, "tool_calls": calls})
        elif role == "tool":
            name = message.get("tool_name") or message.get("name")
            match = next((p for p in pending if name is None or p[1] == name), None)
            if match is None:
                raise bad(f"message {i}: a tool result answers no earlier tool call", "messages")
            pending.remove(match)
            out.append({"role": "tool", "content": content, "tool_call_id": match[0]})
        else:
            out.append({"role": role, "content": content})
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _done(run, model: str) -> dict:
    t = run.timings
    ns = 1_000_000
    stats = {"total_duration": int(t.total_ms * ns), "load_duration": 0, "prompt_eval_count": t.prompt_tokens,
             "prompt_eval_duration": int(t.prompt_ms * ns), "eval_count": t.completion_tokens,
             "eval_duration": int(t.decode_ms * ns)} if t else {"eval_count": run.tokens}
    reason = run.finish_reason if run.finish_reason in ("stop", "length") else "stop"
    return {"model": model, "created_at": _now(), "done": True, "done_reason": reason, **stats}


def _ollama_calls(calls: list[dict] | None) -> list[dict] | None:
    if not calls:
        return None
    return [{"function": {"name": c["function"]["name"], "arguments": call_arguments(c)}} for c in calls]


def _line(payload: dict) -> str:
    return json.dumps(payload) + "\n"


async def _answer(request: Request, state: ServerState, req, model: str, chat: bool, stream: bool):
    plan = req.plan
    run = await start_run(state, req)
    if stream:
        events = tool_calls.ToolCallRun(run, plan.tool_format) if req.with_tools else run

        def piece(text: str, calls=None) -> dict:
            if chat:
                message = {"role": "assistant", "content": text}
                if calls:
                    message["tool_calls"] = calls
                return {"model": model, "created_at": _now(), "message": message, "done": False}
            return {"model": model, "created_at": _now(), "response": text, "done": False}

        async def lines() -> AsyncIterator[str]:
            try:
                async for event in events.events():
                    if event.text:
                        yield _line(piece(event.text))
                    if event.finish_reason == "tool_calls":
                        yield _line(piece("", _ollama_calls(events.tool_calls)))
                final = _done(run, model)
                final["message" if chat else "response"] = {"role": "assistant", "content": ""} if chat else ""
                yield _line(final)
            except Exception as exc:  # headers are sent: report in-band, as Ollama does
                log.exception("generation failed mid-stream")
                yield _line({"error": str(exc) or type(exc).__name__})
            finally:
                run.close()

        return ProtocolStream(lines(), run, "application/x-ndjson")

    text = await collect(run, request)
    if text is None:
        return None
    reply = _done(run, model)
    if chat:
        answer = finished(plan, text, run.finish_reason)
        reply["message"] = {"role": "assistant", "content": answer.content,
                            **({"tool_calls": _ollama_calls(answer.calls)} if answer.calls else {})}
    else:
        reply["response"] = text
    return reply


def _refuse_think(think: Any) -> None:
    if think:
        raise bad("this model does not support thinking", "think")


@router.post("/api/chat", response_model=None)
async def chat(body: ChatBody, request: Request):
    state = state_of(request)
    _model(state, body.model)
    _keep_alive(body.keep_alive)
    _refuse_think(body.think)
    if not body.messages:  # Ollama: an empty chat loads the model
        return {"model": body.model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                "done": True, "done_reason": "load"}
    req = build(state, messages=_messages(body.messages), schema=_schema(body.format), tools=body.tools or None,
                tool_choice=body.tool_choice if body.tools else None,
                **_sampling(state, body.options))
    return await _answer(request, state, req, body.model, True, body.stream)


@router.post("/api/generate", response_model=None)
async def generate(body: GenerateBody, request: Request):
    state = state_of(request)
    _model(state, body.model)
    _keep_alive(body.keep_alive)
    _refuse_think(body.think)
    for field in ("suffix", "template", "images"):
        if getattr(body, field):
            raise bad(f"{field} is not supported by this server", field)
    if not body.prompt:  # Ollama: an empty prompt loads the model
        return {"model": body.model, "created_at": _now(), "response": "", "done": True, "done_reason": "load"}
    sampling = _sampling(state, body.options)
    if body.raw:
        req = build(state, prompt=body.prompt, schema=_schema(body.format), fallback_param="prompt", **sampling)
    else:  # Ollama applies the model's template to the prompt (and system)
        messages = ([{"role": "system", "content": body.system}] if body.system else []) + \
            [{"role": "user", "content": body.prompt}]
        req = build(state, messages=messages, schema=_schema(body.format), fallback_param="prompt", **sampling)
    return await _answer(request, state, req, body.model, False, body.stream)


@router.post("/api/embed", response_model=None)
async def embed(body: EmbedBody, request: Request):
    state = state_of(request)
    state.check_embed_model(body.model[:-len(":latest")] if body.model.endswith(":latest") else body.model)
    texts = routes_embed._texts(body.input)
    async with await state.embed_worker.acquire():
        vectors, n_tokens = await state.embed_worker.call(state.embed, texts)
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise bad(f"{state.embed_model_id} gives {vectors.shape[1]}-dimensional vectors", "dimensions")
    return {"model": body.model, "embeddings": vectors.astype(float).tolist(), "prompt_eval_count": n_tokens}


def _details(state: ServerState) -> dict:
    info = state.model.info
    return {"parent_model": "", "format": info.format, "family": info.architecture, "families": [info.architecture],
            "parameter_size": f"{info.n_params / 1e6:.0f}M" if info.n_params < 1e9 else f"{info.n_params / 1e9:.1f}B",
            "quantization_level": info.quant}


def _entry(state: ServerState) -> dict:
    info = state.model.info
    return {"name": state.model_id, "model": state.model_id,
            "modified_at": datetime.datetime.fromtimestamp(state.created, datetime.timezone.utc).isoformat(),
            "size": info.size_bytes, "digest": "", "details": _details(state)}


@router.get("/api/tags")
async def tags(request: Request) -> dict:
    return {"models": [_entry(state_of(request))]}


@router.get("/api/ps")
async def ps(request: Request) -> dict:
    state = state_of(request)
    return {"models": [{**_entry(state), "expires_at": "2999-01-01T00:00:00Z", "size_vram": 0,
                        "context_length": state.model.n_ctx}]}


@router.post("/api/show")
async def show(body: dict, request: Request) -> dict:
    state = state_of(request)
    name = body.get("model") or body.get("name")
    if not isinstance(name, str):
        raise bad("model is required", "model")
    _model(state, name)
    info = state.model.info
    try:
        template = state.model.backend.chat_template_parts()[0]
    except Exception:  # noqa: BLE001 - a base model, or a backend without a template: Ollama then shows none
        template = ""
    arch = info.architecture
    return {
        "modelfile": f"FROM {state.model_id}\n", "template": template, "details": _details(state),
        "parameters": f"num_ctx {state.model.n_ctx}",
        "license": info.licence or "",
        "model_info": {"general.architecture": arch, "general.parameter_count": info.n_params,
                       f"{arch}.context_length": info.context_length, f"{arch}.embedding_length": info.n_embd,
                       f"{arch}.block_count": info.n_layers, f"{arch}.attention.head_count": info.n_heads,
                       f"{arch}.attention.head_count_kv": info.n_kv_heads, "general.file_type": info.quant},
        "capabilities": ["completion", "tools"] if info.has_chat_template else ["completion"],
        "modified_at": datetime.datetime.fromtimestamp(state.created, datetime.timezone.utc).isoformat(),
    }


@router.get("/api/version")
async def version() -> dict:
    return {"version": OLLAMA_API_VERSION, "ondevice": __version__}
