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


def evaluate(index, qa: list[dict], k: int = 5, searcher=None, **search_options) -> dict:
    """Recall over `qa`; for the paraphrase set also over its first 24 questions and the 17 added later."""
    from ondevice.rag.retrieve import search

    searcher = searcher or (lambda q: search(index.store, index.embedder, q, k, **search_options))
    ranks = [_rank(searcher(item["question"]), item["source"]) for item in qa]
    out = _metrics(ranks)
    for label in ("first", "added"):
        part = [r for r, item in zip(ranks, qa) if item.get("set") == label]
        if part:
            out[label] = {key: round(value, 3) for key, value in _metrics(part).items()}
    return out


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
    parser.add_argument("--rerank-depth", type=int, default=10, help="candidates the reranker re-orders")
    parser.add_argument("--expand", action="store_true", help="also query expansion with the local LLM (slow)")
    parser.add_argument("--query-only", action="store_true", help="only the query-time levers")
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
    fusion(default_index, para_qa, corpus_qa, "RRF k=60, BM25 x0.2 unless decisive", RRF_K=60, BM25_WEAK_WEIGHT=0.2)
    fusion(default_index, para_qa, corpus_qa, "RRF k=10, BM25 x0.2 unless its best is 2x the runner-up",
           names_something=lambda q: True, BM25_WEAK_WEIGHT=0.2)
    for weight in (0.2, 0.1, 0.05):
        fusion(default_index, para_qa, corpus_qa, f"RRF k=10, BM25 x{weight} unless decisive (the query names "
                                                  "something and BM25's best is 2x the runner-up)",
               BM25_WEAK_WEIGHT=weight)
    fusion(default_index, para_qa, corpus_qa, "default: RRF k=10, BM25 only when decisive")
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
        rerank_lever(default_index, para_qa, corpus_qa, args.rerank_depth)
    if args.expand:
        expansion_lever(default_index, para_qa, corpus_qa)
    if args.query_only:
        return
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


def rerank_lever(index, para_qa, corpus_qa, depth: int = 10) -> None:
    import ondevice
    from ondevice.rag.retrieve import rerank, search

    llm = ondevice.load("smollm2-135m", threads=2)
    for depth in (depth,):
        for label, qa in (("paraphrase", para_qa), ("corpus", corpus_qa)):
            t0 = time.perf_counter()
            ranks = [_rank(rerank(search(index.store, index.embedder, q["question"], depth), q["question"], llm)[:5],
                           q["source"]) for q in qa]
            print(f"rerank top {depth} with SmolLM2 yes/no ({label})", json.dumps(
                {**_metrics(ranks), "s_per_query": round((time.perf_counter() - t0) / len(qa), 2)}), flush=True)
    llm.close()


EXPAND_PROMPT = ("Rewrite the question below in other, plainer words, using common synonyms for its nouns. "
                 "Reply with the rewritten question only.\n\nQuestion: {question}")


def expansion_lever(index, para_qa, corpus_qa) -> None:
    """Query expansion with the local LLM: SmolLM2 rewrites the question at temperature 0; retrieval runs on
    (a) the question with the rewrite appended, (b) both separately, fused by reciprocal rank (k=10)."""
    import ondevice
    from ondevice.rag.retrieve import search

    llm = ondevice.load("smollm2-135m", threads=2)
    rewrites, seconds = {}, []
    for item in para_qa + corpus_qa:
        t0 = time.perf_counter()
        text = llm.chat([{"role": "user", "content": EXPAND_PROMPT.format(question=item["question"])}],
                        max_tokens=40, temperature=0).text.strip().splitlines()
        seconds.append(time.perf_counter() - t0)
        rewrites[item["question"]] = (text[0] if text else "").strip()
    llm.close()
    print("expansion rewrites", json.dumps(rewrites), flush=True)

    def appended(q):
        return search(index.store, index.embedder, f"{q} {rewrites[q]}", 5)

    def fused(q):
        scores: dict[int, float] = {}
        keep = {}
        for text in (q, rewrites[q]):
            if not text:
                continue
            for rank, r in enumerate(search(index.store, index.embedder, text, 20), start=1):
                scores[r.chunk_id] = scores.get(r.chunk_id, 0.0) + 1 / (10 + rank)
                keep[r.chunk_id] = r
        return [keep[c] for c in sorted(scores, key=lambda c: -scores[c])[:5]]

    for label, searcher in (("expansion: question + rewrite as one query", appended),
                            ("expansion: question and rewrite fused (RRF k=10)", fused)):
        row = {"paraphrase": evaluate(index, para_qa, searcher=searcher),
               "corpus": evaluate(index, corpus_qa, searcher=searcher),
               "rewrite_s_mean": round(sum(seconds) / len(seconds), 2)}
        print(label, json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
