"""Why planted facts are missed in a large generated library, and how many the fusion finds (issue 27; docs/rag.md,
Scale). Asks the bench's 100 questions (every N/100-th file, as `ondevice rag bench --library N` does) on one index:

    PYTHONPATH=. python -m tests.ondevice.rag.library_facts 13000 --embed hash [--numbers-from 0]

For each question, BM25's side alone (whatever the vectors): whether BM25 ranks the fact's file first, whether its
best chunk is "decisive" by the score ratio, and whether an identifier of the question is held by the fact's file
alone (`retrieve._identified`); then facts found at 1 and at 5 by the hybrid search with the identifier rule off and
on. `--embed hash` indexes with pseudo-random vectors (minutes at 13,000 files; only BM25's columns mean anything),
`minilm-l6-static` with the distilled static model, `minilm-l6` with the real default (slow: ~40 chunks/s quiet).
`--numbers-from 0` writes the library as the generator did before its subjects were numbered from 100000.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    from ondevice.rag import Index, library, retrieve
    from ondevice.rag.embedder import Embedder, load_embedder

    parser = argparse.ArgumentParser()
    parser.add_argument("files", type=int)
    parser.add_argument("--embed", default="hash", help="hash, minilm-l6-static or minilm-l6")
    parser.add_argument("--numbers-from", type=int, default=library.SUBJECT_NUMBER_BASE)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="library-facts-"))
    library.SUBJECT_NUMBER_BASE = args.numbers_from
    t0 = time.perf_counter()
    facts = library.write_library(tmp / "lib", args.files)
    if args.embed == "hash":
        from bench.rag_bench import HashEmbedder

        embedder = Embedder(HashEmbedder("hash", 384), "hash")
    else:
        embedder = load_embedder(args.embed, threads=2)
    with Index(tmp / "lib.sqlite", embedder=embedder) as index:
        summary = index.add([tmp / "lib"])
        print(f"{summary.total_files} files, {summary.total_chunks} chunks, {args.embed}, written and indexed in "
              f"{time.perf_counter() - t0:.0f} s ({tmp})", flush=True)
        store = index.store
        sample = facts[:: max(1, len(facts) // 100)][:100]
        counts = {"bm25 first": 0, "ratio decisive": 0, "identifier in the fact's file alone": 0,
                  "decided by BM25 for the fact's file": 0}
        seconds = 0.0
        for fact in sample:
            lexical = store.bm25(fact.question, 50)
            rows = store.chunk_rows([c for c, _ in lexical[:1]])
            first = bool(lexical) and rows[lexical[0][0]].path.endswith(fact.path)
            ratio = retrieve._decisive(store, lexical)
            t = time.perf_counter()
            held = retrieve._identified(store, fact.question, lexical)
            seconds += time.perf_counter() - t
            held_rows = store.chunk_rows([c for c, _ in held])
            alone = bool(held) and all(row.path.endswith(fact.path) for row in held_rows.values())
            counts["bm25 first"] += first
            counts["ratio decisive"] += ratio and first
            counts["identifier in the fact's file alone"] += alone
            counts["decided by BM25 for the fact's file"] += (ratio and first) or (not ratio and alone)
        print("BM25 side, of", len(sample), json.dumps(counts), f"identifier check {seconds / len(sample) * 1000:.2f} "
              "ms per question", flush=True)
        saved = retrieve.IDENTIFIER_DECIDES
        try:
            for rule in (False, True):
                retrieve.IDENTIFIER_DECIDES = rule
                at1 = at5 = 0
                for fact in sample:
                    paths = [r.path for r in index.search(fact.question, 5)]
                    at1 += bool(paths) and paths[0].endswith(fact.path)
                    at5 += any(p.endswith(fact.path) for p in paths)
                print(f"identifier rule {'on' if rule else 'off'}: facts found at 1 {at1 / len(sample):.2f}, "
                      f"at 5 {at5 / len(sample):.2f}", flush=True)
        finally:
            retrieve.IDENTIFIER_DECIDES = saved


if __name__ == "__main__":
    main()
