"""BM25 in memory (`ondevice.rag.lexical`) gives FTS5's own bm25() ranking and numbers, and stays current."""

from __future__ import annotations

import random

import pytest

from ondevice.rag import Index
from bench.rag_bench import HashEmbedder, _vocabulary
from ondevice.rag.library import write_library


def _queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = _vocabulary()
    queries = [" ".join(rng.choices(words, k=rng.randint(1, 8))) for _ in range(n)]
    # names, numbers, a stemmed pair counted twice, a word no chunk has, accents, only stopwords
    return queries + ["locker code Amber Heron", "booking reference 2027", "running runs run", "zyxxyqq class",
                      "café naïve", "the and of", "What is the ticket number for the printer?"]


def _same(store, queries: list[str], limit: int = 50) -> None:
    for query in queries:
        assert store.bm25(query, limit) == store.bm25_fts5(query, limit), query


@pytest.fixture(scope="module")
def library_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("lexical")
    write_library(root / "lib", 60)
    index = Index(root / "i.sqlite", embedder=HashEmbedder())
    index.add([root / "lib"])
    yield index, root
    index.close()


def test_in_memory_bm25_equals_fts5_ranking_and_scores(library_index):
    index, _ = library_index
    assert index.store._lexical() is not None  # the in-memory path is the one under test
    _same(index.store, _queries(150, 0))
    _same(index.store, _queries(30, 1), limit=5)


def test_it_follows_added_changed_and_deleted_files(library_index):
    index, root = library_index
    index.store.bm25("warm up", 5)  # loaded before the changes
    files = sorted(p for p in (root / "lib").rglob("*") if p.suffix in (".md", ".txt"))
    files[0].write_text("# Changed\n\nThe locker code for Amber Heron is now 1234. Running shoes in locker 7.\n")
    files[1].unlink()
    (root / "lib" / "new.md").write_text("# New\n\nBooking reference for the Misty Otter trip: QA-1111.\n")
    index.add([root / "lib"])
    assert len(index.store._lexical().segments) == 2  # the change was loaded as a segment, not everything again
    _same(index.store, _queries(80, 2) + ["Misty Otter booking", "Running shoes locker"])


def test_an_index_written_before_term_counts_is_counted_once_and_then_identical(library_index, tmp_path):
    import shutil

    from ondevice.rag.store import IndexStore

    index, _ = library_index
    old = tmp_path / "old.sqlite"
    index.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(index.store.path, old)
    store = IndexStore(old)
    with store.conn:
        store.conn.execute("DROP TABLE chunk_terms; DROP TABLE terms")
    assert store._lexical() is None  # queries fall back to FTS5 ...
    assert store.bm25("locker code", 5) == store.bm25_fts5("locker code", 5)
    store.initialise(index.store.embed_model, index.store.dim)  # ... until the next index run counts the terms
    assert store._lexical() is not None
    _same(store, _queries(40, 3))
    store.close()


def test_a_word_fts5_reads_as_a_phrase_is_ranked_by_fts5(library_index, monkeypatch):
    index, _ = library_index
    store = index.store
    monkeypatch.setattr(type(store), "bm25_fts5", lambda self, q, n: [("fts5", q)])
    assert store.bm25("snake_case names", 5) == [("fts5", "snake_case names")]
    assert store.bm25("plain words", 5) != [("fts5", "plain words")]
