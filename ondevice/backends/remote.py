"""Remote models behind any OpenAI-compatible server (vLLM, llama-server, `ondevice serve`, a cloud API).

    m = ondevice.load("remote:Qwen2.5-7B-Instruct@http://gpu-box:8000/v1", api_key=...)
    m.chat([{"role": "user", "content": "..."}]).text

A remote model is a `Model` like any other: `generate`, `chat`, `stream`, `embed`. It talks through the official
`openai` client (its retries with exponential backoff on connection errors, 408/409/429 and 5xx, its timeouts and
its streaming), and every failure becomes an `OnDeviceError`: `RemoteUnavailable` when the server is down, slow or
keeps failing; `InvalidInput` when it rejects the request (4xx). Nothing remote has a tokenizer or logits here.

Spec: `remote:MODEL@URL`, where URL is the server's OpenAI base (".../v1" is appended when missing), or
`remote:URL` for the first model the server lists (asked on first use, so a server that is down at load time
does not stop a router from starting). The API key
comes from `api_key=` or the environment variable `ONDEVICE_REMOTE_API_KEY` (then `OPENAI_API_KEY`); servers that
need none get a placeholder.
"""

from __future__ import annotations

import os
import time
from typing import Iterator, Sequence

import numpy as np

from ondevice.backends.base import Backend, StreamEvent
from ondevice.backends.finish import FinishRules
from ondevice.errors import InvalidInput, OnDeviceError, RemoteUnavailable
from ondevice.models.model_info import ModelInfo
from ondevice.backends.options import RuntimeOptions
from ondevice.decoding.sampling import SamplingParams
from ondevice.models.store import REMOTE_SCHEME as SCHEME, ModelRef, RemoteSpec  # noqa: F401  (the spec's home)

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 2
API_KEY_ENV = ("ONDEVICE_REMOTE_API_KEY", "OPENAI_API_KEY")


def is_remote(name: object) -> bool:
    return isinstance(name, str) and name.startswith(SCHEME)


def _map_error(exc: Exception, where: str) -> OnDeviceError:
    """One clear toolkit error for whatever the client raised."""
    import openai

    if isinstance(exc, OnDeviceError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return RemoteUnavailable(f"{where}: timed out")
    if isinstance(exc, openai.APIConnectionError):
        return RemoteUnavailable(f"{where}: cannot connect ({exc.__cause__ or exc})")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _server_message(exc)
        if status in (401, 403):
            return InvalidInput(f"{where}: the server refused the API key ({status}: {message})")
        if status == 404:
            return InvalidInput(f"{where}: not found on the server ({message})")
        if status == 429 or status >= 500:
            return RemoteUnavailable(f"{where}: server answered {status} after retries ({message})")
        return InvalidInput(f"{where}: the server rejected the request ({status}: {message})")
    # A stream cut mid-way surfaces as an httpx/transport error or an openai.APIError.
    return RemoteUnavailable(f"{where}: the connection failed mid-answer ({type(exc).__name__}: {exc})")


def _server_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))


