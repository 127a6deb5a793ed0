"""A fast first pass now, the final embedding model later: fill in an index's vectors of a better model.

`ondevice rag index --first-pass minilm-l6-static` (or `Index.add(paths, first_pass=...)`) indexes a new folder with
the static table distilled from MiniLM, thousands of chunks per second, so the index answers name and identifier
questions (BM25) and rough similarity within about a minute even for 50,000 chunks; then `fill_vectors` embeds every
chunk again with the final model (MiniLM) into a second vector table, 256 chunks per transaction, and swaps it in
when every chunk has one (`IndexStore.finish_upgrade`, one transaction). Until the swap, queries use the first
pass's vectors; afterwards the index is exactly what indexing with the final model from the start would have made
(tested). A killed fill resumes where it stopped: chunks already filled are not embedded again, and files changed
meanwhile are filled on the next pass. Chunks with the same text are embedded once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ondevice.rag.chunking import Chunk, title_context
from ondevice.rag.embedder import Embedder
from ondevice.rag.store import IndexStore

FILL_BATCH = 256  # chunks per embedding call and per transaction


@dataclass
class FillProgress:
    """Sent to `on_progress` after each batch."""

    done: int
    total: int
    embeddings_per_s: float
    elapsed_s: float
    eta_s: float | None


@dataclass
class FillSummary:
    """What one fill pass did."""

    embed_model: str          # the model whose vectors were filled in
    embedded: int = 0         # chunk texts embedded (texts shared by several chunks count once)
    written: int = 0          # chunk vectors stored
    finished: bool = False    # every chunk had one, and the index now uses this model
    seconds: float = 0.0

    @property
    def embeddings_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def fill_vectors(store: IndexStore, embedder: Embedder, on_progress: Callable[[FillProgress], None] | None = None,
                 batch: int = FILL_BATCH) -> FillSummary:
    """Embed every chunk that lacks a vector of the upgrade's model (`store.next_embed_model`) and swap them in.

    Chunks written while this runs (a `--watch` pass, the server's indexer) are picked up by a second look before
    the swap; the swap happens only when none is missing."""
    from ondevice.rag import indexer

    target = store.next_embed_model
    if target is None:
        raise ValueError("this index has no model upgrade in progress")
    if embedder.name != target:
        raise ValueError(f"the upgrade fills {target!r} vectors, not {embedder.name!r}")
    summary = FillSummary(target)
    t0 = time.perf_counter()
    for _ in range(3):  # a pass, then what was written meanwhile; a folder that never stops changing waits
        todo = store.upgrade_todo()
        total = len(todo)
        for start in range(0, total, batch):
            part = todo[start:start + batch]
            texts: dict[str, str] = {}
            for _chunk_id, key, text, path in part:
                context = title_context(path) if indexer.TITLE_CONTEXT else ""
                texts.setdefault(key, Chunk(text, 0, context=context).embed_text)  # the indexer's embedded text
            vectors = dict(zip(texts, embedder.embed(list(texts.values()))))
            summary.embedded += len(texts)
            summary.written += store.write_upgrade([(chunk_id, key, vectors[key].astype("float32").tobytes())
                                                    for chunk_id, key, _text, _path in part])
            if on_progress:
                elapsed = time.perf_counter() - t0
                done = start + len(part)
                rate = summary.embedded / elapsed if elapsed > 0 else 0.0
                on_progress(FillProgress(done, total, rate, elapsed,
                                         (total - done) * elapsed / done if done else None))
        if store.finish_upgrade():
            summary.finished = True
            break
    summary.seconds = time.perf_counter() - t0
    return summary
