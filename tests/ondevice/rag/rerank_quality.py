"""Rerank quality on the RAG test corpus (tests/ondevice/rag/corpus.py: 29 notes, 12 questions): recall@1, recall@5
and MRR of hybrid retrieval as it is, and of its top DEPTH re-ordered by each local reranker: the LLM's query
likelihood alone (`ondevice.rag.rerank`, what `/v1/rerank` returns), the fused score plus it (`retrieve.rerank`,
what `--rerank` does) and the embedding model's cosine between the question and each passage. Table in
docs/server.md ("/v1/rerank"); claims in docs/claims.md.

    PYTHONPATH=. python -m tests.ondevice.rag.rerank_quality [--depth 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.ondevice.rag import corpus as test_corpus
from tests.ondevice.rag.levers import _metrics, _rank


def embedding_order(embedder, query: str, results) -> list:
    """`results` re-ordered by the cosine of the question's and each passage's embedding (ties keep the order)."""
    vectors = np.asarray(embedder.embed([query] + [r.text for r in results]), dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors[1:] @ vectors[0]
    return [results[i] for i in sorted(range(len(results)), key=lambda i: (-cosine[i], i))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=10, help="candidates each reranker re-orders")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import ondevice
    from ondevice.rag import Index
    from ondevice.rag.rerank import rerank as rerank_texts
    from ondevice.rag.retrieve import rerank, search

    with tempfile.TemporaryDirectory(prefix="rerank-quality-") as tmp:
        root = Path(tmp) / "notes"
        qa = test_corpus.write_corpus(root)
        with Index(Path(tmp) / "index.sqlite", embed_model="minilm-l6", threads=args.threads) as index:
            index.add([root])
            llm = ondevice.load("smollm2-135m", threads=args.threads)
            candidates = [search(index.store, index.embedder, q["question"], args.depth) for q in qa]
            rows = {"hybrid, no rerank": lambda q, c: c,
                    f"hybrid top {args.depth}, embedding reranker (MiniLM cosine)":
                        lambda q, c: embedding_order(index.embedder, q["question"], c),
                    f"hybrid top {args.depth}, LLM reranker alone (SmolLM2-135M query likelihood, rerank.py)":
                        lambda q, c: [c[i] for i, _ in rerank_texts(q["question"], [r.text for r in c], llm)],
                    f"hybrid top {args.depth}, fused score + query likelihood (retrieve.rerank, --rerank)":
                        lambda q, c: rerank(c, q["question"], llm)}
            for label, order in rows.items():
                t0 = time.perf_counter()
                ranks = [_rank(order(q, list(c))[:5], q["source"]) for q, c in zip(qa, candidates)]
                seconds = (time.perf_counter() - t0) / len(qa)
                by_kind = {kind: {k: round(v, 3) for k, v in _metrics([r for r, q in zip(ranks, qa)
                                                                       if q["kind"] == kind]).items()}
                           for kind in sorted({q["kind"] for q in qa})}
                print(json.dumps({"mode": label, **{k: round(v, 3) if isinstance(v, float) else v
                                                    for k, v in _metrics(ranks).items()}, "by_kind": by_kind,
                                  "in_top_depth": sum(any(r.path.endswith(q["source"]) for r in c)
                                                      for q, c in zip(qa, candidates)),
                                  "s_per_query": round(seconds, 3)}), flush=True)
            llm.close()


if __name__ == "__main__":
    main()
