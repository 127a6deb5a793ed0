"""The in-memory vector search: the int8 first pass must return exactly what the full float32 product ranks."""

from __future__ import annotations

import numpy as np
import pytest

from ondevice.rag.vectors import VectorMatrix, normalise, unit


def _reference(matrix: VectorMatrix, query: np.ndarray, k: int):
    scores = matrix.scores(query)
    order = np.argsort(-scores, kind="stable")[:k]
    return matrix.ids[order], scores[order]


def _old_float32(matrix: VectorMatrix, query: np.ndarray, k: int):
    """What the index did before the first pass: one float32 product over the whole matrix."""
    scores = matrix.rows @ unit(query)
    order = np.argsort(-scores, kind="stable")[:k]
    return matrix.ids[order], scores[order]


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Rows crowded around a few centres (as sentence embeddings are), with many near-ties."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim)).astype(np.float32)
    rows = centres[rng.integers(0, 12, n)] + 0.15 * rng.standard_normal((n, dim)).astype(np.float32)
    rows[::97] = rows[1::97][: len(rows[::97])]  # exact duplicates too
    return normalise(rows)


@pytest.mark.parametrize("kind", ["random", "clustered"])
@pytest.mark.parametrize("k", [1, 5, 50])
def test_first_pass_returns_the_full_products_top_k_in_order_with_its_scores(kind, k):
    rng = np.random.default_rng(1)
    rows = normalise(rng.standard_normal((12_000, 384)).astype(np.float32)) if kind == "random" else \
        _clustered(12_000, 384, 2)
    matrix = VectorMatrix(np.arange(12_000) * 3 + 7, rows)
    for q in range(8):
        query = rows[q * 101] + 0.05 * rng.standard_normal(384).astype(np.float32) if q % 2 else \
            rng.standard_normal(384).astype(np.float32)
        ids, scores = matrix.top(query, k)
        want_ids, want_scores = _reference(matrix, query, k)
        assert np.array_equal(scores, want_scores)  # the same numbers, in the same order
        all_scores = np.sort(matrix.scores(query))[::-1][: k + 1]
        if np.all(np.diff(all_scores) < 0):  # no exact tie down to the (k+1)-th: the same rows in the same order
            assert np.array_equal(ids, want_ids)
        old_ids, _ = _old_float32(matrix, query, k)
        if np.all(-np.diff(all_scores) > 1e-6):  # and the old float32 product's, wherever it had no near-tie
            assert np.array_equal(ids, old_ids)


def test_updates_quantise_only_new_rows_and_equal_a_fresh_build():
    rows = _clustered(5_000, 64, 3)
    matrix = VectorMatrix(np.arange(5_000), rows)
    keep = np.ones(5_000, bool)
    keep[::7] = False
    added = _clustered(300, 64, 4)
    updated = matrix.keep_and_add(keep, np.arange(10_000, 10_300), added)
    fresh = VectorMatrix(np.concatenate([np.arange(5_000)[keep], np.arange(10_000, 10_300)]),
                         np.concatenate([rows[keep], added]))
    for name in ("ids", "rows", "codes", "scales", "error", "norm"):
        assert np.array_equal(getattr(updated, name), getattr(fresh, name)), name
    query = added[5]
    assert np.array_equal(updated.top(query, 10)[0], fresh.top(query, 10)[0])
    assert updated.top(query, 1)[0][0] == 10_005


def test_empty_and_small_matrices():
    empty = VectorMatrix(np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    assert len(empty.top(np.ones(8), 5)[0]) == 0
    small = VectorMatrix(np.arange(3), normalise(np.eye(3, 8, dtype=np.float32)))
    ids, scores = small.top(np.eye(1, 8, 1, dtype=np.float32)[0], 10)
    assert ids.tolist()[0] == 1 and len(ids) == 3 and scores[0] == pytest.approx(1.0)
