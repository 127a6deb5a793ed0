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
from ondevice.rag import lexical
from ondevice.rag.chunking import Chunk
from ondevice.rag.vectors import VectorMatrix, normalise

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
        self._matrix: VectorMatrix | None = None
        self._matrix_version: tuple[int, int] | None = None
        self._matrix_keys: list[str] = []
        self._matrix_model: str | None = None
        self._postings: lexical.Postings | None = None
        self._postings_keys: dict[int, str] = {}
        self._postings_version: tuple[int, int] | None = None
        self._tokenizer_: lexical.Tokenizer | None = None
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
            self._add_term_counts()
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
            """ + lexical.SCHEMA)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('embed_model', ?), ('dim', ?)",
                              (embed_model, str(int(dim))))

    def _add_term_counts(self) -> None:
        """Count the terms of chunks written before the in-memory BM25 existed (once per older index), so that
        queries can use it; one transaction."""
        with self.conn:
            self.conn.execute(lexical.SCHEMA)
            if self.conn.execute("SELECT (SELECT count(*) FROM chunk_terms) = (SELECT count(*) FROM chunks)"
                                 ).fetchone()[0]:
                return  # rows are written and deleted with their chunks: equal counts, nothing missing
            missing = self.conn.execute("SELECT id, text FROM chunks WHERE id NOT IN "
                                        "(SELECT chunk_id FROM chunk_terms)").fetchall()
            for chunk_id, text in missing:
                self.conn.execute("INSERT INTO chunk_terms VALUES (?,?,?,?)", (chunk_id, *self._tokenizer.row(text)))
        if missing:
            self._writes += 1

    @property
    def _tokenizer(self) -> lexical.Tokenizer:
        if self._tokenizer_ is None:
            self._tokenizer_ = lexical.Tokenizer(self.conn)
        return self._tokenizer_

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

    # --- a model upgrade: a fast first pass now, the final model's vectors filled in later -----------------------
    @property
    def next_embed_model(self) -> str | None:
        """The model whose vectors are being filled in (`begin_upgrade`), or None."""
        return self.meta("next_embed_model")

    def begin_upgrade(self, embed_model: str, dim: int) -> None:
        """Start (or keep) filling in vectors of `embed_model` beside the current ones. Queries keep using the
        current model until `finish_upgrade` swaps them in one transaction."""
        if not self.ready:
            raise IndexError_(f"{self.path}: nothing indexed yet to upgrade")
        if embed_model == self.embed_model:
            return
        pending = self.next_embed_model
        if pending == embed_model and self.meta("next_dim") == str(int(dim)):
            return
        with self.conn:
            self.conn.execute("DROP TABLE IF EXISTS chunks_vec_next")
            self.conn.execute(f"CREATE VIRTUAL TABLE chunks_vec_next USING vec0("
                              f"embedding float[{int(dim)}] distance_metric=cosine)")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_embed_model', ?), ('next_dim', ?)",
                              (embed_model, str(int(dim))))

    def upgrade_todo(self) -> list[tuple[int, str, str, str]]:
        """(chunk id, content key, text, file path) of every chunk without a vector of the next model yet."""
        if not self.next_embed_model:
            return []
        with self.conn:  # one read transaction: the done ids and the chunks from the same snapshot
            done = {r[0] for r in self.conn.execute("SELECT rowid FROM chunks_vec_next")}
            rows = self.conn.execute("SELECT c.id, c.key, c.text, f.path FROM chunks c JOIN files f ON f.id = "
                                     "c.file_id ORDER BY c.id").fetchall()
        return [tuple(r) for r in rows if r[0] not in done]

    def write_upgrade(self, rows: Sequence[tuple[int, str, bytes]]) -> int:
        """Store next-model vectors for (chunk id, content key, vector) in one transaction; a chunk deleted or
        rewritten since it was read (its key changed) is skipped. Returns how many were written."""
        if not rows:
            return 0
        written = 0
        with self.conn:
            marks = ",".join("?" * len(rows))
            keys = dict(self.conn.execute(f"SELECT id, key FROM chunks WHERE id IN ({marks})",
                                          tuple(r[0] for r in rows)))
            for chunk_id, key, vector in rows:
                if keys.get(chunk_id) == key:
                    self.conn.execute("DELETE FROM chunks_vec_next WHERE rowid=?", (chunk_id,))
                    self.conn.execute("INSERT INTO chunks_vec_next(rowid, embedding) VALUES (?,?)", (chunk_id, vector))
                    written += 1
        return written

    def finish_upgrade(self) -> bool:
        """Swap the next model's vectors in, in one transaction, once every chunk has one; False (nothing changed)
        while some are missing."""
        target = self.next_embed_model
        if not target:
            return False
        with self.conn:
            missing = self.conn.execute("SELECT count(*) FROM chunks WHERE id NOT IN "
                                        "(SELECT rowid FROM chunks_vec_next)").fetchone()[0]
            if missing:
                return False
            dim = int(self.meta("next_dim"))
            self.conn.execute("DROP TABLE chunks_vec")
            self.conn.execute(f"CREATE VIRTUAL TABLE chunks_vec USING vec0(embedding float[{dim}] "
                              f"distance_metric=cosine)")
            self.conn.execute("INSERT INTO chunks_vec(rowid, embedding) SELECT rowid, embedding FROM chunks_vec_next")
            self.conn.execute("DROP TABLE chunks_vec_next")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('embed_model', ?), ('dim', ?)", (target, str(dim)))
            self.conn.execute("DELETE FROM meta WHERE key IN ('next_embed_model', 'next_dim')")
        self._writes += 1
        self._matrix = None  # another model's vectors: reload, do not patch
        return True

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
        try:
            self._write_file(path, sha256, size, mtime_ns, chunks, vectors)
        except BaseException:
            self._tokenizer.forget()  # ids of terms added in the rolled-back transaction were never stored
            raise

    def _write_file(self, path: str, sha256: str, size: int, mtime_ns: int, chunks: Sequence[Chunk],
                    vectors: Sequence[bytes]) -> None:
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
                self.conn.execute("INSERT INTO chunk_terms VALUES (?,?,?,?)",
                                  (chunk_id, *self._tokenizer.row(chunk.text)))

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
        upgrading = self.next_embed_model is not None
        for chunk_id in ids:
            self.conn.execute("DELETE FROM chunks_fts WHERE rowid=?", (chunk_id,))
            self.conn.execute("DELETE FROM chunks_vec WHERE rowid=?", (chunk_id,))
            self.conn.execute("DELETE FROM chunk_terms WHERE chunk_id=?", (chunk_id,))
            if upgrading:
                self.conn.execute("DELETE FROM chunks_vec_next WHERE rowid=?", (chunk_id,))
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
        """(chunk id, BM25 score; higher is better) for chunks matching any of the query's terms.

        Ranked in memory (`ondevice.rag.lexical`, FTS5's bm25() numbers) when the index has its term counts and
        every query word is one token; otherwise by FTS5."""
        match = fts_query(query)
        if not match or not self.ready:
            return []
        postings = self._lexical()
        if postings is not None:
            tokens = [self._tokenizer.tokens(word, query=True) for word in query_words(query)]
            if all(len(t) == 1 for t in tokens):
                terms = [t[0] for t in tokens]
                marks = ",".join("?" * len(terms))
                ids = dict(self.conn.execute(f"SELECT term, id FROM terms WHERE term IN ({marks})", terms))
                return postings.top([ids.get(t) for t in terms], limit)
        return self.bm25_fts5(query, limit)

    def bm25_fts5(self, query: str, limit: int) -> list[tuple[int, float]]:
        """The same ranking done by FTS5 (`ORDER BY rank`)."""
        match = fts_query(query)
        if not match or not self.ready:
            return []
        rows = self.conn.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, limit))
        return [(r[0], -r[1]) for r in rows]

    def nearest(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the `limit` nearest chunks.

        Queries run against an in-memory copy of the vectors (`ondevice.rag.vectors`: an int8 first pass, then the
        candidates re-scored in float32, exactly; a vec0 full scan took ~40 ms at 10k chunks here), loaded from
        sqlite-vec on first use and brought up to date when the index changes. Vectors are L2-normalised, so the
        dot product is the cosine similarity.
        """
        if not self.ready:
            return []
        vectors = self._vectors()
        ids, scores = vectors.top(vector, limit)
        return [(int(i), float(s)) for i, s in zip(ids, scores)]

    def _vector_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, unit-normalised float32 rows) of the in-memory copy, up to date."""
        vectors = self._vectors()
        return vectors.ids, vectors.rows

    def _vectors(self) -> VectorMatrix:
        # data_version changes when another connection commits; _writes counts this connection's own commits.
        version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if self._matrix is not None and self._matrix_version != version and self._matrix_model != self.embed_model:
            self._matrix = None  # another process finished a model upgrade: other vectors, reload them all
        if self._matrix is None:
            self._matrix_model = self.embed_model
            with self.conn:  # one read transaction: the count and the rows from the same snapshot
                n = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
                self._matrix, self._matrix_keys = VectorMatrix.from_cursor(
                    self.conn.execute("SELECT c.id, c.key, v.embedding FROM chunks c "
                                      "JOIN chunks_vec v ON v.rowid = c.id"), n, self.dim or 1)
        elif self._matrix_version != version:
            self._update_matrix()
        self._matrix_version = version
        return self._matrix

    def _lexical(self) -> lexical.Postings | None:
        """The in-memory BM25, loaded on first use and kept current like the vectors; None for an index whose
        chunks are not all counted yet (written before it existed and not re-indexed since)."""
        version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if version == self._postings_version:
            return self._postings
        if self._postings is None:
            with self.conn:  # one read transaction: counts and rows from the same snapshot
                tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                counted = "chunk_terms" in tables and self.conn.execute(
                    "SELECT (SELECT count(*) FROM chunk_terms) = (SELECT count(*) FROM chunks)").fetchone()[0]
                if counted:
                    rows = self.conn.execute("SELECT t.chunk_id, t.tokens, t.term_ids, t.counts, c.key FROM "
                                             "chunk_terms t JOIN chunks c ON c.id = t.chunk_id").fetchall()
                    self._postings = lexical.Postings.build(rows)
                    self._postings_keys = {r[0]: r[4] for r in rows}
        else:
            with self.conn:  # one read transaction: the keys and the rows read for them agree
                now = dict(self.conn.execute("SELECT id, key FROM chunks").fetchall())
                have = self._postings_keys
                gone = {i for i, k in have.items() if now.get(i) != k}
                fresh = [i for i, k in now.items() if have.get(i) != k]
                if gone or fresh:
                    self._postings.update(self.conn, gone, fresh)
            self._postings_keys = now
        self._postings_version = version
        return self._postings

    def _update_matrix(self) -> None:
        """Bring the in-memory copy up to date after a change: compare (id, content key) pairs, which costs one scan
        of the chunks table, and read only the vectors of new or changed chunks (a one-file change at 100k chunks
        reads a handful of vectors instead of all of them). An id reused for new text shows as a changed key."""
        vectors = self._matrix
        have = dict(zip(vectors.ids.tolist(), self._matrix_keys))
        now = self.conn.execute("SELECT id, key FROM chunks").fetchall()
        current = dict(now)
        fresh = [i for i, k in now if have.get(i) != k]
        stay = np.array([current.get(i) == k for i, k in zip(vectors.ids.tolist(), self._matrix_keys)], dtype=bool)
        if not fresh and stay.all():
            return
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
            if new_blobs else np.zeros((0, vectors.rows.shape[1]), np.float32)
        self._matrix = vectors.keep_and_add(stay, np.array(new_ids, dtype=np.int64), normalise(added))
        self._matrix_keys = [k for k, s in zip(self._matrix_keys, stay) if s] + new_keys

    def nearest_sqlite_vec(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """The same search done inside SQLite by sqlite-vec (no memory copy; slower full scan)."""
        rows = self.conn.execute(
            "SELECT rowid, distance FROM chunks_vec WHERE embedding MATCH ? AND k = ? ORDER BY distance",
            (np.asarray(vector, dtype=np.float32).tobytes(), limit))
        return [(r[0], 1.0 - r[1]) for r in rows]

    def chunk_files(self, ids: Sequence[int]) -> dict[int, int]:
        """chunk id -> file id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self.conn.execute(f"SELECT id, file_id FROM chunks WHERE id IN ({marks})", tuple(ids)))

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


def query_words(text: str) -> list[str]:
    """The words BM25 looks for: the query's words, lower-cased, without stopwords or repeats, in order."""
    if not isinstance(text, str):
        raise InvalidInput("query must be a string")
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS))


def fts_query(text: str) -> str:
    """An FTS5 query that ORs the query's words, each quoted (so user text can never be FTS5 syntax)."""
    return " OR ".join(f'"{w}"' for w in query_words(text))


STOPWORDS = frozenset("""
a an and are as at be been but by can could did do does for from had has have how i if in into is it its me my
of on or our so than that the their them then there these they this to was we were what when where which who
whom why will with would you your about after again all am any because before being between both during each
few further he her here hers him his itself just more most no nor not now off once only other out over own same
she should some such too under until up very while yours tell says said know
""".split())
