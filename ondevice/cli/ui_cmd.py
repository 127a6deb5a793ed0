"""`ondevice ui [MODEL]`: the web app (chat, your files, structured output, your device) in the browser.

Starts `ondevice serve` on a free loopback port and opens the app's address once the server answers; with
`--no-browser` it only prints the address. The app itself is served by the server (`ondevice/server/routes_ui.py`).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import click

from ondevice.cli.common import err_console, runtime_options
from ondevice.models.store import DEFAULT_EMBED_MODEL, DEFAULT_MODEL

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def app_url(port: int, api_key: str | None = None, host: str = HOST) -> str:
    """The address that opens the app (with the key once, which the app swaps for a cookie)."""
    from urllib.parse import quote

    return f"http://{host}:{port}/" + (f"?key={quote(api_key, safe='')}" if api_key else "")


def open_when_ready(url: str, health: str, timeout_s: float = 300) -> None:
    """Open `url` in the default browser as soon as `health` answers (the model is loaded)."""
    import webbrowser

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health, timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    else:
        return
    if not webbrowser.open(url):
        err_console.print(f"could not open a browser; open {url} yourself")


@click.command("ui")
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Only print the address; do not open a browser.")
@click.option("--api-key", envvar="ONDEVICE_API_KEY", default=None,
              help="Guard the app and the API with this key (env ONDEVICE_API_KEY).")
@click.option("--embed-model", default=DEFAULT_EMBED_MODEL, show_default=True,
              help="Embedding model for \"Your files\" (loaded on first use).")
@runtime_options
def ui_command(model, port, no_browser, api_key, embed_model, n_ctx, threads, device):
    """Open the web app: chat, ask your files, structured output, your device. Loopback only."""
    from ondevice.server import ServerSettings, serve
    from ondevice.models.store import resolve

    resolve(model)  # a bad name is one line and exit 2, not a traceback from the server's start
    if embed_model:
        resolve(embed_model)
    port = port or free_port()
    settings = ServerSettings(model=model, host=HOST, port=port, api_key=api_key, embed_model=embed_model,
                              n_ctx=n_ctx, threads=threads, device=device)
    url = app_url(port, api_key)
    click.echo(f"ondevice web app: {url}  (Ctrl-C stops)")
    if not no_browser:
        threading.Thread(target=open_when_ready, args=(url, f"http://{HOST}:{port}/health"), daemon=True).start()
    serve(settings)
