"""Exact nearest-neighbour search over the index's vectors, held in memory, with an int8 first pass.

A query scans every vector of the index. At 100k chunks x 384 dimensions the float32 matrix is 150 MB, and one
matrix-vector product over it took 20-60 ms on the 2-core machines (memory-bound). So the scan runs on an int8
copy (38 MB, one code per component and one scale per row) with NumKong's SIMD integer dot products (about 2 ms
at 100k), and only the rows that can still be among the `k` best are scored again in float32, exactly as before.

Exactness: for each row the error of its int8 score is bounded (Cauchy-Schwarz: |q.(x - x~)| + |(q - q~).x~| <=
|x - x~| + |q - q~| |x~| for a unit query), so every row whose upper bound reaches the k-th best lower bound is
re-scored. The re-scoring, like the reference it must equal, is the float64 product of the stored float32 vectors,
summed row by row: a BLAS product rounds each row's sum differently depending on how many rows it is given, so it
would not even agree with itself. The rows returned, their order and their scores are those of the full float64 product, and
they are the old full float32 product's wherever that had no near-tie (tested).
"""

from __future__ import annotations

import numpy as np

# Slack on top of the int8 error bound, for the float64 rounding of the scores and of the bound itself (~1e-13).
_SLACK = 1e-6


_BLOCK = 8192  # rows quantised at a time: bounds the temporaries (a 100k x 384 float32 copy is 150 MB)


def _quantize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """int8 codes, per-row scales, and per-row norms of the error and of the de-quantised row."""
    if len(rows) <= _BLOCK:
        return _quantize_block(rows)
    parts = [_quantize_block(rows[start:start + _BLOCK]) for start in range(0, len(rows), _BLOCK)]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]


def _quantize_block(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_quantize` in float32 work (the norms' own rounding, ~1e-10 here, is far inside the bound's slack)."""
    peak = np.abs(rows).max(axis=1) if len(rows) else np.zeros(0, np.float32)
    scales = np.where(peak > 0, peak / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
    approx = codes * scales[:, None]
    error = np.linalg.norm(rows - approx, axis=1).astype(np.float64)
    return codes, scales.astype(np.float64), error, np.linalg.norm(approx, axis=1).astype(np.float64)


def _int8_dots(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    try:
        import numkong
    except ImportError:  # the plain NumPy product: same numbers, slower
        return codes.astype(np.float32) @ query.astype(np.float32)
    return np.asarray(numkong.cdist(query[None, :], codes, metric="dot"))[0]


class VectorMatrix:
    """Unit-normalised float32 rows with their ids, and the int8 copy the first pass scans."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.rows = np.ascontiguousarray(rows, dtype=np.float32)  # no copy when it already is
        self.codes, self.scales, self.error, self.norm = _quantize(self.rows)

    @classmethod
    def from_blobs(cls, ids: list[int], blobs: list[bytes], dim: int) -> "VectorMatrix":
        rows = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1) \
            if blobs else np.zeros((0, dim), np.float32)
        return cls(np.array(ids, dtype=np.int64), normalise(rows))

    @classmethod
    def from_cursor(cls, rows, n: int, dim: int) -> tuple["VectorMatrix", list]:
        """From (id, key, float32 blob) rows, read one at a time into one preallocated matrix (reading them all
        first, then joining and normalising, peaked at 1.2 GB at 100k chunks); returns the matrix and the keys."""
        ids = np.empty(n, dtype=np.int64)
        matrix = np.empty((n, dim), dtype=np.float32)
        keys = []
        count = 0
        for count, (chunk_id, key, blob) in enumerate(rows, start=1):
            if count > n:  # more rows than counted: the caller reads inside one transaction, so this is a bug
                raise RuntimeError("the index changed while its vectors were read")
            ids[count - 1] = chunk_id
            matrix[count - 1] = np.frombuffer(blob, dtype=np.float32)
            keys.append(key)
        ids, matrix = ids[:count], matrix[:count]
        for start in range(0, count, _BLOCK):
            block = matrix[start:start + _BLOCK]
            block /= np.clip(np.linalg.norm(block, axis=1, keepdims=True), 1e-12, None)
        return cls(ids, matrix), keys

    def __len__(self) -> int:
        return len(self.ids)

    def keep_and_add(self, keep: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> "VectorMatrix":
        """A copy with the rows where `keep` is true and `rows` (already normalised) appended; only the new rows
        are quantised."""
        out = VectorMatrix.__new__(VectorMatrix)
        codes, scales, error, norm = _quantize(rows)
        out.ids = np.concatenate([self.ids[keep], np.asarray(ids, dtype=np.int64)])
        out.rows = np.concatenate([self.rows[keep], rows])
        out.codes = np.concatenate([self.codes[keep], codes])
        out.scales = np.concatenate([self.scales[keep], scales])
        out.error = np.concatenate([self.error[keep], error])
        out.norm = np.concatenate([self.norm[keep], norm])
        return out

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of every row: the full float64 product, the reference the first pass must match."""
        return _exact(self.rows, unit(query))

    def top(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the `k` rows closest to `query`, best first: exactly the full product's (`scores`)."""
        n = len(self.ids)
        if n == 0 or k < 1:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = unit(query)
        if n <= max(4 * k, 2048):  # small: the full product is as fast
            return self._ranked(np.arange(n), q, k)
        q_peak = float(np.abs(q).max()) or 1.0
        q_scale = q_peak / 127.0
        q_codes = np.clip(np.rint(q / q_scale), -127, 127).astype(np.int8)
        q_error = float(np.linalg.norm(q.astype(np.float64) - q_codes.astype(np.float64) * q_scale))
        approx = _int8_dots(self.codes, q_codes) * (self.scales * q_scale)
        bound = self.error * float(np.linalg.norm(q)) + q_error * self.norm + _SLACK
        lower = approx - bound
        kth = np.partition(lower, n - k)[n - k]  # the k-th best lower bound
        candidates = np.flatnonzero(approx + bound >= kth)
        return self._ranked(candidates, q, k)

    def _ranked(self, rows: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = _exact(self.rows[rows], q)
        top = np.argpartition(-scores, k - 1)[:k] if len(rows) > k else np.arange(len(rows))
        top = top[np.argsort(-scores[top], kind="stable")]
        return self.ids[rows[top]], scores[top]


def _exact(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each row's dot product with `q` in float64, summed the same way whatever the number of rows (a BLAS
    product's rounding depends on the matrix it is given)."""
    return np.multiply(rows, q.astype(np.float64)).sum(axis=1)


def unit(vector: np.ndarray) -> np.ndarray:
    query = np.asarray(vector, dtype=np.float32)
    return query / max(float(np.linalg.norm(query)), 1e-12)


def normalise(rows: np.ndarray) -> np.ndarray:
    return rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)
