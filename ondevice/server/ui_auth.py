"""How a browser proves it holds the API key, for the web app (`ondevice serve --api-key KEY`, then `ondevice ui`).

A browser cannot add `Authorization: Bearer` to a page it navigates to, so the key travels once in the address
(`/?key=KEY`, the URL `ondevice ui` opens), the app answers with an HttpOnly, SameSite=Strict cookie and a redirect
to `/` (the key leaves the address bar), and the guard accepts that cookie from then on. SameSite=Strict keeps other
sites' pages from sending it; the app's own API calls also carry `X-Ondevice-UI`, a header no cross-site form can
set (see `ui_request_check`), so state-changing UI routes cannot be triggered by another origin.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

COOKIE = "ondevice_key"
UI_HEADER = "x-ondevice-ui"


def _same(given: str, key: str) -> bool:
    return hmac.compare_digest(given.encode(), key.encode())


def cookie_authorised(headers: dict[str, str], key: str) -> bool:
    """True when the request carries the app's cookie with the right key."""
    raw = headers.get("cookie", "")
    if not raw:
        return False
    try:
        jar = SimpleCookie(raw)
    except Exception:  # a malformed Cookie header is simply not a login
        return False
    morsel = jar.get(COOKIE)
    return morsel is not None and _same(morsel.value, key)


def login_key(scope) -> str | None:
    """The key given as `/?key=KEY` on a GET of the app's page, or None."""
    if scope.get("method") != "GET" or scope.get("path") != "/":
        return None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("key")
    return values[0] if values else None


def login_authorised(scope, key: str) -> bool:
    given = login_key(scope)
    return given is not None and _same(given, key)


def wants_page(scope) -> bool:
    """A browser navigating to the app's page (not an API client): gets the key form instead of a JSON 401."""
    return scope.get("method") == "GET" and scope.get("path") == "/"


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ondevice: API key needed</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>ondevice</h1>
<p>This server was started with <code>--api-key</code>. Open the address <code>ondevice ui</code> printed, or enter
the key:</p>
<form method="get" action="/"><label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required>
<button type="submit">Open</button></form></main></body></html>
"""
