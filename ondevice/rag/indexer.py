"""Bring an index up to date with folders on disk: add new files, re-index changed ones, drop deleted ones.

Incremental by content: a file whose size and mtime are unchanged is not read; one whose bytes hash the same is
not re-parsed; a file whose hash matches an indexed file that has disappeared is a rename (its path is updated,
nothing is embedded); and chunks whose text is already in the index reuse the stored vector. Embedding is batched
across files; each file is then written in its own transaction, so a kill loses at most the files in flight and
the next run embeds only those (tested).

Reading, hashing, parsing and chunking run in a background thread, one batch ahead of the embedder (onnxruntime
releases the GIL while it computes), so the model is never idle waiting for files.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ondevice.errors import InvalidInput
from ondevice.rag.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS, Chunk, chunk_document, title_context
from ondevice.rag.embedder import Embedder
from ondevice.rag.readers import DEFAULT_MAX_BYTES, ParseError, Skipped, iter_files_stat, read_document
from ondevice.rag.store import IndexStore

EMBED_BATCH = 256  # chunks per embedding call (across files): enough for length buckets to form
# Chunking and the embedding text: module settings so that the lever measurements (docs/rag.md) can vary them.
CHUNK_CHARS = DEFAULT_MAX_CHARS
CHUNK_OVERLAP = DEFAULT_OVERLAP_CHARS
TITLE_CONTEXT = False  # prefix each chunk's embedding text with its folder and file name
READ_AHEAD = 512  # files the reader thread may run ahead of the embedder


@dataclass
class FailedFile:
    path: str
    reason: str


@dataclass
class IndexProgress:
    """Sent to `on_progress` after each file: for a progress bar."""

    files_done: int
    files_total: int
    chunks: int
    embedded: int
    embeddings_per_s: float
    current: str = ""
    elapsed_s: float = 0.0
    eta_s: float | None = None  # remaining files at the rate so far; None until there is a rate to go by


@dataclass
class IndexSummary:
    """What one `index` run did."""

    index: str
    files_seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    renamed: int = 0
    deleted: int = 0
    chunks_written: int = 0
    embedded: int = 0
    reused_vectors: int = 0
    failed: list[FailedFile] = field(default_factory=list)
    skipped: list[FailedFile] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    total_files: int = 0
    total_chunks: int = 0
    embed_model: str = ""  # the model of the index's vectors after this run
    filled: int = 0        # vectors of a model upgrade filled in by this run (`ondevice.rag.upgrade`)

    @property
    def embeddings_per_s(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    @property
    def files_per_s_excluding_embedding(self) -> float:
        rest = self.seconds - self.embed_seconds
        return self.files_seen / rest if rest > 0 else 0.0


@dataclass
class _Pending:
    path: Path
    sha256: str
    size: int
    mtime_ns: int
    chunks: list[Chunk]
    existed: bool


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def index_paths(store: IndexStore, paths: Sequence[str | Path], embedder: Embedder, exclude: Iterable[str] = (),
                max_bytes: int = DEFAULT_MAX_BYTES,
                on_progress: Callable[[IndexProgress], None] | None = None) -> IndexSummary:
    """Index `paths` (files or folders) into `store`; returns what changed. Missing paths raise InvalidInput."""
    t0 = time.perf_counter()
    roots = [Path(p).expanduser() for p in paths]
    if not roots:
        raise InvalidInput("give at least one file or folder to index")
    for root in roots:
        if not root.exists():
            raise InvalidInput(f"no such file or folder: {root}")
    roots = [r.resolve() for r in roots]
    store.initialise(embedder.name, embedder.dim)
    summary = IndexSummary(str(store.path))
    embed_before = (embedder.stats.texts, embedder.stats.seconds)

    skipped: list[Skipped] = []
    walked = [(path, st) for path, _, st in iter_files_stat(roots, exclude, max_bytes, skipped)]
    found = [path for path, _ in walked]
    summary.skipped = [FailedFile(str(s.path), s.reason) for s in skipped]
    seen = {str(p) for p in found}
    known = store.files()
    # Size and mtime as the walk saw them, unchanged: not read, not handed to the reader thread (at 100k chunks,
    # passing every file through the queue cost more than walking the folder).
    changed = [path for path, st in walked if not _same_stat(known.get(str(path)), st)]
    # Indexed files under these roots that are gone (or now excluded): candidates for renames, then deletion.
    vanished = {path: rec for path, rec in known.items()
                if path not in seen and (_under(path, roots) or not Path(path).exists())}
    by_hash = {rec.sha256: path for path, rec in vanished.items()}
    summary.files_seen = len(found)

    pending: list[_Pending] = []

    def report(current: str = "") -> None:
        if on_progress:
            stats = embedder.stats
            rate = (stats.texts - embed_before[0]) / max(stats.seconds - embed_before[1], 1e-9)
            elapsed = time.perf_counter() - t0
            worked = done - (len(found) - len(changed))  # files read this run: the rate that predicts the rest
            eta = (len(found) - done) * elapsed / worked if worked > 0 else None
            on_progress(IndexProgress(done, len(found), summary.chunks_written,
                                      stats.texts - embed_before[0], rate, current, elapsed, eta))

    # The reader thread only reads files and the `known` snapshot; every store write stays on this thread.
    items: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()
    summary.unchanged = done = len(found) - len(changed)
    reader = threading.Thread(target=_read_files, args=(changed, known, frozenset(by_hash), items, stop),
                              daemon=True, name="rag-reader")
    reader.start()
    try:
        while True:
            item = items.get()
            if item is None:
                break
            kind, path, payload = item
            key = str(path)
            if kind == "unchanged":
                summary.unchanged += 1
                done += 1
                continue
            if kind == "touched":  # touched, not changed
                store.touch_file(key, *payload)
                summary.unchanged += 1
                done += 1
                continue
            if kind == "failed":
                summary.failed.append(FailedFile(key, payload))
                if key in known:  # do not keep serving the old text of a file we can no longer read
                    store.delete_file(key)
                done += 1
                continue
            sha, size, mtime_ns, chunks = payload
            record = known.get(key)
            if record is None and sha in by_hash:  # a renamed (moved) file: keep its chunks and vectors
                old = by_hash.pop(sha)
                vanished.pop(old, None)
                store.rename_file(old, key, mtime_ns)
                store.touch_file(key, size, mtime_ns)
                summary.renamed += 1
                done += 1
                report(key)
                continue
            if chunks is None:  # looked like a rename, but its twin was taken by an earlier file: parse it here
                item = _read_one(path, None, frozenset())
                if item[0] == "failed":
                    summary.failed.append(FailedFile(key, item[2]))
                    done += 1
                    continue
                chunks = item[2][3]
            pending.append(_Pending(path, sha, size, mtime_ns, chunks, record is not None))
            if sum(len(p.chunks) for p in pending) >= EMBED_BATCH:
                done += _flush(store, embedder, pending, summary)
                pending = []
                report(key)
        done += _flush(store, embedder, pending, summary)
        report()
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                reader.join(0.05)

    for path in vanished:
        store.delete_file(path)
        summary.deleted += 1
    summary.embed_seconds = embedder.stats.seconds - embed_before[1]
    summary.seconds = time.perf_counter() - t0
    summary.total_files, summary.total_chunks = store.counts()
    summary.embed_model = store.embed_model or embedder.name
    return summary


def _read_files(found: Sequence[Path], known: dict, renamed_from: frozenset, items: queue.Queue,
                stop: threading.Event) -> None:
    """Reader thread: classify each file (unchanged / touched / failed / parsed with its chunks) into `items`."""
    try:
        for path in found:
            if stop.is_set():
                return
            items.put(_read_one(path, known.get(str(path)), renamed_from))
    finally:
        items.put(None)


def _same_stat(record, st) -> bool:
    return record is not None and record.size == st.st_size and record.mtime_ns == st.st_mtime_ns


def _read_one(path: Path, record, renamed_from: frozenset) -> tuple:
    try:
        st = path.stat()
        if _same_stat(record, st):
            return "unchanged", path, None
        data = path.read_bytes()
        sha = file_sha256(data)
        if record and record.sha256 == sha:
            return "touched", path, (st.st_size, st.st_mtime_ns)
        if record is None and sha in renamed_from:  # a rename: the consumer checks, and parses only if it is not
            return "parsed", path, (sha, st.st_size, st.st_mtime_ns, None)
        chunks = chunk_document(read_document(path, data), CHUNK_CHARS, CHUNK_OVERLAP)
        if TITLE_CONTEXT:
            context = title_context(path)
            for chunk in chunks:
                chunk.context = context
        return "parsed", path, (sha, st.st_size, st.st_mtime_ns, chunks)
    except (ParseError, OSError, UnicodeError, ValueError) as exc:
        return "failed", path, str(exc) or type(exc).__name__
    except Exception as exc:  # a reader bug must not hang the consumer: report the file as failed
        return "failed", path, f"{type(exc).__name__}: {exc}"


def _flush(store: IndexStore, embedder: Embedder, pending: list[_Pending], summary: IndexSummary) -> int:
    """Embed what the pending files need (reusing stored vectors by chunk text) and write each file."""
    if not pending:
        return 0
    keys = [c.key for p in pending for c in p.chunks]
    vectors = store.vectors_for_keys(keys)
    summary.reused_vectors += sum(1 for k in keys if k in vectors)
    todo: dict[str, str] = {}
    for p in pending:
        for c in p.chunks:
            if c.key not in vectors:
                todo.setdefault(c.key, c.embed_text)
    if todo:
        embedded = embedder.embed(list(todo.values()))
        for key, row in zip(todo, embedded):
            vectors[key] = row.astype("float32").tobytes()
        summary.embedded += len(todo)
    for p in pending:
        store.write_file(str(p.path), p.sha256, p.size, p.mtime_ns, p.chunks, [vectors[c.key] for c in p.chunks])
        summary.chunks_written += len(p.chunks)
        if p.existed:
            summary.updated += 1
        else:
            summary.added += 1
    return len(pending)


def _under(path: str, roots: Sequence[Path]) -> bool:
    p = Path(path)
    return any(p == r or r in p.parents for r in roots)
