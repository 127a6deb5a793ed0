"""ASGI middleware that runs before any routing or body parsing: the API key check and the body size limit.

It is plain ASGI (not Starlette's BaseHTTPMiddleware) so streaming responses and client disconnects pass through
untouched. The body is read here, at most `max_body_bytes` of it, and replayed to the app; a larger body (by its
Content-Length, or by counting a chunked one) gets 413 without being read further.
"""

from __future__ import annotations

import hmac
import json
import re

from ondevice.server import ui_auth
from ondevice.server.errors import shaped_body

PUBLIC_PATHS = ("/health",)
# API paths whose POST bodies must be JSON (the web app's own forms live elsewhere).
JSON_PREFIXES = ("/v1/", "/api/")


# A JSON escape of a UTF-16 surrogate (\ud800-\udfff), with the backslashes before it (an even count is an escaped
# backslash followed by the letters "ud800", not an escape).
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u[dD][89a-fA-F][0-9a-fA-F]{2}")


def lone_surrogate(body: bytes) -> str | None:
    """Where a JSON body holds a string with a lone surrogate ("\\ud800" with no pair: valid JSON, but not Unicode
    text; a tokenizer or encoder fails on it deep inside): the field's path ("messages.0.content"), "" for the body
    itself; None when there is none (the common case costs one regex scan)."""
    if not any(len(m.group(1)) % 2 for m in _SURROGATE_ESCAPE.finditer(body)):
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the app's own parser says so
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return path
        elif isinstance(node, dict):
            for key, item in node.items():
                stack.append((key, path))
                stack.append((item, f"{path}.{key}" if path else str(key)))
        elif isinstance(node, list):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(node))
    return None


async def _send_error(send, status: int, message: str, code: str, headers: dict[str, str] | None = None,
                      path: str = "", param: str | None = None) -> None:
    body = json.dumps(shaped_body(path, status, message, code, param)).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_login_page(send) -> None:
    body = ui_auth.LOGIN_PAGE.encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"content-security-policy", b"default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
        (b"www-authenticate", b"Bearer")]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Rejects unauthenticated requests (401) and oversized bodies (413) with the OpenAI error shape."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key and scope["method"] != "OPTIONS" and scope["path"] not in PUBLIC_PATHS \
                and not self._authorised(headers.get("authorization", "")) \
                and not self._key_authorised(headers.get("x-api-key", "")) \
                and not ui_auth.cookie_authorised(headers, self.api_key) \
                and not ui_auth.login_authorised(scope, self.api_key):  # the web app's login (ui_auth.py)
            if ui_auth.wants_page(scope):
                await _send_login_page(send)
                return
            await _send_error(send, 401, "Incorrect or missing API key: send `Authorization: Bearer <key>` "
                                         "(or `x-api-key: <key>`).", "invalid_api_key", {"WWW-Authenticate": "Bearer"},
                              scope["path"])
            return
        too_big = f"Request body exceeds the limit of {self.max_body_bytes} bytes."
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _send_error(send, 413, too_big, "request_too_large", path=scope["path"])
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away before sending the whole body
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                await _send_error(send, 413, too_big, "request_too_large", path=scope["path"])
                return
        body = b"".join(chunks)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and scope["method"] == "POST" and scope["path"].startswith(JSON_PREFIXES) \
                and not (content_type == "application/json" or content_type.endswith("+json")):
            await _send_error(send, 400, f"The body must be JSON sent with `Content-Type: application/json` (got "
                                         f"{content_type or 'no Content-Type'}).", "invalid_content_type",
                              path=scope["path"])
            return
        where = lone_surrogate(body)
        if where is not None:
            await _send_error(send, 400, f"{where or 'The body'} is not valid Unicode text: it holds a lone "
                                         f"surrogate escape (\\ud800-\\udfff without its pair).", "invalid_value",
                              path=scope["path"], param=where)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # afterwards: the real channel, so disconnects still arrive

        await self.app(scope, replay, send)

    def _key_authorised(self, key: str) -> bool:
        """Anthropic's clients send the key as `x-api-key`."""
        return bool(key) and hmac.compare_digest(key.strip().encode(), self.api_key.encode())

    def _authorised(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())
