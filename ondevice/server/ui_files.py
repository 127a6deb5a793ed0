""""Your files" in the web app: index a folder the user chose, ask it with numbered citations, open the cited lines.

Built on `ondevice.rag.Index` (its public `add`, `ask`, `stats`, `store.files()`); indexes are named and live where
`ondevice rag index --index NAME` puts them (`index_path(NAME)`), so the CLI and the app share them. The folder
each was built from is remembered beside it (`NAME.folder.json`) so "re-index" can bring it up to date
incrementally.

Confinement: the source route serves only files that are in the named index (the paths the indexer itself
recorded under the chosen folder); any other path is a 404, whatever `..` or links it contains.

Threads: one indexing job at a time per index, on its own thread (it embeds for minutes on a big folder and must
not hold the chat model); answers run on the LLM worker under its lease, as /v1/rag/query does. An index is used
by one of them at a time (its lock), so asking an index while it is being built says so (409).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ondevice.errors import InvalidInput
from ondevice.server.errors import APIError
from ondevice.server.state import ServerState

router = APIRouter()
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_SOURCE_BYTES = 4 << 20  # a cited file larger than this is shown as its cited chunk only


class Cancelled(Exception):
    """Raised from the progress callback to stop an indexing run between files."""


@dataclass
class Job:
    """One indexing run, as the app's progress bar sees it."""

    name: str
    folder: str
    state: str = "running"          # running, done, cancelled, failed
    phase: str = "loading the embedding model"  # then "indexing"
    files_done: int = 0
    files_total: int = 0
    chunks: int = 0
    embedded: int = 0
    embeddings_per_s: float = 0.0
    current: str = ""
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0
    eta_s: float | None = None
    summary: dict | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("name", "folder", "state", "phase", "files_done", "files_total", "chunks",
                                             "embedded", "embeddings_per_s", "current", "eta_s", "summary", "error")}
        out["elapsed_s"] = round(time.monotonic() - self.started if self.state == "running" else self.elapsed_s, 1)
        return out


