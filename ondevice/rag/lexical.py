"""BM25 in memory, with the same numbers as SQLite FTS5's `bm25()` over the index's `chunks_fts` table.

Why: FTS5 ranks an OR of a question's words by calling `bm25()` on every row that has any of them; at 100k chunks
a question of ordinary words matches about half the rows, and that took 45 ms of CPU (p50, 90 ms p95) on the
2-core machines, more than the whole query's budget. Here the same ranking is a few NumPy operations over the
posting lists of the query's terms.

Same numbers: every chunk's terms are counted by FTS5's own tokenizer (`porter unicode61`, through apsw) when the
chunk is written, and stored beside it (`chunk_terms`: token count, term ids, counts; `terms`: the vocabulary).
The score is FTS5's formula, operation for operation in float64: IDF = ln((N - n + 0.5) / (n + 0.5)), 1e-6 when
that is not positive; score = sum over the query's phrases, in order, of IDF * f * (k1 + 1) / (f + k1 * (1 - b +
b * D / avgdl)) with k1 = 1.2, b = 0.75, D the chunk's tokens and avgdl the mean over all chunks. Ties go to the
lower chunk id. Tested against FTS5 itself. A query word that FTS5 would read as a phrase of several tokens
(`foo_bar`), or an index written before this table existed, is ranked by FTS5 as before.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

K1 = 1.2
B = 0.75
TOKENIZER = ("porter", ["unicode61"])  # must be the chunks_fts table's: tokenize='porter unicode61'

SCHEMA = """
    CREATE TABLE IF NOT EXISTS terms(id INTEGER PRIMARY KEY, term TEXT UNIQUE NOT NULL);
    CREATE TABLE IF NOT EXISTS chunk_terms(chunk_id INTEGER PRIMARY KEY, tokens INTEGER NOT NULL,
                                           term_ids BLOB NOT NULL, counts BLOB NOT NULL);
"""


class Tokenizer:
    """FTS5's tokenizer of the index, called from Python (apsw), with the term ids of the `terms` table."""

    def __init__(self, conn):
        import apsw

        self._conn = conn
        self._tokenize = conn.fts5_tokenizer(*TOKENIZER)
        self._document, self._query = apsw.FTS5_TOKENIZE_DOCUMENT, apsw.FTS5_TOKENIZE_QUERY
        self._ids: dict[str, int] | None = None

    def tokens(self, text: str, query: bool = False) -> list[str]:
        return self._tokenize(text.encode("utf-8"), self._query if query else self._document, None,
                              include_offsets=False, include_colocated=False)

    def row(self, text: str) -> tuple[int, bytes, bytes]:
        """(token count, term ids, counts) of a chunk, adding new terms to the vocabulary (inside the caller's
        transaction)."""
        tokens = self.tokens(text)
        counts = Counter(tokens)
        if self._ids is None:
            self._ids = dict(self._conn.execute("SELECT term, id FROM terms"))
        ids = []
        for term in counts:
            term_id = self._ids.get(term)
            if term_id is None:  # another process may have added it since we read the vocabulary
                self._conn.execute("INSERT OR IGNORE INTO terms(term) VALUES (?)", (term,))
                term_id = self._conn.execute("SELECT id FROM terms WHERE term=?", (term,)).fetchone()[0]
                self._ids[term] = term_id
            ids.append(term_id)
        values = np.fromiter(counts.values(), dtype=np.uint32, count=len(counts))
        return len(tokens), np.array(ids, dtype=np.uint32).tobytes(), \
            (values.astype(np.uint16) if values.max(initial=0) < 65536 else values).tobytes()

    def forget(self) -> None:
        """Drop the cached vocabulary (after a rolled-back transaction, its new ids were never stored)."""
        self._ids = None


