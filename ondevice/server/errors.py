"""Every failure leaves the server in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.

`OnDeviceError` subclasses carry their own `http_status` and `code`; request validation follows OpenAI (400 with the
offending field in `param`); anything unexpected is a 500 with a logged traceback and the process keeps serving.
"""

from __future__ import annotations

import logging
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ondevice.errors import OnDeviceError

log = logging.getLogger("ondevice.server")


class APIError(Exception):
    """An error the server itself raises (auth, queue full, unknown model, unsupported parameter)."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers


def error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def error_response(status: int, message: str, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None, path: str = "") -> JSONResponse:
    return JSONResponse(shaped_body(path, status, message, code, param), status_code=status, headers=headers)


# The protocol adapters (routes_ollama, routes_anthropic) answer errors in their own protocol's shape: each
# registers a body builder (status, message, code, param) -> dict for its path prefix. Everything else is OpenAI's.
ERROR_SHAPES: dict[str, Callable[[int, str, str | None, str | None], dict]] = {}


def shaped_body(path: str, status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    """The error body for a request to `path`: its protocol's shape, else OpenAI's."""
    for prefix, shape in ERROR_SHAPES.items():
        if path.startswith(prefix):
            return shape(status, message, code, param)
    return error_body(status, message, code, param)


def from_ondevice(exc: OnDeviceError, param: str | None = None) -> JSONResponse:
    return error_response(exc.http_status, str(exc), exc.code, param)


def _validation_response(exc: RequestValidationError, path: str = "") -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"msg": "invalid request", "loc": (), "type": "invalid"}
    if first.get("type") == "json_invalid":
        return error_response(400, f"We could not parse the JSON body of your request: {first.get('msg')}",
                              "invalid_json", path=path)
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if param is None and kind == "missing":  # no body at all (or one that is not JSON, by its content-type)
        return error_response(400, "The request body is empty or not JSON: send a JSON object "
                                   "(content-type: application/json).", "invalid_json", path=path)
    if param is None and kind in ("model_attributes_type", "dict_type"):
        return error_response(400, "The request body must be a JSON object.", "invalid_type", path=path)
    code = "missing_required_parameter" if kind == "missing" else \
        "invalid_type" if kind.endswith("_type") or kind.endswith("_parsing") else "invalid_value"
    message = f"Invalid value for {param!r}: {first.get('msg')}" if param else str(first.get("msg"))
    if kind == "missing":
        message = f"Missing required parameter: {param!r}"
    return error_response(400, message, code, param, path=path)


# FastAPI raises HTTPException(400, "There was an error parsing the body") for a body its JSON parser gives up on
# in a way other than a syntax error (nested deeper than Python's recursion limit, for one).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


def _http_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message, code = str(exc.detail), _HTTP_CODES.get(exc.status_code)
    if exc.status_code == 404 and exc.detail == "Not Found":  # no route: say so (not "model not found")
        message, code = f"The endpoint {request.method} {request.url.path} does not exist on this server.", \
            "unknown_endpoint"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    elif exc.status_code == 400 and "parsing the body" in message:
        message, code = "We could not parse the JSON body of your request (malformed, or nested too deeply).", \
            "invalid_json"
    elif exc.status_code == 400:
        code = "invalid_request"
    return error_response(exc.status_code, message, code, None, getattr(exc, "headers", None),
                          path=request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the OpenAI error shape."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.param, exc.headers, path=request.url.path)

    @app.exception_handler(OnDeviceError)
    async def _ondevice_error(request: Request, exc: OnDeviceError) -> JSONResponse:
        return error_response(exc.http_status, str(exc), exc.code, getattr(exc, "param", None),
                              path=request.url.path)  # an InvalidInput raised at start names its field

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _http_response(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error",
                              path=request.url.path)