class Files:
    """The app's indexes on this server: opened `Index` objects, their locks, running jobs, one shared embedder."""

    def __init__(self, state: ServerState):
        self.state = state
        self.jobs: dict[str, Job] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.indexes: dict = {}
        self._embedder = None
        self._embedder_lock = threading.Lock()
        self._guard = threading.Lock()

    # --- helpers (any thread) ---------------------------------------------------------------------------------
    @staticmethod
    def check_name(name: str) -> str:
        if not NAME.match(name or ""):
            raise APIError(400, "An index name is 1-64 letters, digits, '-' or '_' (starting with a letter or "
                                "digit).", "invalid_value", "name")
        return name

    @staticmethod
    def path(name: str) -> Path:
        from ondevice.rag import index_path

        return index_path(name)

    def folder_file(self, name: str) -> Path:
        return self.path(name).with_suffix(".folder.json")

    def folder_of(self, name: str) -> str | None:
        try:
            return json.loads(self.folder_file(name).read_text())["folder"]
        except (OSError, ValueError, KeyError):
            return None

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self.locks.setdefault(name, threading.Lock())

    def embedder(self):
        with self._embedder_lock:
            if self._embedder is None:
                from ondevice.rag.embedder import load_embedder

                s = self.state.settings
                self._embedder = load_embedder(s.embed_model or None, s.threads)
            return self._embedder

    def index(self, name: str, create: bool):
        """The opened Index for `name` (call with its lock held)."""
        from ondevice.rag import Index

        if name not in self.indexes:
            self.indexes[name] = Index(self.path(name), embedder=self.embedder(), create=create,
                                       threads=self.state.settings.threads)
        return self.indexes[name]

    def close(self, name: str) -> None:
        index = self.indexes.pop(name, None)
        if index is not None:
            index.close()

    # --- listing ----------------------------------------------------------------------------------------------
    def list(self) -> list[dict]:
        from ondevice.rag.store import IndexStore

        folder = self.path("any").parent  # where index_path() keeps named indexes
        out = []
        for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
            name = path.stem
            if not NAME.match(name):
                continue
            entry = {"name": name, "folder": self.folder_of(name), "files": None, "chunks": None,
                     "job": self.jobs[name].to_dict() if name in self.jobs else None}
            lock = self.lock(name)
            if lock.acquire(blocking=False):
                try:
                    store = IndexStore(path, create=False)
                    try:
                        entry["files"], entry["chunks"] = store.counts()
                        entry["embed_model"] = store.embed_model
                    finally:
                        store.close()
                except Exception as exc:  # a damaged or foreign file: listed with its problem, still removable
                    entry["error"] = str(exc) or type(exc).__name__
                finally:
                    lock.release()
            out.append(entry)
        return out

    # --- indexing (its own thread) ----------------------------------------------------------------------------
    def start(self, name: str, folder: str | None) -> Job:
        name = self.check_name(name)
        folder = folder or self.folder_of(name)
        if not folder:
            raise APIError(400, "Choose a folder to index.", "invalid_value", "folder")
        root = Path(folder).expanduser()
        if not root.is_absolute():
            raise APIError(400, f"Give the folder as a full path (got {folder!r}).", "invalid_value", "folder")
        if not root.is_dir():
            raise APIError(400, f"No such folder: {root}", "invalid_value", "folder")
        running = self.jobs.get(name)
        if running is not None and running.state == "running":
            raise APIError(409, f"The index {name!r} is already being built.", "conflict", "name")
        known = self.folder_of(name)
        if known and Path(known) != root.resolve():
            raise APIError(409, f"The index {name!r} is built from {known}; choose another name for {root}.",
                           "conflict", "name")
        job = Job(name, str(root.resolve()))
        self.jobs[name] = job
        threading.Thread(target=self._run, args=(job,), name=f"ondevice-index-{name}", daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        from ondevice.files import atomic_output

        def progress(p) -> None:
            if job.cancel.is_set():
                raise Cancelled()
            job.files_done, job.files_total, job.chunks = p.files_done, p.files_total, p.chunks
            job.embedded, job.embeddings_per_s, job.current = p.embedded, round(p.embeddings_per_s, 1), p.current
            elapsed = time.monotonic() - job.started
            job.eta_s = round(elapsed / p.files_done * (p.files_total - p.files_done), 1) if p.files_done else None

        with self.lock(job.name):
            try:
                index = self.index(job.name, create=True)
                if not self.folder_file(job.name).exists():  # remembered at once: a cancelled first run resumes
                    with atomic_output(self.folder_file(job.name)) as tmp:
                        Path(tmp).write_text(json.dumps({"folder": job.folder}))
                index.embedder  # noqa: B018 - load it now (the first time converts it: tens of seconds)
                if job.cancel.is_set():
                    raise Cancelled()
                job.phase = "indexing"
                summary = index.add([job.folder], on_progress=progress)
                job.summary = {k: v for k, v in asdict(summary).items() if k not in ("failed", "skipped")}
                job.summary["failed"] = [asdict(f) for f in summary.failed]
                job.files_done = job.files_total = summary.files_seen
                job.chunks, job.embedded = summary.total_chunks, summary.embedded
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"  # files finished before the cancel stay indexed; a re-index continues
            except Exception as exc:
                job.state, job.error = "failed", str(exc) or type(exc).__name__
            finally:
                job.eta_s = None
                job.elapsed_s = time.monotonic() - job.started

    def cancel(self, name: str) -> Job:
        job = self.jobs.get(self.check_name(name))
        if job is None or job.state != "running":
            raise APIError(409, f"No indexing of {name!r} is running.", "conflict", "name")
        job.cancel.set()
        return job

    def remove(self, name: str) -> None:
        name = self.check_name(name)
        path = self.path(name)
        if not path.exists():
            raise APIError(404, f"No index named {name!r}.", "not_found", "name")
        job = self.jobs.get(name)
        if job is not None and job.state == "running":
            raise APIError(409, f"The index {name!r} is being built: cancel that first.", "conflict", "name")
        with self.lock(name):
            self.close(name)
            for extra in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), self.folder_file(name)):
                extra.unlink(missing_ok=True)
        self.jobs.pop(name, None)

    # --- asking (LLM worker thread) ---------------------------------------------------------------------------
    def ask(self, name: str, question: str, k: int, max_tokens: int, on_text):
        lock = self.lock(name)
        if not lock.acquire(blocking=False):
            raise APIError(409, f"The index {name!r} is being built; ask when it is done (or cancel it).",
                           "conflict", "name")
        try:
            index = self.index(name, create=False)
            return index.ask(question, model=self.state.model, k=k, max_tokens=max_tokens, on_text=on_text)
        finally:
            lock.release()

    def _files(self, name: str) -> dict:
        """The files the index recorded (read from its store; no embedding model needed)."""
        from ondevice.rag.store import IndexStore

        if name in self.indexes:
            return self.indexes[name].store.files()
        store = IndexStore(self.path(name), create=False)
        try:
            return store.files()
        finally:
            store.close()

    def source(self, name: str, path: str) -> dict:
        """The text of an indexed file of `name`, or a 404 for anything else."""
        from ondevice.rag.encoding import decode_text

        lock = self.lock(name)
        with lock:
            if not self.path(name).exists():
                raise APIError(404, f"No index named {name!r}.", "not_found", "name")
            known = self._files(name)
        if path not in known:
            raise APIError(404, "That file is not in this index.", "not_found", "path")
        file = Path(path)
        if file.suffix.lower() in (".pdf", ".docx"):
            return {"path": path, "name": file.name, "lines": None}  # the app shows the cited chunk instead
        try:
            data = file.read_bytes()[:MAX_SOURCE_BYTES]
            text, _ = decode_text(data)
        except (OSError, ValueError) as exc:
            raise APIError(404, f"Cannot read {file.name}: {exc}", "not_found", "path") from None
        return {"path": path, "name": file.name, "lines": text.splitlines()}


