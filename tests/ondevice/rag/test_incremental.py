"""Incremental indexing: only changed content is embedded, deletions drop chunks, renames reuse vectors, and a
SIGKILL mid-run leaves an index that opens and that the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import apsw
import pytest

from ondevice.rag import Index
from tests.ondevice.rag.documents import write_corrupt_pdf, write_docx, write_encrypted_docx, write_pdf


@pytest.fixture
def folder(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# Alpha\n\nThe alpha launch window opens on 14 May.\n\n## Crew\n\nFour people.\n")
    (notes / "b.txt").write_text("Beta notes: the beta budget is 3,400 euros.\n\nApproved by Ines.\n")
    (notes / "c.md").write_text("# Gamma\n\nGamma is postponed until the audit closes.\n")
    return notes


def _embedded(index, run):
    before = index.embedder.stats.texts
    summary = run()
    return summary, index.embedder.stats.texts - before


def test_second_run_embeds_nothing_when_nothing_changed(folder, embedder, tmp_path):
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        first, n_first = _embedded(index, lambda: index.add([folder]))
        assert first.added == 3 and n_first == first.embedded > 0
        again, n_again = _embedded(index, lambda: index.add([folder]))
        assert (again.unchanged, again.added, again.updated, n_again) == (3, 0, 0, 0)


def test_changed_file_is_re_embedded_and_others_are_not(folder, embedder, tmp_path):
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        index.add([folder])
        (folder / "b.txt").write_text("Beta notes: the beta budget is now 5,100 euros.\n\nApproved by Ines.\n")
        summary, n = _embedded(index, lambda: index.add([folder]))
        assert (summary.updated, summary.unchanged, summary.added) == (1, 2, 0)
        assert n == 1  # one chunk's text changed; a.md and c.md were not even read
        top = index.search("beta budget", k=1)[0]
        assert top.path.endswith("b.txt") and "5,100" in top.text


def test_touched_but_identical_file_is_not_re_embedded(folder, embedder, tmp_path):
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        index.add([folder])
        os.utime(folder / "a.md", ns=(1, 1))
        summary, n = _embedded(index, lambda: index.add([folder]))
        assert (summary.unchanged, n) == (3, 0)


def test_deleted_file_is_dropped(folder, embedder, tmp_path):
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        index.add([folder])
        files, chunks = index.stats()
        (folder / "c.md").unlink()
        summary = index.add([folder])
        assert summary.deleted == 1 and index.stats()[0] == files - 1 and index.stats()[1] < chunks
        assert all(not h.path.endswith("c.md") for h in index.search("gamma audit postponed", k=5))


def test_renamed_file_is_not_re_embedded(folder, embedder, tmp_path):
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        index.add([folder])
        (folder / "sub").mkdir()
        (folder / "a.md").rename(folder / "sub" / "alpha-renamed.md")
        summary, n = _embedded(index, lambda: index.add([folder]))
        assert (summary.renamed, summary.deleted, summary.added, n) == (1, 0, 0, 0)
        assert index.search("alpha launch window", k=1)[0].path.endswith("sub/alpha-renamed.md")


def test_corrupt_pdf_and_encrypted_docx_are_skipped_and_listed(folder, embedder, tmp_path):
    write_pdf(folder / "ok.pdf", [["Intro page."], ["The locker combination is 4-8-15."]])
    write_docx(folder / "ok.docx", "Plan", ["The offsite is in Porto.", "Bring walking shoes."])
    write_corrupt_pdf(folder / "broken.pdf")
    write_encrypted_docx(folder / "secret.docx")
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        summary = index.add([folder])
        assert sorted(Path(f.path).name for f in summary.failed) == ["broken.pdf", "secret.docx"]
        assert "PDF" in next(f.reason for f in summary.failed if f.path.endswith(".pdf"))
        assert summary.added == 5
        hit = index.search("locker combination", k=1)[0]
        assert hit.path.endswith("ok.pdf") and hit.page == 2 and hit.start_line is None
        hit = index.search("offsite Porto", k=1)[0]
        assert hit.path.endswith("ok.docx") and hit.start_line == 1 and hit.end_line == 3


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from ondevice.rag import Index
    from bench.rag_bench import HashEmbedder

    def progress(event):
        print(event.files_done, flush=True)
        time.sleep(0.05)  # keep the run going long enough to be killed in the middle

    Index(sys.argv[1], embedder=HashEmbedder()).add([sys.argv[2]], on_progress=progress)
    print("finished", flush=True)
""")


