"""`create_app(settings)` builds the FastAPI app; everything it serves lives on `app.state.server`, no globals."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ondevice import __version__
from ondevice.server import (routes_anthropic, routes_embed, routes_generate, routes_info, routes_ollama,
                             routes_rerank, routes_responses, routes_ui)
from ondevice.server.errors import install_error_handlers
from ondevice.server.guard import RequestGuard
from ondevice.server.settings import ServerSettings
from ondevice.server.state import ServerState


@asynccontextmanager
async def lifespan(app: FastAPI):
    state: ServerState = app.state.server
    await state.llm.call(state.load)  # on the model's own thread: every later model call runs there too
    try:
        yield
    finally:
        await state.llm.call(state.close)
        await state.embed_worker.call(state.close_embedder)
        state.llm.shutdown()
        state.embed_worker.shutdown()


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The OpenAI-compatible app for `settings`. Models load when the app starts (uvicorn's lifespan)."""
    settings = settings or ServerSettings()
    app = FastAPI(title="ondevice", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = ServerState(settings)
    install_error_handlers(app)
    app.include_router(routes_info.router)
    app.include_router(routes_generate.router)
    app.include_router(routes_embed.router)
    app.include_router(routes_ollama.router)  # Ollama's API under /api/ (docs/server.md, "Protocols")
    app.include_router(routes_anthropic.router)  # Anthropic's POST /v1/messages
    app.include_router(routes_responses.router)  # OpenAI's POST /v1/responses
    app.include_router(routes_rerank.router)  # POST /v1/rerank (RAG's reranker)
    app.include_router(routes_ui.router)  # the web app at / (docs/ui.md)
    if settings.rag_index:
        from ondevice.server import routes_rag

        app.include_router(routes_rag.router)
    # Order matters: the guard runs before routing; CORS (added last) wraps it so preflights get their headers.
    app.add_middleware(RequestGuard, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    return app


def serve(settings: ServerSettings) -> None:
    """Run the server in this process until interrupted (what `ondevice serve` calls). With `ollama_port`, the
    same app also answers on 127.0.0.1:ollama_port (a second uvicorn server in this event loop, started once the
    model is loaded; it runs no lifespan of its own)."""
    import asyncio

    import uvicorn

    app = create_app(settings)
    main = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                         timeout_graceful_shutdown=5))
    if not settings.ollama_port:
        main.run()
        return
    extra = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.ollama_port, log_level="warning",
                                          lifespan="off", timeout_graceful_shutdown=5))

    async def both() -> None:
        first = asyncio.create_task(main.serve())
        while not main.started and not first.done():
            await asyncio.sleep(0.05)
        tasks = [first] + ([asyncio.create_task(extra.serve())] if main.started else [])
        # Each server installs its own signal handlers (the last one wins): stop both when either is told to.
        while not (main.should_exit or extra.should_exit or any(t.done() for t in tasks)):
            await asyncio.sleep(0.1)
        main.should_exit = extra.should_exit = True
        await asyncio.gather(*tasks)

    asyncio.run(both())