def files_of(request: Request) -> Files:
    ui = getattr(request.app.state, "ui_files", None)
    if ui is None:
        try:
            import ondevice.rag  # noqa: F401 - an optional extra (SQLite with vectors, document readers)
        except ImportError as exc:
            raise APIError(400, f"\"Your files\" needs the rag extra ({exc.name} is missing): "
                                f"pip install 'ondevice-toolkit[rag]'", "rag_unavailable") from None
        ui = request.app.state.ui_files = Files(request.app.state.server)
    return ui


class IndexRequest(BaseModel):
    name: str
    folder: str | None = None


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    k: int = Field(4, ge=1, le=16)
    max_tokens: int = Field(160, ge=1, le=2048)


@router.get("/indexes")
async def list_indexes(request: Request) -> dict:
    return {"indexes": await asyncio.to_thread(files_of(request).list)}


@router.post("/indexes")
async def build_index(body: IndexRequest, request: Request) -> dict:
    """Start (or continue: only changed files are re-read) building the index `name` from `folder`."""
    return files_of(request).start(body.name, body.folder).to_dict()


@router.get("/indexes/{name}/job")
async def job_status(name: str, request: Request) -> dict:
    job = files_of(request).jobs.get(Files.check_name(name))
    if job is None:
        raise APIError(404, f"No indexing of {name!r} has run on this server.", "not_found", "name")
    return job.to_dict()


@router.post("/indexes/{name}/cancel")
async def cancel_index(name: str, request: Request) -> dict:
    return files_of(request).cancel(name).to_dict()


@router.delete("/indexes/{name}")
async def remove_index(name: str, request: Request) -> dict:
    await asyncio.to_thread(files_of(request).remove, name)
    return {"removed": name}


@router.get("/indexes/{name}/source")
async def source(name: str, path: str, request: Request) -> dict:
    return await asyncio.to_thread(files_of(request).source, Files.check_name(name), path)


def _citation(number: int, result, folder: str | None) -> dict:
    """One numbered source; `display` is its path inside the chosen folder."""
    import os

    display = os.path.relpath(result.path, folder) if folder and Path(result.path).is_relative_to(folder) \
        else result.path
    return {"number": number, "path": result.path, "display": display,
            "start_line": result.start_line, "end_line": result.end_line, "page": result.page, "span": result.span,
            "text": result.text, "score": round(float(result.score), 4)}


def _quote_citation(quote, result, folder: str | None) -> dict:
    """An extractive answer's quote as a numbered source: the quote's own lines (not its chunk's), its own text."""
    from ondevice.rag.retrieve import span_text

    out = _citation(quote.number, result, folder)
    out.update(start_line=quote.start_line, end_line=quote.end_line, page=quote.page,
               span=span_text(quote.start_line, quote.end_line, quote.page), text=quote.text, quote=True)
    return out


@router.post("/indexes/{name}/ask")
async def ask(name: str, body: AskRequest, request: Request) -> StreamingResponse:
    """Server-sent events: {"text": piece} while the answer streams, then {"done": true, "found", "answer",
    "citations"} (or {"error": {...}}). An extractive answer's citations are its quotes: the quoted lines
    (`start_line`..`end_line`, `span`), the quote as `text`, and `"quote": true`; a generated one cites chunks."""
    files, state = files_of(request), request.app.state.server
    Files.check_name(name)
    if not files.path(name).exists():
        raise APIError(404, f"No index named {name!r}.", "not_found", "name")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def push(piece: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, piece)

    async def run():
        async with await state.llm.acquire():
            return await state.llm.call(files.ask, name, body.question, body.k, body.max_tokens, push)

    task = asyncio.ensure_future(run())
    task.add_done_callback(lambda _: queue.put_nowait(None))

    async def events():
        while (piece := await queue.get()) is not None:
            yield f"data: {json.dumps({'text': piece})}\n\n"
        try:
            answer = task.result()
        except (APIError, InvalidInput, Exception) as exc:
            status = getattr(exc, "status", getattr(exc, "http_status", 500))
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            yield f"data: {json.dumps({'error': {'message': message, 'status': status}})}\n\n"
            return
        folder = files.folder_of(name)
        if answer.found and answer.quotes:  # extractive: the quoted sentences' lines, highlighted in the file
            citations = [_quote_citation(q, s, folder) for q, s in zip(answer.quotes, answer.sources)]
        else:
            citations = [_citation(i, s, folder) for i, s in enumerate(answer.sources, start=1)] if answer.found \
                else []
        yield f"data: {json.dumps({'done': True, 'found': answer.found, 'answer': answer.answer, 'citations': citations})}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
