"""`ondevice serve MODEL`: the OpenAI-compatible local server."""

from __future__ import annotations

import click

from ondevice.cli.common import err_console, kv_type_option, runtime_options
from ondevice.models.store import DEFAULT_EMBED_MODEL, DEFAULT_MODEL

OLLAMA_PORT = 11434  # Ollama's default


@click.command("serve")
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback exposes the model to your network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--api-key", envvar="ONDEVICE_API_KEY", default=None,
              help="Require `Authorization: Bearer KEY` on /v1 requests (env ONDEVICE_API_KEY).")
@click.option("--embed-model", default=DEFAULT_EMBED_MODEL, show_default=True,
              help="Model for /v1/embeddings (loaded on first use).")
@click.option("--rag-index", default=None, help="A `ondevice rag` index: enables /v1/rag/query and grounded chat.")
@click.option("--max-queue", type=click.IntRange(min=0), default=16, show_default=True,
              help="Requests that may wait for the model; beyond that the server answers 429.")
@click.option("--max-body", "max_body_bytes", type=click.IntRange(min=1024), default=1 << 20, show_default=True,
              help="Largest request body in bytes (413 beyond).")
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allow this browser origin (repeatable). Off "
              "by default.")
@click.option("--remote", default=None, metavar="URL",
              help="A larger remote model (remote:MODEL@URL or an OpenAI base URL) that answers what --route sends "
                   "away; sensitive text never leaves.")
@click.option("--route", default="privacy,size", show_default=True,
              help="Routing policies with --remote: privacy, size, confidence (comma-separated).")
@click.option("--parallel", default="auto", show_default=True, metavar="N|auto",
              help="Requests decoded together in one batch (slots, each with the full context); auto sizes it "
                   "from RAM (up to 4); 1 serves one request at a time.")
@click.option("--tool-format", default="auto", show_default=True,
              help="Tool-call format: auto (the one the chat template is written for, else generic) or hermes, "
                   "llama3, mistral, phi4, granite, generic (docs/structured-output.md).")
@click.option("--ollama", is_flag=True, help="Also answer on 127.0.0.1:11434 (Ollama's default port; the Ollama API "
              "is always served under /api/ on --port), so apps that only speak Ollama find the model.")
@click.option("--ollama-port", type=click.IntRange(1, 65535), default=OLLAMA_PORT, show_default=True,
              help="The port --ollama listens on.")
@click.option("--cache-reuse", type=click.Choice(["exact", "all"]), default="exact", show_default=True,
              help="exact: a temperature-0 answer never depends on what the cache held (a continued conversation "
                   "evaluates its last answer again). all: faster next turns, but greedy answers may differ from "
                   "a cold start's (docs/server.md, 'Temperature 0').")
@kv_type_option
@runtime_options
def serve_command(model, host, port, api_key, embed_model, rag_index, max_queue, max_body_bytes, cors_origins,
                  remote, route, parallel, tool_format, ollama, ollama_port, cache_reuse, kv_type, n_ctx, threads,
                  device):
    """Serve MODEL with the OpenAI API (chat, completions, embeddings, models) on HOST:PORT."""
    from ondevice.server import ServerSettings, serve
    from ondevice.models.store import resolve

    # Name errors now, as one line and exit code 2, rather than as a traceback from inside uvicorn's startup.
    resolve(model)
    from ondevice.backends.options import RuntimeOptions

    RuntimeOptions(kv_type=kv_type)  # a bad --kv-type: one line, exit 2
    from ondevice.decoding.tool_formats import check_name

    tool_format = check_name(tool_format)
    if embed_model:
        resolve(embed_model)
    if remote:
        from ondevice.routing.router import parse_policy

        resolve(remote if remote.startswith("remote:") else f"remote:{remote}")  # a malformed spec fails here
        parse_policy(route)
    if ollama:
        check_port_free(ollama_port)
    settings = ServerSettings(model=model, host=host, port=port, api_key=api_key, embed_model=embed_model,
                              rag_index=rag_index, max_queue=max_queue, max_body_bytes=max_body_bytes,
                              cors_origins=list(cors_origins), n_ctx=n_ctx, threads=threads, device=device,
                              remote=remote, route=route, parallel=parse_parallel(parallel), tool_format=tool_format,
                              kv_type=kv_type, cache_reuse=cache_reuse,
                              ollama_port=ollama_port if ollama else None)
    also = f" and the Ollama API on http://127.0.0.1:{ollama_port}" if ollama else ""
    err_console.print(f"[dim]serving {model} on http://{host}:{port}/v1{also} (Ctrl-C stops)[/dim]")
    serve(settings)


def check_port_free(port: int) -> None:
    """--ollama: a port already taken (Ollama itself running?) is one clear line, not a traceback from uvicorn."""
    import socket

    from ondevice.errors import InvalidInput

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise InvalidInput(f"--ollama: 127.0.0.1:{port} is already in use (is Ollama running?); stop it or "
                               f"pick another --ollama-port") from None


def parse_parallel(value: str) -> int | None:
    """--parallel: "auto" (None: sized from RAM) or a slot count 1..64."""
    from ondevice.errors import InvalidInput

    if value.strip().lower() == "auto":
        return None
    if not value.strip().isdigit() or not 1 <= int(value) <= 64:
        raise InvalidInput(f"--parallel must be auto or a number of slots 1..64, got {value!r}")
    return int(value)
