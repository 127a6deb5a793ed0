"""Measure each retrieval lever on the paraphrase library and the test corpus (issue 27; table in docs/rag.md).

    PYTHONPATH=. python -m tests.ondevice.rag.levers [--only NAME ...] [--rerank] > levers.txt

An index is built once per index-time variant (embedding model, sequence cap, chunk size, title context); the
query-time levers (fusion weights, reranking, answerability) run on the default index. Recall counts a question
as found at rank r when the r-th result comes from the note that answers it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tests.ondevice.rag import corpus as test_corpus
from tests.ondevice.rag import paraphrase


def _metrics(ranks: list[int | None]) -> dict:
    n = len(ranks)
    return {"n": n, "r@1": sum(1 for r in ranks if r == 1) / n, "r@5": sum(1 for r in ranks if r and r <= 5) / n,
            "mrr": sum(1 / r for r in ranks if r) / n}


def _rank(results, source: str) -> int | None:
    for n, r in enumerate(results, start=1):
        if r.path.endswith(source):
            return n
    return None


def build(index_file: Path, roots: list[Path], embedder, chunk=(900, 200), context=False):
    from ondevice.rag import Index, indexer

    indexer.CHUNK_CHARS, indexer.CHUNK_OVERLAP, indexer.TITLE_CONTEXT = chunk[0], chunk[1], context
    try:
        index = Index(index_file, embedder=embedder)
        t0 = time.perf_counter()
        summary = index.add(roots)
        return index, time.perf_counter() - t0, summary
    finally:
        indexer.CHUNK_CHARS, indexer.CHUNK_OVERLAP, indexer.TITLE_CONTEXT = 900, 200, False


def evaluate(index, qa: list[dict], k: int = 5, **search_options) -> dict:
    from ondevice.rag.retrieve import search

    ranks = [_rank(search(index.store, index.embedder, item["question"], k, **search_options), item["source"])
             for item in qa]
    return _metrics(ranks)


def main() -> None:
    from ondevice.rag.embedder import BucketedEncoder, Embedder, SessionSettings, load_embedder

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--rerank", action="store_true", help="also the LLM reranker (slow)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="levers-"))
    para_qa = paraphrase.write_library(tmp / "lib")
    corpus_qa = test_corpus.write_corpus(tmp / "lib" / "corpus")
    for item in corpus_qa:
        item["source"] = "corpus/" + item["source"]
    roots = [tmp / "lib"]
    minilm = load_embedder("minilm-l6", threads=2)
    folder = None
    import ondevice

    m = ondevice.load("minilm-l6")
    folder = Path(m._backend.ref.path)
    m.close()

    variants = {
        "default (MiniLM, cap 256, 900/200 chunks)": dict(embedder=minilm),
        "sequence cap 128": dict(embedder=Embedder(BucketedEncoder(folder, SessionSettings(threads=2), 128),
                                                   "minilm-l6")),
        "title/path context in the embedded text": dict(embedder=minilm, context=True),
        "chunks 500/100": dict(embedder=minilm, chunk=(500, 100)),
        "chunks 1400/200": dict(embedder=minilm, chunk=(1400, 200)),
        "static (distilled) embeddings": dict(embedder=load_embedder("minilm-l6-static", threads=2)),
        "static + title context": dict(embedder=load_embedder("minilm-l6-static", threads=2), context=True),
    }
    out = {}
    default_index = None
    for n, (name, options) in enumerate(variants.items()):
        if args.only and not any(o in name for o in args.only) and n:
            continue
        index, seconds, summary = build(tmp / f"v{n}.sqlite", roots, **options)
        row = {"paraphrase": evaluate(index, para_qa), "corpus": evaluate(index, corpus_qa),
               "index_s": round(seconds, 1), "chunks": summary.total_chunks,
               "embeddings_per_s": round(summary.embeddings_per_s, 1)}
        print(name, json.dumps(row), flush=True)
        out[name] = row
        if n == 0:
            default_index = index
        else:
            index.close()
    for weights in ((1.0, 2.0), (1.0, 1.5), (0.5, 1.0), (2.0, 1.0)):
        row = {"paraphrase": evaluate(default_index, para_qa, weights=weights),
               "corpus": evaluate(default_index, corpus_qa, weights=weights)}
        print(f"fusion weights bm25={weights[0]} vector={weights[1]}", json.dumps(row), flush=True)
    for candidates in (20, 100):
        row = {"paraphrase": evaluate(default_index, para_qa, candidates=candidates),
               "corpus": evaluate(default_index, corpus_qa, candidates=candidates)}
        print(f"candidates per retriever {candidates}", json.dumps(row), flush=True)
    answerability(default_index, para_qa)
    if args.rerank:
        rerank_lever(default_index, para_qa, corpus_qa)


def answerability(index, qa) -> None:
    """How often the answerer gets the right note (kept as relevant) and how often it refuses the unanswerable."""
    from ondevice.rag.retrieve import is_relevant, search

    for name, k, extra in (("top 5, relevance check (before)", 5, 0), ("top 5 + next 5 when none of the top 5 "
                                                                      "is relevant", 5, 5)):
        kept = refused = 0
        for item in qa:
            results = search(index.store, index.embedder, item["question"], k + extra)
            relevant = [r for r in results[:k] if is_relevant(item["question"], r, index.embedder)]
            if not relevant and extra:
                relevant = [r for r in results[k:] if is_relevant(item["question"], r, index.embedder)]
            kept += any(r.path.endswith(item["source"]) for r in relevant)
        for question in paraphrase.UNANSWERABLE:
            results = search(index.store, index.embedder, question, k + extra)
            relevant = [r for r in results[:k] if is_relevant(question, r, index.embedder)]
            if not relevant and extra:
                relevant = [r for r in results[k:] if is_relevant(question, r, index.embedder)]
            refused += not relevant
        print(f"answerability {name}", json.dumps({"right note kept": f"{kept}/{len(qa)}",
                                                   "unanswerable refused": f"{refused}/{len(paraphrase.UNANSWERABLE)}"}),
              flush=True)


def rerank_lever(index, para_qa, corpus_qa) -> None:
    import ondevice
    from ondevice.rag.retrieve import rerank, search

    llm = ondevice.load("smollm2-135m", threads=2)
    for depth in (10,):
        for label, qa in (("paraphrase", para_qa), ("corpus", corpus_qa)):
            t0 = time.perf_counter()
            ranks = [_rank(rerank(search(index.store, index.embedder, q["question"], depth), q["question"], llm)[:5],
                           q["source"]) for q in qa]
            print(f"rerank top {depth} with SmolLM2 yes/no ({label})", json.dumps(
                {**_metrics(ranks), "s_per_query": round((time.perf_counter() - t0) / len(qa), 2)}), flush=True)
    llm.close()


if __name__ == "__main__":
    main()
