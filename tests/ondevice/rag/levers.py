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


def fusion(index, para_qa, corpus_qa, label: str, **settings) -> None:
    """Evaluate with module-level fusion settings changed (restored afterwards)."""
    from ondevice.rag import retrieve

    saved = {name: getattr(retrieve, name) for name in settings}
    try:
        for name, value in settings.items():
            setattr(retrieve, name, value)
        options = {"rrf_k": retrieve.RRF_K}
        row = {"paraphrase": evaluate(index, para_qa, **options), "corpus": evaluate(index, corpus_qa, **options)}
    finally:
        for name, value in saved.items():
            setattr(retrieve, name, value)
    print(label, json.dumps(row), flush=True)


def main() -> None:
    from ondevice.rag import Index
    from ondevice.rag.embedder import BucketedEncoder, Embedder, SessionSettings, load_embedder

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None, help="index-time variants whose name contains one of these")
    parser.add_argument("--reuse", default=None, help="a folder of an earlier run: reuse its default index")
    parser.add_argument("--rerank", action="store_true", help="also the LLM reranker (slow)")
    args = parser.parse_args()
    tmp = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="levers-"))
    para_qa = paraphrase.write_library(tmp / "lib")
    corpus_qa = test_corpus.write_corpus(tmp / "lib" / "corpus")
    for item in corpus_qa:
        item["source"] = "corpus/" + item["source"]
    roots = [tmp / "lib"]
    print(f"library {tmp / 'lib'}: {len(para_qa)} paraphrase questions, {len(corpus_qa)} test-corpus questions",
          flush=True)
    minilm = load_embedder("minilm-l6", threads=2)
    if args.reuse and (tmp / "v0.sqlite").exists():
        default_index = Index(tmp / "v0.sqlite", embedder=minilm)
    else:
        default_index, seconds, summary = build(tmp / "v0.sqlite", roots, minilm)
        print(f"default index: {summary.total_chunks} chunks in {seconds:.0f} s", flush=True)
    # query-time levers on the default index
    fusion(default_index, para_qa, corpus_qa, "before: RRF k=60, BM25 and vector weighted 1:1",
           RRF_K=60, BM25_WEAK_WEIGHT=1.0)
    fusion(default_index, para_qa, corpus_qa, "RRF k=10, 1:1", RRF_K=10, BM25_WEAK_WEIGHT=1.0)
    fusion(default_index, para_qa, corpus_qa, "RRF k=10, BM25 x0.3 always", RRF_K=10, BM25_WEAK_WEIGHT=0.3,
           BM25_DECISIVE_RATIO=1e9)
    fusion(default_index, para_qa, corpus_qa, "RRF k=60, BM25 x0.2 unless decisive", RRF_K=60)
    fusion(default_index, para_qa, corpus_qa, "RRF k=10, BM25 x0.2 unless its best is 2x the runner-up",
           names_something=lambda q: True)
    fusion(default_index, para_qa, corpus_qa, "default: RRF k=10, BM25 x0.2 unless decisive (the query names "
                                              "something and BM25's best is 2x the runner-up)")
    fusion(default_index, para_qa, corpus_qa, "  same, decisive at 1.5x", BM25_DECISIVE_RATIO=1.5)
    fusion(default_index, para_qa, corpus_qa, "  same, decisive at 3x", BM25_DECISIVE_RATIO=3.0)
    for mode in ("vector", "bm25"):
        row = {"paraphrase": evaluate(default_index, para_qa, mode=mode),
               "corpus": evaluate(default_index, corpus_qa, mode=mode)}
        print(f"{mode} only", json.dumps(row), flush=True)
    for candidates in (20, 100):
        row = {"paraphrase": evaluate(default_index, para_qa, candidates=candidates),
               "corpus": evaluate(default_index, corpus_qa, candidates=candidates)}
        print(f"candidates per retriever {candidates} (default 50)", json.dumps(row), flush=True)
    answerability(default_index, para_qa)
    if args.rerank:
        rerank_lever(default_index, para_qa, corpus_qa)
    # index-time levers: one index each
    import ondevice

    model = ondevice.load("minilm-l6")
    folder = Path(model._backend.ref.path)
    model.close()
    variants = {
        "static (distilled) embeddings": lambda: dict(embedder=load_embedder("minilm-l6-static", threads=2)),
        "static + title context": lambda: dict(embedder=load_embedder("minilm-l6-static", threads=2), context=True),
        "title/path context in the embedded text": lambda: dict(embedder=minilm, context=True),
        "sequence cap 128": lambda: dict(embedder=Embedder(BucketedEncoder(folder, SessionSettings(threads=2), 128),
                                                           "minilm-l6")),
        "chunks 500/100": lambda: dict(embedder=minilm, chunk=(500, 100)),
        "chunks 1400/200": lambda: dict(embedder=minilm, chunk=(1400, 200)),
    }
    for n, (name, options) in enumerate(variants.items(), start=1):
        if args.only and not any(o in name for o in args.only):
            continue
        if args.reuse and (tmp / f"v{n}.sqlite").exists():
            index = Index(tmp / f"v{n}.sqlite", embedder=options()["embedder"])
            row = {"paraphrase": evaluate(index, para_qa), "corpus": evaluate(index, corpus_qa), "reused": True}
        else:
            index, seconds, summary = build(tmp / f"v{n}.sqlite", roots, **options())
            row = {"paraphrase": evaluate(index, para_qa), "corpus": evaluate(index, corpus_qa),
                   "index_s": round(seconds, 1), "chunks": summary.total_chunks,
                   "embeddings_per_s": round(summary.embeddings_per_s, 1)}
        print(name, json.dumps(row), flush=True)
        index.close()


def answerability(index, qa) -> None:
    """How often the answerer is given the right note (it passes the relevance check) and how often it refuses a
    question the library cannot answer, for the similarity threshold and for where relevant chunks are looked for."""
    from ondevice.rag import retrieve
    from ondevice.rag.retrieve import is_relevant, search

    found = {item["question"]: search(index.store, index.embedder, item["question"], 10) for item in qa}
    unanswerable = {q: search(index.store, index.embedder, q, 10) for q in paraphrase.UNANSWERABLE}
    pickers = {
        "top 5": lambda q, r: [x for x in r[:5] if is_relevant(q, x, index.embedder)],
        "relevant among the top 10, first 5": lambda q, r: [x for x in r[:10]
                                                            if is_relevant(q, x, index.embedder)][:5],
    }
    saved = retrieve.MIN_SIMILARITY
    try:
        for threshold in (0.3, 0.35, 0.4):
            retrieve.MIN_SIMILARITY = threshold
            for name, pick in pickers.items():
                kept = sum(any(r.path.endswith(item["source"]) for r in pick(item["question"],
                                                                              found[item["question"]]))
                           for item in qa)
                refused = sum(not pick(q, r) for q, r in unanswerable.items())
                print(f"answerability: cosine >= {threshold}, {name}",
                      json.dumps({"right note kept": f"{kept}/{len(qa)}",
                                  "unanswerable refused": f"{refused}/{len(unanswerable)}"}), flush=True)
    finally:
        retrieve.MIN_SIMILARITY = saved


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
