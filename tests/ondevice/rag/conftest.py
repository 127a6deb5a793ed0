"""RAG fixtures: the real default embedder (all-MiniLM-L6-v2, converted once to ONNX int8) and a built index of
the planted-facts corpus, both per session."""

from __future__ import annotations

import pytest

from tests.ondevice.rag.corpus import write_corpus, write_qa


@pytest.fixture(scope="session")
def embedder():
    from ondevice.rag.embedder import load_embedder

    model = load_embedder("minilm-l6", threads=2)
    yield model
    model.close()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """(notes folder, QA items, QA.jsonl path)."""
    root = tmp_path_factory.mktemp("rag-corpus")
    qa = write_corpus(root / "notes")
    return root / "notes", qa, write_qa(root / "qa.jsonl", qa)


@pytest.fixture(scope="session")
def notes_index(corpus, embedder, tmp_path_factory):
    from ondevice.rag import Index

    index = Index(tmp_path_factory.mktemp("rag-index") / "notes.sqlite", embedder=embedder)
    index.add([corpus[0]])
    yield index
    index.close()