@dataclass
class _Segment:
    """Chunks loaded together: their posting lists grouped by term."""

    ids: np.ndarray        # chunk ids, ascending
    tokens: np.ndarray     # float64 token count per chunk
    alive: np.ndarray      # False once the chunk is deleted or changed
    terms: np.ndarray      # term ids present, ascending
    starts: np.ndarray     # postings of terms[i]: docs[starts[i]:starts[i + 1]]
    docs: np.ndarray       # int32 index into ids
    counts: np.ndarray     # term frequency

    @classmethod
    def build(cls, rows: list[tuple]) -> "_Segment":
        rows = sorted(rows, key=lambda r: r[0])
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        tokens = np.array([r[1] for r in rows], dtype=np.float64)
        lengths = np.array([len(r[2]) // 4 for r in rows], dtype=np.int64)
        all_terms = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint32)
        counts = b"".join(r[3] for r in rows)
        if len(counts) == 2 * len(all_terms):  # every row's counts fit in 16 bits (chunks are far shorter)
            all_counts = np.frombuffer(counts, dtype=np.uint16)
        else:
            all_counts = np.concatenate([np.frombuffer(r[3], dtype=np.uint16 if len(r[3]) == len(r[2]) // 2
                                                       else np.uint32).astype(np.uint32) for r in rows])
        docs = np.repeat(np.arange(len(rows), dtype=np.int32), lengths)
        order = np.argsort(all_terms, kind="stable")  # stable: each term's postings stay in chunk-id order
        sorted_terms = all_terms[order]
        terms, starts = np.unique(sorted_terms, return_index=True)
        return cls(ids, tokens, np.ones(len(rows), dtype=bool), terms,
                   np.append(starts, len(sorted_terms)).astype(np.int64), docs[order], all_counts[order])

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(np.searchsorted(self.terms, term_id))
        if i == len(self.terms) or self.terms[i] != term_id:
            return self.docs[:0], self.counts[:0]
        docs = self.docs[self.starts[i]:self.starts[i + 1]]
        counts = self.counts[self.starts[i]:self.starts[i + 1]]
        keep = self.alive[docs]
        return (docs, counts) if keep.all() else (docs[keep], counts[keep])


@dataclass
class Postings:
    """The in-memory BM25 of one index: segments of chunks, kept current by `update`."""

    segments: list[_Segment] = field(default_factory=list)

    @classmethod
    def build(cls, rows: list[tuple]) -> "Postings":
        """From `chunk_terms` rows: (chunk id, tokens, term ids, counts, ...)."""
        return cls([_Segment.build(rows)])

    @classmethod
    def load(cls, conn) -> "Postings":
        return cls.build(conn.execute("SELECT chunk_id, tokens, term_ids, counts FROM chunk_terms").fetchall())

    def chunk_ids(self) -> set[int]:
        return {int(i) for s in self.segments for i in s.ids[s.alive]}

    def update(self, conn, removed: set[int], added: list[int]) -> None:
        """Mark `removed` chunk ids dead and load the rows of `added` ones as a new segment; everything is loaded
        again once the segments would be many."""
        for segment in self.segments:
            if removed:
                segment.alive &= ~np.isin(segment.ids, np.fromiter(removed, dtype=np.int64, count=len(removed)))
        if added:
            rows = []
            for start in range(0, len(added), 500):
                part = added[start:start + 500]
                rows += conn.execute(f"SELECT chunk_id, tokens, term_ids, counts FROM chunk_terms WHERE chunk_id IN "
                                     f"({','.join('?' * len(part))})", tuple(part)).fetchall()
            self.segments.append(_Segment.build(rows))
        dead = sum(int((~s.alive).sum()) for s in self.segments)
        if len(self.segments) > 8 or dead > 0.2 * sum(len(s.ids) for s in self.segments):
            self.segments = Postings.load(conn).segments

    def top(self, term_ids: list[int | None], k: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score; higher is better) of the `k` best chunks having any of the query's terms, one
        term id per phrase in query order (None: a term no chunk has)."""
        n_rows = sum(int(s.alive.sum()) for s in self.segments)
        if n_rows == 0 or k < 1:
            return []
        avgdl = float(sum(s.tokens[s.alive].sum() for s in self.segments)) / float(n_rows)
        lists = [[s.postings(t) if t is not None else (s.docs[:0], s.counts[:0]) for s in self.segments]
                 for t in term_ids]
        scores = [np.zeros(len(s.ids), dtype=np.float64) for s in self.segments]
        hit = [np.zeros(len(s.ids), dtype=bool) for s in self.segments]
        for per_segment in lists:
            n_hit = sum(len(docs) for docs, _ in per_segment)
            idf = math.log((n_rows - n_hit + 0.5) / (n_hit + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            for segment, (docs, counts), score, seen in zip(self.segments, per_segment, scores, hit):
                if not len(docs):
                    continue
                f = counts.astype(np.float64)
                d = segment.tokens[docs]
                score[docs] += idf * ((f * (K1 + 1.0)) / (f + K1 * (1 - B + B * d / avgdl)))
                seen[docs] = True
        ids = np.concatenate([s.ids[h] for s, h in zip(self.segments, hit)])
        values = np.concatenate([sc[h] for sc, h in zip(scores, hit)])
        if len(ids) > k:  # everything scoring at least the k-th best, then ties by chunk id
            kth = np.partition(values, len(values) - k)[len(values) - k]
            keep = values >= kth
            ids, values = ids[keep], values[keep]
        order = np.lexsort((ids, -values))[:k]
        return [(int(ids[i]), float(values[i])) for i in order]
