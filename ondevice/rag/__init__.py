"""Local RAG over your own files: hybrid (BM25 + vector) retrieval, cited answers, an incremental index.

    from ondevice.rag import Index
    with Index("notes") as index:
        index.add(["~/notes"])
        for hit in index.search("when is the dentist appointment", k=3):
            print(hit.path, hit.span, hit.score)
        print(index.ask("When is the dentist appointment?").render())

Everything runs on this device: embeddings with a local ONNX/GGUF model, answers with a local LLM.
"""

from __future__ import annotations

from ondevice.rag.answer import NOTHING_FOUND, Answer, Citation
from ondevice.rag.evaluate import EvalReport, QAResult
from ondevice.rag.index import Index, index_path
from ondevice.rag.indexer import FailedFile, IndexProgress, IndexSummary
from ondevice.rag.retrieve import SearchResult
from ondevice.rag.store import EmbeddingModelMismatch, IndexError_

__all__ = [
    "Index", "index_path", "SearchResult", "Answer", "Citation", "IndexSummary", "IndexProgress", "FailedFile",
    "EvalReport", "QAResult", "EmbeddingModelMismatch", "IndexError_", "NOTHING_FOUND",
]