class RemoteBackend(Backend):
    """A model served elsewhere over the OpenAI API. Options: `extra={"api_key", "timeout", "max_retries"}`."""

    name = "remote"
    formats = ("remote",)

    def __init__(self, ref: ModelRef, info: ModelInfo, options: RuntimeOptions):
        super().__init__(ref, info, options)
        import openai

        self.spec = RemoteSpec.parse(ref.name)
        self._model = self.spec.model
        extra = dict(options.extra)
        api_key = extra.get("api_key") or next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)
        self.timeout = float(extra.get("timeout", DEFAULT_TIMEOUT_S))
        self.max_retries = int(extra.get("max_retries", DEFAULT_RETRIES))
        if self.timeout <= 0 or self.max_retries < 0:
            raise InvalidInput("remote timeout must be > 0 and max_retries >= 0")
        self._client = openai.OpenAI(base_url=self.spec.base_url, api_key=api_key or "not-needed",
                                     timeout=self.timeout, max_retries=self.max_retries)
        self.device = f"remote ({self.spec.base_url})"
        self.n_ctx = int(options.n_ctx or 0)

    @property
    def where(self) -> str:
        return f"remote {self._model or 'model'} at {self.spec.base_url}"

    # --- generation -------------------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The model the server is asked for (discovered from its model list for a bare-URL spec)."""
        if not self._model:
            try:
                models = self._client.models.list().data
            except Exception as exc:
                raise _map_error(exc, self.where) from None
            if not models:
                raise RemoteUnavailable(f"{self.where}: the server lists no models")
            self._model = models[0].id
        return self._model

    def _request(self, params: SamplingParams) -> dict:
        request = {"model": self.model_name, "max_tokens": params.max_tokens, "temperature": params.temperature,
                   "top_p": params.top_p, "stream": True}
        if params.seed is not None:
            request["seed"] = params.seed
        if params.stop:
            request["stop"] = list(params.stop)
        # Every answer-changing sampling value travels: OpenAI's own fields by name, the llama.cpp / vLLM
        # extensions (top_k, min_p, repeat_penalty) in the body beside them, as those servers read them.
        if params.logit_bias:
            request["logit_bias"] = {str(token): bias for token, bias in params.logit_bias.items()}
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(params, name):
                request[name] = getattr(params, name)
        extra = {name: getattr(params, name) for name, off in (("top_k", 0), ("min_p", 0.0), ("repeat_penalty", 1.0))
                 if getattr(params, name) != off}
        if params.ignore_eos:
            extra["ignore_eos"] = True
        if extra:
            request["extra_body"] = extra
        grammar = params.grammar  # structured output: the remote server enforces it (never an unconstrained answer)
        if grammar is not None:
            if grammar.kind == "json_object":
                request["response_format"] = {"type": "json_object"}
            elif grammar.kind == "json_schema":
                request["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": grammar.name or "answer", "schema": grammar.schema, "strict": True}}
            else:
                raise InvalidInput(f"{self.where}: {grammar.kind} constraints run on local models only")
        return request

    def stream(self, prompt: str | Sequence[int], params: SamplingParams) -> Iterator[StreamEvent]:
        if not isinstance(prompt, str):
            raise InvalidInput(f"{self.where}: a remote model takes text prompts, not token ids")
        if not prompt:
            raise InvalidInput("prompt is empty")
        return self._events(lambda: self._client.completions.create(prompt=prompt, **self._request(params)),
                            lambda chunk: chunk.choices[0].text if chunk.choices else "", params)

    def stream_chat(self, messages: list[dict], params: SamplingParams) -> Iterator[StreamEvent]:
        return self._events(lambda: self._client.chat.completions.create(messages=messages, **self._request(params)),
                            lambda chunk: (chunk.choices[0].delta.content or "") if chunk.choices else "", params)

    def _events(self, open_stream, text_of, params: SamplingParams) -> Iterator[StreamEvent]:
        t0 = time.perf_counter()
        try:
            response = open_stream()  # connection errors, 4xx and retries-exhausted 5xx raise here, at call time
        except Exception as exc:
            raise _map_error(exc, self.where) from None
        return self._read(response, text_of, FinishRules(params, params.max_tokens, t0=t0))

    def _read(self, response, text_of, rules: FinishRules) -> Iterator[StreamEvent]:
        """The server's chunks through the decode loop's finish rules (stop strings, timings, the last event)."""
        finish = None
        try:
            for chunk in response:
                text = text_of(chunk)
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
                usage = getattr(chunk, "usage", None)
                if usage:
                    rules.timings.prompt_tokens = usage.prompt_tokens or 0
                if text:  # one streamed chunk ~ one token on llama.cpp/vLLM servers
                    events, stopped = rules.text(text)
                    yield from events
                    if stopped:
                        finish = stopped
                        response.close()
                        break
        except GeneratorExit:
            response.close()
            raise
        except Exception as exc:
            response.close()
            if isinstance(exc, OnDeviceError):
                raise
            cause = exc.__cause__ or exc
            raise RemoteUnavailable(f"{self.where}: the connection failed mid-answer ({cause})") from None
        if finish is None:  # the body ended cleanly but the server never said the answer was complete
            raise RemoteUnavailable(f"{self.where}: the stream ended mid-answer without a finish reason")
        yield from rules.end(finish)

    # --- embeddings -------------------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        try:
            response = self._client.embeddings.create(model=self.model_name, input=list(texts))
        except Exception as exc:
            raise _map_error(exc, self.where) from None
        return np.asarray([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=np.float32)

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
            self._client = None