def test_sigkill_mid_run_leaves_an_index_that_opens_and_the_next_run_completes(tmp_path):
    from bench.rag_bench import HashEmbedder, write_corpus

    write_corpus(tmp_path / "files", 400)
    db = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(db), str(tmp_path / "files")],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    for _ in range(3):  # a few batches written (the first progress line only means "started")
        line = proc.stdout.readline()
        assert line and line.strip() != "finished"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    conn = apsw.Connection(str(db))  # the file is a consistent SQLite database
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Index(db, embedder=HashEmbedder()) as index:
        partial_files, partial_chunks = index.stats()
        assert 0 < partial_files < 400
        summary = index.add([tmp_path / "files"])
        assert summary.added == 400 - partial_files and summary.unchanged == partial_files
        # what the killed run wrote is not embedded again: only the missing files' chunks (all distinct texts)
        assert summary.embedded == index.stats()[1] - partial_chunks and summary.reused_vectors == 0
        assert index.stats()[0] == 400
        n_chunks = index.store.conn.execute("SELECT sum(n_chunks) FROM files").fetchone()[0]
        assert index.stats()[1] == n_chunks  # no orphaned or missing chunks
        assert index.store.conn.execute("SELECT count(*) FROM chunks_vec").fetchone()[0] == n_chunks
        # the in-memory BM25's term counts were written with their chunks: complete, and FTS5's ranking
        assert index.store.conn.execute("SELECT count(*) FROM chunk_terms").fetchone()[0] == n_chunks
        assert index.store._lexical() is not None
        assert index.store.bm25("reference note section", 20) == index.store.bm25_fts5("reference note section", 20)


def test_watch_reindexes_when_a_file_appears(folder, embedder, tmp_path):
    import threading

    from ondevice.rag.watch import watch

    updates, stop = [], threading.Event()
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        index.add([folder])

        def on_update(summary):
            updates.append(summary)
            stop.set()

        thread = threading.Thread(target=watch, args=(index, [folder]),
                                  kwargs={"debounce": 0.3, "on_update": on_update, "stop": stop})
        thread.start()
        import time

        time.sleep(0.5)  # let the observer start
        (folder / "d.md").write_text("# Delta\n\nThe delta review is on Friday.\n")
        thread.join(timeout=60)
        stop.set()
        assert updates and updates[0].added == 1
        assert index.search("delta review", k=1)[0].path.endswith("d.md")


def test_in_memory_vectors_follow_changes_without_reloading_everything(tmp_path):
    """After files change, the query-side matrix is updated from (id, key) pairs: it must equal a fresh load."""
    from bench.rag_bench import HashEmbedder, write_corpus
    from ondevice.rag.store import IndexStore

    write_corpus(tmp_path / "files", 30)
    with Index(tmp_path / "m.sqlite", embedder=HashEmbedder()) as index:
        index.add([tmp_path / "files"])
        index.store.nearest(np.ones(384, np.float32), 5)  # loads the matrix
        notes = sorted((tmp_path / "files").rglob("*.md"))
        notes[0].write_text("# Changed\n\nA completely new paragraph about tomato seedlings.\n")
        notes[1].unlink()
        (tmp_path / "files" / "new.md").write_text("# New\n\nAnother note about the boiler pressure valve.\n")
        notes[-1].unlink()  # the highest chunk ids: SQLite may hand them out again to the new chunks
        index.add([tmp_path / "files"])
        index.store.conn.execute("SELECT 1").fetchall()
        ids, matrix = index.store._vector_matrix()
        fresh = IndexStore(index.store.path)
        try:
            fresh_ids, fresh_matrix = fresh._vector_matrix()
        finally:
            fresh.close()
    order, fresh_order = np.argsort(ids), np.argsort(fresh_ids)
    assert (ids[order] == fresh_ids[fresh_order]).all()
    assert np.allclose(matrix[order], fresh_matrix[fresh_order])
