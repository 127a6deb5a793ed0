"""A fast first pass, then the final model's vectors filled in (`Index.add(first_pass=...)`, `ondevice.rag.upgrade`).

The first pass here is bench's hashing embedder, standing in for the static table distilled from MiniLM (its
one-time distillation takes minutes, too long for the suite; `ondevice rag bench --library N --first-pass` measures
the real one). The final model is the real MiniLM throughout.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.rag_bench import HashEmbedder
from ondevice.rag import Index
from ondevice.rag.embedder import as_embedder
from ondevice.rag.upgrade import fill_vectors
from tests.ondevice.rag.corpus import write_corpus


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    root = tmp_path_factory.mktemp("upgrade")
    qa = write_corpus(root / "notes")
    return root / "notes", qa


def _vectors(index: Index) -> dict[tuple[str, int], np.ndarray]:
    rows = index.store.conn.execute("SELECT f.path, c.ordinal, v.embedding FROM chunks c JOIN files f ON f.id = "
                                    "c.file_id JOIN chunks_vec v ON v.rowid = c.id")
    return {(path, ordinal): np.frombuffer(blob, dtype=np.float32) for path, ordinal, blob in rows}


@pytest.fixture(scope="module")
def direct(notes, tmp_path_factory):
    """The same folder indexed with MiniLM from the start: what an upgraded index must equal."""
    index = Index(tmp_path_factory.mktemp("direct") / "direct.sqlite", embed_model="minilm-l6", threads=2)
    index.add([notes[0]])
    yield index
    index.close()


def test_first_pass_then_fill_equals_indexing_with_the_final_model(notes, direct, tmp_path):
    progress = []
    with Index(tmp_path / "up.sqlite", threads=2) as index:
        summary = index.add([notes[0]], first_pass=HashEmbedder("first-pass-hash"), on_fill=progress.append)
        assert index.store.embed_model == "minilm-l6" and index.store.next_embed_model is None
        assert summary.total_chunks == direct.stats()[1]
        assert progress and progress[-1].done == progress[-1].total == summary.total_chunks
        ours, theirs = _vectors(index), _vectors(direct)
        assert ours.keys() == theirs.keys()
        # batches are composed differently (length buckets over another set of texts): equal to rounding
        assert min(float(ours[k] @ theirs[k]) for k in ours) > 0.9999
        for item in notes[1]:
            got = [(r.path, r.start_line) for r in index.search(item["question"], k=5)]
            want = [(r.path, r.start_line) for r in direct.search(item["question"], k=5)]
            assert got == want, item["question"]


def test_queries_use_the_first_pass_until_the_fill_is_done_and_another_process_sees_the_switch(notes, tmp_path):
    path = tmp_path / "up.sqlite"
    with Index(path, threads=2) as writer:
        writer.add([notes[0]], first_pass=HashEmbedder("first-pass-hash"), fill=False)
        assert writer.store.next_embed_model == "minilm-l6"
        reader = Index(path, create=False)  # a query process (the server), opened during the upgrade
        # it would load the recorded model by name; the hashing stand-in has none, so it is set as loaded
        reader._embedder = as_embedder(HashEmbedder("first-pass-hash"))
        assert reader.search("dentist", k=3)  # answered from the first pass's vectors
        done = writer.fill()
        assert done.finished and done.written == writer.stats()[1]
        results = reader.search("When is my appointment with the dentist?", k=3)
        assert reader.embedder.name == "minilm-l6"  # reloaded after the other connection's swap
        assert reader.store.dim == 384 and results
        reader.close()


def test_a_killed_fill_resumes_without_embedding_again_what_was_written(notes, tmp_path):
    path = tmp_path / "up.sqlite"
    with Index(path, threads=2) as index:
        index.add([notes[0]], first_pass=HashEmbedder("first-pass-hash"), fill=False)
        total = index.stats()[1]
        final = index._filler

        def stop_after_first_batch(event):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            fill_vectors(index.store, final, stop_after_first_batch, batch=8)
        written = len(index.store.conn.execute("SELECT rowid FROM chunks_vec_next").fetchall())
        assert written == 8 and index.store.next_embed_model == "minilm-l6"
    with Index(path, embed_model="minilm-l6", threads=2) as again:  # naming the model being filled is allowed
        result = again.fill()
        assert result.finished and result.written == total - written


def test_files_changed_and_deleted_during_the_upgrade_are_filled_and_dropped(notes, tmp_path):
    import shutil

    folder = tmp_path / "notes"
    shutil.copytree(notes[0], folder)
    with Index(tmp_path / "up.sqlite", threads=2) as index:
        index.add([folder], first_pass=HashEmbedder("first-pass-hash"), fill=False)
        victim = sorted(p for p in folder.rglob("*") if p.is_file())[0]
        assert str(victim.resolve()) in index.store.files()
        victim.unlink()
        (folder / "new-note.md").write_text("# Bicycle\n\nThe saddle height is 74 cm from the pedal axle.\n")
        index.add([folder], fill=False)  # a --watch pass during the upgrade: written with the first pass's model
        result = index.fill()
        assert result.finished
        chunks = index.store.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        assert result.written == chunks
        top = index.search("How high is my bike seat?", k=1)[0]
        assert top.path.endswith("new-note.md")
        assert str(victim.resolve()) not in index.store.files()


def test_an_existing_index_ignores_first_pass(notes, tmp_path):
    with Index(tmp_path / "i.sqlite", threads=2) as index:
        index.add([notes[0]])
        again = index.add([notes[0]], first_pass=HashEmbedder("first-pass-hash"))
        assert index.store.embed_model == "minilm-l6" and again.embedded == 0
