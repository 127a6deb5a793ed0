"""One SQLite file per index: files, chunks, an FTS5 table for BM25 and a sqlite-vec table for vectors.

Opened through `apsw` (bundles a current SQLite with FTS5 and can load extensions; Python's `sqlite3` often
cannot) in WAL mode. Every file is written in one transaction together with its chunks and vectors, so a process
killed at any moment leaves each file either fully indexed or absent, and the next run finishes the job.
The embedding model's name and dimension are recorded at creation; opening with another model is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ondevice.errors import InvalidInput, OnDeviceError
from ondevice.rag.chunking import Chunk

SCHEMA_VERSION = "1"


class IndexError_(OnDeviceError):  # noqa: N801 - "IndexError" is a builtin
    """The index file is missing, unreadable, or was built with another embedding model."""

    code = "invalid_index"


class EmbeddingModelMismatch(IndexError_):
    """The query-time embedding model is not the one the index was built with."""


@dataclass
class FileRecord:
    id: int
    path: str
    sha256: str
    size: int
    mtime_ns: int
    n_chunks: int


@dataclass
class ChunkRow:
    id: int
    path: str
    text: str
    start_line: int | None
    end_line: int | None
    page: int | None


def _connect(path: Path):
    try:
        import apsw
        import sqlite_vec
    except ImportError as exc:
        from ondevice.errors import BackendUnavailable

        raise BackendUnavailable(f"RAG needs {exc.name!r} (pip install 'ondevice-toolkit[rag]')") from None
    try:
        conn = apsw.Connection(str(path))
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.enable_load_extension(False)
        conn.setbusytimeout(10_000)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
        conn.execute("PRAGMA foreign_keys=ON")
    except apsw.Error as exc:
        raise IndexError_(f"{path}: cannot open index ({exc})") from None
    return conn


class IndexStore:
    """Low-level access to an index file. Use `ondevice.rag.Index` unless you need the tables."""

    def __init__(self, path: Path, create: bool = True):
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise IndexError_(f"no index at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = _connect(self.path)
        self._writes = 0
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None
        self._matrix_version: tuple[int, int] | None = None
        self._matrix_keys: list[str] = []
        try:
            with self.conn:
                self.conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
        except Exception as exc:
            raise IndexError_(f"{self.path}: not an index file ({exc})") from None

    # --- metadata -----------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def embed_model(self) -> str | None:
        return self.meta("embed_model")

    @property
    def dim(self) -> int | None:
        value = self.meta("dim")
        return int(value) if value else None

    def initialise(self, embed_model: str, dim: int) -> None:
        """Create the tables for vectors of `dim` floats, or check that the existing ones match."""
        if self.embed_model is not None:
            self.check_model(embed_model, dim)
            return
        with self.conn:  # one transaction: a kill here leaves no half-made schema
            self.conn.execute(f"""
                CREATE TABLE IF NOT EXISTS files(
                    id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, sha256 TEXT NOT NULL,
                    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, n_chunks INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
                CREATE TABLE IF NOT EXISTS chunks(
                    id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL, key TEXT NOT NULL, text TEXT NOT NULL,
                    start_line INTEGER, end_line INTEGER, page INTEGER);
                CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
                CREATE INDEX IF NOT EXISTS chunks_key ON chunks(key);
                CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize='porter unicode61');
                CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vec USING vec0(
                    embedding float[{int(dim)}] distance_metric=cosine);
                INSERT OR REPLACE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');
            """)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('embed_model', ?), ('dim', ?)",
                              (embed_model, str(int(dim))))

    def check_model(self, embed_model: str, dim: int | None = None) -> None:
        if self.embed_model is None:
            return
        if embed_model != self.embed_model or (dim is not None and dim != self.dim):
            raise EmbeddingModelMismatch(
                f"{self.path} was built with embedding model {self.embed_model!r} (dim {self.dim}); "
                f"querying with {embed_model!r}{f' (dim {dim})' if dim else ''} would compare unrelated vectors. "
                f"Use --embed-model {self.embed_model} or build a new index")

    @property
    def ready(self) -> bool:
        return self.embed_model is not None

    # --- files --------------------------------------------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        if not self.ready:
            return {}
        rows = self.conn.execute("SELECT id, path, sha256, size, mtime_ns, n_chunks FROM files")
        return {r[1]: FileRecord(*r) for r in rows}

    def vectors_for_keys(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Stored embeddings of chunks with these content keys (to reuse instead of re-embedding)."""
        found: dict[str, bytes] = {}
        for key in set(keys):
            row = self.conn.execute(
                "SELECT v.embedding FROM chunks c JOIN chunks_vec v ON v.rowid = c.id WHERE c.key=? LIMIT 1",
                (key,)).fetchone()
            if row:
                found[key] = row[0]
        return found

    def write_file(self, path: str, sha256: str, size: int, mtime_ns: int, chunks: Sequence[Chunk],
                   vectors: Sequence[bytes]) -> None:
        """Replace everything stored for `path` with these chunks, in one transaction."""
        self._writes += 1
        with self.conn:
            self._delete(path)
            self.conn.execute("INSERT INTO files(path, sha256, size, mtime_ns, n_chunks) VALUES (?,?,?,?,?)",
                              (path, sha256, size, mtime_ns, len(chunks)))
            file_id = self.conn.last_insert_rowid()
            for chunk, vector in zip(chunks, vectors):
                self.conn.execute(
                    "INSERT INTO chunks(file_id, ordinal, key, text, start_line, end_line, page) VALUES (?,?,?,?,?,?,?)",
                    (file_id, chunk.ordinal, chunk.key, chunk.text, chunk.start_line, chunk.end_line, chunk.page))
                chunk_id = self.conn.last_insert_rowid()
                self.conn.execute("INSERT INTO chunks_fts(rowid, text) VALUES (?,?)", (chunk_id, chunk.text))
                self.conn.execute("INSERT INTO chunks_vec(rowid, embedding) VALUES (?,?)", (chunk_id, vector))

    def rename_file(self, old: str, new: str, mtime_ns: int) -> None:
        with self.conn:
            self._delete(new)
            self.conn.execute("UPDATE files SET path=?, mtime_ns=? WHERE path=?", (new, mtime_ns, old))

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        with self.conn:
            self.conn.execute("UPDATE files SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def delete_file(self, path: str) -> None:
        self._writes += 1
        with self.conn:
            self._delete(path)

    def _delete(self, path: str) -> None:
        row = self.conn.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()
        if row is None:
            return
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE file_id=?", (row[0],))]
        for chunk_id in ids:
            self.conn.execute("DELETE FROM chunks_fts WHERE rowid=?", (chunk_id,))
            self.conn.execute("DELETE FROM chunks_vec WHERE rowid=?", (chunk_id,))
        self.conn.execute("DELETE FROM chunks WHERE file_id=?", (row[0],))
        self.conn.execute("DELETE FROM files WHERE id=?", (row[0],))

    # --- queries ------------------------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        if not self.ready:
            return 0, 0
        files = self.conn.execute("SELECT count(*) FROM files").fetchone()[0]
        chunks = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return files, chunks

    def bm25(self, query: str, limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score; higher is better) for chunks matching any of the query's terms."""
        match = fts_query(query)
        if not match or not self.ready:
            return []
        rows = self.conn.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, limit))
        return [(r[0], -r[1]) for r in rows]

    def nearest(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the `limit` nearest chunks.

        Queries run against an in-memory copy of the vectors (one matrix product: ~1 ms at 10k chunks, where a
        vec0 full scan took ~40 ms here), loaded from sqlite-vec on first use and reloaded when the index changes.
        Vectors are L2-normalised, so the dot product is the cosine similarity.
        """
        if not self.ready:
            return []
        ids, matrix = self._vector_matrix()
        if not len(ids):
            return []
        query = np.asarray(vector, dtype=np.float32)
        scores = matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
        top = np.argpartition(-scores, min(limit, len(ids)) - 1)[:limit] if len(ids) > limit else np.arange(len(ids))
        top = top[np.argsort(-scores[top])]
        return [(int(ids[i]), float(scores[i])) for i in top]

    def _vector_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        # data_version changes when another connection commits; _writes counts this connection's own commits.
        version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if self._matrix is None:
            rows = self.conn.execute("SELECT c.id, c.key, v.embedding FROM chunks c "
                                     "JOIN chunks_vec v ON v.rowid = c.id").fetchall()
            self._set_matrix([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        elif self._matrix_version != version:
            self._update_matrix()
        self._matrix_version = version
        return self._matrix

    def _set_matrix(self, ids: list[int], keys: list[str], blobs: list[bytes]) -> None:
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1) \
            if blobs else np.zeros((0, self.dim or 1), np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._matrix = (np.array(ids, dtype=np.int64), matrix / np.clip(norms, 1e-12, None))
        self._matrix_keys = list(keys)

    def _update_matrix(self) -> None:
        """Bring the in-memory copy up to date after a change: compare (id, content key) pairs, which costs one scan
        of the chunks table, and read only the vectors of new or changed chunks (a one-file change at 100k chunks
        reads a handful of vectors instead of all of them). An id reused for new text shows as a changed key."""
        ids, matrix = self._matrix
        have = dict(zip(ids.tolist(), self._matrix_keys))
        now = self.conn.execute("SELECT id, key FROM chunks").fetchall()
        current = dict(now)
        fresh = [i for i, k in now if have.get(i) != k]
        stay = np.array([current.get(i) == k for i, k in zip(ids.tolist(), self._matrix_keys)], dtype=bool)
        new_ids, new_keys, new_blobs = [], [], []
        for start in range(0, len(fresh), 500):
            part = fresh[start:start + 500]
            marks = ",".join("?" * len(part))
            for rowid, blob in self.conn.execute(f"SELECT rowid, embedding FROM chunks_vec WHERE rowid IN ({marks})",
                                                 tuple(part)):
                new_ids.append(rowid)
                new_keys.append(current[rowid])
                new_blobs.append(blob)
        added = np.frombuffer(b"".join(new_blobs), dtype=np.float32).reshape(len(new_blobs), -1) \
            if new_blobs else np.zeros((0, matrix.shape[1]), np.float32)
        added = added / np.clip(np.linalg.norm(added, axis=1, keepdims=True), 1e-12, None)
        self._matrix = (np.concatenate([ids[stay], np.array(new_ids, dtype=np.int64)]),
                        np.concatenate([matrix[stay], added]) if len(new_ids) or not stay.all() else matrix)
        self._matrix_keys = [k for k, s in zip(self._matrix_keys, stay) if s] + new_keys

    def nearest_sqlite_vec(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """The same search done inside SQLite by sqlite-vec (no memory copy; slower full scan)."""
        rows = self.conn.execute(
            "SELECT rowid, distance FROM chunks_vec WHERE embedding MATCH ? AND k = ? ORDER BY distance",
            (np.asarray(vector, dtype=np.float32).tobytes(), limit))
        return [(r[0], 1.0 - r[1]) for r in rows]

    def chunk_rows(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"SELECT c.id, f.path, c.text, c.start_line, c.end_line, c.page FROM chunks c "
            f"JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})", tuple(ids))
        return {r[0]: ChunkRow(*r) for r in rows}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> str:
    """An FTS5 query that ORs the query's words, each quoted (so user text can never be FTS5 syntax)."""
    if not isinstance(text, str):
        raise InvalidInput("query must be a string")
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


STOPWORDS = frozenset("""
a an and are as at be been but by can could did do does for from had has have how i if in into is it its me my
of on or our so than that the their them then there these they this to was we were what when where which who
whom why will with would you your about after again all am any because before being between both during each
few further he her here hers him his itself just more most no nor not now off once only other out over own same
she should some such too under until up very while yours tell says said know
""".split())
