"""The web app: its page at `/`, its static files under `/ui/`, and the small JSON API only it needs.

Chat, structured output and tools use the OpenAI routes (`/v1/chat/completions`) from the browser like any other
client; this module adds what the OpenAI API has no place for: what is loaded (`/ui/api/info`), what this device
is (`/ui/api/device`, `/ui/api/targets`) and the "Your files" indexes (`ondevice.server.ui_files`).

Safe by default: every file is served from the package (no CDN, nothing fetched), with a Content-Security-Policy
that allows only this origin's scripts and styles (the app has no inline script or style); on a loopback server the
`Host` header must name loopback (a DNS-rebinding page cannot reach the app); the app's API routes need the
`X-Ondevice-UI` header (which a cross-site form cannot send) and, with `--api-key`, the guard's key or its cookie.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from ondevice.server.errors import APIError
from ondevice.server.state import ServerState
from ondevice.server.ui_auth import COOKIE, UI_HEADER, login_key

UI_DIR = Path(__file__).parent / "ui"
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")
MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "svg": "image/svg+xml",
               "html": "text/html; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host part of a Host header ("[::1]:8080" -> "::1", "localhost:80" -> "localhost")."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def check_host(request: Request) -> None:
    """On a loopback server, refuse a Host header that is not loopback (DNS rebinding)."""
    if _is_loopback(request.app.state.server.settings.host) \
            and not _is_loopback(_host_name(request.headers.get("host", "")).lower()):
        raise APIError(403, "The web app answers only on a loopback address on this server.", "forbidden_host")


def ui_request_check(request: Request) -> None:
    """Dependency of every app API route: loopback Host, and the app's own header."""
    check_host(request)
    if request.headers.get(UI_HEADER) != "1":
        raise APIError(403, f"This route is for the ondevice web app (send `{UI_HEADER}: 1`).", "forbidden")


router = APIRouter()
api = APIRouter(prefix="/ui/api", dependencies=[Depends(ui_request_check)])


def state_of(request: Request) -> ServerState:
    return request.app.state.server


@router.get("/", include_in_schema=False)
async def page(request: Request) -> Response:
    check_host(request)
    if login_key(request.scope) is not None and state_of(request).settings.api_key:
        # `/?key=KEY`, already checked by the guard: keep it in a cookie, not in the address bar
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, login_key(request.scope), httponly=True, samesite="strict", path="/")
        return response
    return FileResponse(UI_DIR / "index.html", media_type=MEDIA_TYPES["html"], headers=SECURITY_HEADERS)


@router.get("/ui/{name}", include_in_schema=False)
async def static_file(name: str, request: Request) -> Response:
    check_host(request)
    path = UI_DIR / name
    if not STATIC_NAME.match(name) or not path.is_file():
        raise APIError(404, f"No such file: /ui/{name}", "not_found")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix[1:]], headers=SECURITY_HEADERS)


@api.get("/info")
async def info(request: Request) -> dict:
    """What is loaded: the chat model, its backend and device, the context, the embedding model, routing."""
    state = state_of(request)
    model, s = state.model, state.settings
    return {
        "model": state.model_id,
        "backend": getattr(model, "backend_name", None),
        "device": getattr(model, "device", None),
        "n_ctx": getattr(model, "n_ctx", None),
        "embed_model": state.embed_model_id,
        "rag_index": s.rag_index,
        "remote": s.remote,
        "route": s.route if s.remote else None,
        "api_key": bool(s.api_key),
        "default_max_tokens": s.default_max_tokens,
    }


@api.get("/device")
async def device(request: Request) -> dict:
    """What `ondevice doctor` knows (measured once per server: about a second of bandwidth measuring) and the
    models in the store."""
    import dataclasses

    from ondevice.models.catalog import list_models
    from ondevice.machine.doctor import diagnose

    doctor = getattr(request.app.state, "ui_doctor", None)
    if doctor is None:
        doctor = request.app.state.ui_doctor = dataclasses.asdict(await asyncio.to_thread(diagnose))
    models = await asyncio.to_thread(list_models)
    return {"doctor": doctor, "models": [dataclasses.asdict(m) for m in models]}


@api.get("/targets")
async def targets(request: Request, device: str | None = None) -> dict:
    """The device-target panels installed packages provide (bench: the predicted seed targets for `device`)."""
    from ondevice.plugins import device_target_panels

    return {"panels": await asyncio.to_thread(device_target_panels, device)}


def _include_files() -> None:
    from ondevice.server import ui_files

    api.include_router(ui_files.router)


_include_files()
router.include_router(api)
