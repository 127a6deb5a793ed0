"""The public RAG object: `Index(path).add(paths)`, `.search(query, k)`, `.ask(question, model=...)`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ondevice.model import load_or_use
from ondevice.rag.answer import (Answer, answer_extractive, answer_model, answer_question, answer_routed,
                                 resolve_mode)
from ondevice.rag.embedder import Embedder, TextEmbedder, as_embedder, load_embedder
from ondevice.rag.indexer import IndexProgress, IndexSummary, index_paths
from ondevice.rag.readers import DEFAULT_MAX_BYTES
from ondevice.rag.retrieve import SearchResult, check_query, is_relevant, rerank, search
from ondevice.rag.store import IndexError_, IndexStore
from ondevice.rag.upgrade import FillProgress, FillSummary, fill_vectors
from ondevice.models.store import DEFAULT_EMBED_MODEL, DEFAULT_MODEL, store_dir

DEFAULT_INDEX = "default"


def index_path(name: str | os.PathLike | None = None) -> Path:
    """Where an index lives: a path (contains a separator or ends in .sqlite/.db) or a name under the store."""
    text = str(name or DEFAULT_INDEX)
    if os.sep in text or "/" in text or text.endswith((".sqlite", ".db")):
        return Path(text).expanduser().resolve()
    return store_dir() / "rag" / f"{text}.sqlite"


class Index:
    """A searchable index of local files in one SQLite file.

    `embed_model` defaults to the one the index was built with (or `minilm-l6` for a new index); naming a
    different one for an existing index raises EmbeddingModelMismatch (naming the model an upgrade is filling in,
    see `add(first_pass=...)`, is allowed: queries use the current vectors until the fill is done). `embedder` passes an already loaded model
    (anything with `name` and `embed(texts)`). `create=False` makes a missing index an error (for queries).
    """

    def __init__(self, path: str | os.PathLike | None = None, embed_model: str | None = None,
                 embedder: TextEmbedder | None = None, create: bool = True, threads: int | None = None):
        self.path = index_path(path)
        if not create and not self.path.exists():
            raise IndexError_(f"no index named {str(path or DEFAULT_INDEX)!r} (looked for {self.path}); "
                              f"build one with `ondevice rag index PATH`")
        self.store = IndexStore(self.path)
        self._embedder = as_embedder(embedder) if embedder is not None else None
        self._embed_model = str(embed_model) if embed_model else None
        self._threads = threads
        self._given = embedder is not None  # a caller's model is never swapped for another
        self._filler: Embedder | None = None  # the model an upgrade fills in
        recorded = self.store.embed_model
        if recorded and self._embed_model and self._embed_model not in (recorded, self.store.next_embed_model):
            self.store.check_model(self._embed_model)  # raises, before loading anything
        if recorded and self._embedder is not None:
            self.store.check_model(self._embedder.name)

    @property
    def embedder(self) -> Embedder:
        """The model of the vectors the index holds now (it changes once when an upgrade's fill finishes, in this
        process or another one)."""
        recorded = self.store.embed_model
        if self._embedder is not None and recorded and self._embedder.name != recorded and not self._given:
            self._embedder.close()
            self._embedder = None
        if self._embedder is None:
            self._embedder = load_embedder(recorded or self._embed_model or DEFAULT_EMBED_MODEL, self._threads)
        return self._embedder

    # --- building -----------------------------------------------------------------------------------------------
    def add(self, paths: str | os.PathLike | Sequence[str | os.PathLike], exclude: Iterable[str] = (),
            max_bytes: int = DEFAULT_MAX_BYTES,
            on_progress: Callable[[IndexProgress], None] | None = None,
            first_pass: str | TextEmbedder | None = None,
            fill: bool = True, on_fill: Callable[[FillProgress], None] | None = None) -> IndexSummary:
        """Index files and folders (incrementally: only what changed since the last run is re-read).

        first_pass: for a new index, embed with this fast model first (a name, e.g. "minilm-l6-static", or a
        loaded model), so the index is searchable within a minute at any size, then fill in the final model's
        vectors (`embed_model`, default minilm-l6) and switch to them (`ondevice.rag.upgrade`). Ignored for an
        index that already exists.
        fill: run a pending fill now (after a first pass, or one a killed run left); `on_fill` gets its progress.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if first_pass and not self.store.ready and not self._given:
            final = self._embed_model or DEFAULT_EMBED_MODEL
            self._embedder = load_embedder(first_pass, self._threads) if isinstance(first_pass, str) \
                else as_embedder(first_pass)
            summary = index_paths(self.store, list(paths), self._embedder, exclude, max_bytes, on_progress)
            if self.store.ready and self._embedder.name != final:
                target = load_embedder(final, self._threads)
                self.store.begin_upgrade(target.name, target.dim)
                self._filler = target
        else:
            summary = index_paths(self.store, list(paths), self.embedder, exclude, max_bytes, on_progress)
        if fill and self.store.next_embed_model:
            self.note_fill(summary, self.fill(on_fill))
        return summary

    def note_fill(self, summary: IndexSummary, result: FillSummary | None) -> None:
        """Record a fill's work in the run's summary."""
        summary.filled += result.written if result else 0
        summary.total_files, summary.total_chunks = self.store.counts()
        summary.embed_model = self.store.embed_model or summary.embed_model

    def fill(self, on_progress: Callable[[FillProgress], None] | None = None) -> FillSummary | None:
        """Fill in the vectors of the model an upgrade is waiting for, then switch the index to them; None when no
        upgrade is pending. Resumable: a killed fill loses at most one batch."""
        target = self.store.next_embed_model
        if target is None:
            return None
        filler = self._filler
        if filler is None or filler.name != target:
            filler = self._filler = load_embedder(target, self._threads)
        result = fill_vectors(self.store, filler, on_progress)
        if result.finished and not self._given:
            if self._embedder is not None and self._embedder is not filler:
                self._embedder.close()
            self._embedder, self._filler = filler, None
        return result

    # --- querying -----------------------------------------------------------------------------------------------
    def _check_ready(self) -> None:
        if not self.store.ready:
            raise IndexError_(f"the index {self.path} is empty; add files first (`ondevice rag index PATH`)")
        self.store.check_model(self.embedder.name, self.embedder.dim)

    def search(self, query: str, k: int = 5, mode: str = "hybrid", rerank_model=None) -> list[SearchResult]:
        """The `k` most relevant chunks for `query`. `rerank_model` (a loaded model or a name) re-orders the top
        max(2k, 10) by the fused score plus the LLM's query likelihood (`retrieve.rerank`) before cutting to k."""
        query = check_query(query)  # the one place a query is checked: the CLI and `ask` come through here
        self._check_ready()
        return self._search(query, k, mode, rerank_model)

    def _search(self, query: str, k: int, mode: str, rerank_model) -> list[SearchResult]:
        """`search` for a query already checked, on an index already known to be ready."""
        if rerank_model is None:
            return search(self.store, self.embedder, query, k, mode)
        model, owned = answer_model(rerank_model)
        try:
            return rerank(search(self.store, self.embedder, query, max(k * 2, 10), mode), query, model)[:k]
        finally:
            if owned:
                model.close()

    def relevant(self, query: str, results: Sequence[SearchResult]) -> list[SearchResult]:
        return [r for r in results if is_relevant(query, r, self.embedder)]

    def ask(self, question: str, model=DEFAULT_MODEL, k: int = 5, on_text: Callable[[str], None] | None = None,
            rerank: bool = False, max_tokens: int = 160, remote=None, mode: str = "auto",
            lead_in: bool = False) -> Answer:
        """Answer from the top `k` relevant chunks, streamed through `on_text`; says so when nothing is relevant.

        mode: "extractive" (the model picks the retrieved sentence that answers, quoted verbatim with its exact
        lines, or "not found"), "generative" (the model writes the answer) or "auto" (extractive for small local
        models; see `ondevice.rag.answer.resolve_mode`). lead_in: extractive answers start with one generated line
        written from the quoted sentence alone.
        remote: a remote model (`"remote:MODEL@URL"` or a loaded one) that may answer instead of the local model;
        retrieved chunks are screened first and those with sensitive data never leave (see `answer_routed`)."""
        question = check_query(question)
        resolve_mode(mode, None, remote)  # a bad mode fails before anything loads
        self._check_ready()
        llm, owned = answer_model(model) if rerank else (None, False)
        try:
            results = self._search(question, k, "hybrid", llm)
            sources = self.relevant(question, results)
            # Load the LLM only when there is something to answer from and it may write (the extractive mode's
            # choice needs no LLM; its lead-in does).
            if llm is None and (lead_in or (sources and mode != "extractive")):
                llm, owned = answer_model(model)
            chosen_mode = resolve_mode(mode, llm, remote) if llm is not None else \
                ("generative" if mode == "generative" or remote is not None else "extractive")
            if chosen_mode == "extractive":
                # every retrieved chunk: the sentence threshold decides what answers (answer_extractive)
                return answer_extractive(question, results, llm, self.embedder, lead_in, on_text)
            if remote is not None and sources:
                remote_model, remote_owned = load_or_use(remote)
                try:
                    return answer_routed(question, sources, llm, remote_model, max_tokens, on_text)
                finally:
                    if remote_owned:
                        remote_model.close()
            return answer_question(question, sources, llm, max_tokens, on_text)
        finally:
            if owned:
                llm.close()

    def evaluate(self, qa_path: str | os.PathLike, k: int = 5, mode: str = "hybrid", model=None,
                 answer_modes: Sequence[str] = ("extractive", "generative"), lead_in: bool = False,
                 on_progress: Callable[[int, int], None] | None = None, max_tokens: int = 160,
                 threads: int | None = None, rerank: bool = False):
        """Retrieval (and, with `model`, answer quality per answer mode) on a QA.jsonl file; see
        `ondevice.rag.evaluate`."""
        from ondevice.rag.evaluate import evaluate

        return evaluate(self, qa_path, k=k, mode=mode, model=model, answer_modes=answer_modes, lead_in=lead_in,
                        on_progress=on_progress, max_tokens=max_tokens, threads=threads, rerank=rerank)

    def stats(self) -> tuple[int, int]:
        """(files, chunks) in the index."""
        return self.store.counts()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
