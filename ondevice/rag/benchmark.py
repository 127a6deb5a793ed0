"""RAG benchmark: indexing files/s without embedding, embeddings/s, retrieval latency at N chunks, query memory.

    python -m ondevice.rag.benchmark --chunks 10000        (or `ondevice rag bench`)

- Indexing speed is measured with a trivial hashing embedder, so it counts walking, reading, hashing, parsing,
  chunking and the SQLite writes (FTS5 + vectors, one transaction per file) but not the model.
- Embeddings/s is the real embedding model on chunk-sized texts, batched as the indexer batches them.
- Retrieval latency is `Index.search` end to end (query embedding with the real model, BM25, vector KNN, fusion,
  fetching rows) in a fresh process, on an index of N chunks whose stored vectors are random unit vectors under
  the real model's name: latency does not depend on the vector values, and embedding 10k chunks here would only
  measure the embedder again. The same process's peak RSS is the query memory.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import random
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class BenchReport:
    files: int
    index_files_per_s_excl_embedding: float
    index_chunks_per_s_excl_embedding: float
    embed_model: str
    embeddings_per_s: float
    index_chunks: int
    queries: int
    retrieval_p50_ms: float
    retrieval_p95_ms: float
    retrieval_cpu_p50_ms: float  # CPU time of the query process: what a query costs when the machine is not shared
    retrieval_cpu_p95_ms: float
    query_process_rss_mb: float


class HashEmbedder:
    """Deterministic pseudo-random unit vectors: costs almost nothing, so indexing time excludes the model."""

    def __init__(self, name: str = "bench-hash", dim: int = 384):
        self.name, self.dim = name, dim

    def embed(self, texts):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def _vocabulary() -> list[str]:
    """English words with their natural frequencies, from the docs that ship with CPython."""
    from pydoc_data.topics import topics

    return re.findall(r"[a-z]{3,}", " ".join(topics.values()).lower())


def write_corpus(root: Path, n_files: int, paragraphs: int = 4, seed: int = 0) -> None:
    """Markdown notes of `paragraphs` ~450-character paragraphs (about one chunk each) under headings."""
    rng = random.Random(seed)
    words = _vocabulary()
    for f in range(n_files):
        parts = [f"# Note {f}: {' '.join(rng.choices(words, k=4))}"]
        for p in range(paragraphs):
            if p and p % 2 == 0:
                parts.append(f"## Section {p}")
            parts.append(" ".join(rng.choices(words, k=70)) + f". Reference R{f}-{p}.")
        path = root / f"folder{f % 20}" / f"note{f}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(parts) + "\n")


def _query_worker(index_file: str, embed_model: str, queries: list[str], out) -> None:
    import psutil

    from ondevice.rag import Index

    with Index(index_file, embed_model=embed_model, create=False) as index:
        index.search(queries[0], 5)  # warm-up: loads the model, touches the tables
        times, cpu = [], []
        for q in queries:
            t0, c0 = time.perf_counter(), time.process_time()
            index.search(q, 5)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    rss = psutil.Process().memory_info().rss / 2**20
    try:  # peak, where the platform reports it
        import resource

        rss = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except ImportError:
        pass
    out.put((times, cpu, rss))


def run_benchmark(n_chunks: int = 10_000, n_files: int = 500, n_queries: int = 100, embed_model: str | None = None,
                  workdir: str | None = None) -> BenchReport:
    """Run the whole benchmark; see the module docstring for what each number includes."""
    from ondevice.rag import Index
    from ondevice.rag.embedder import Embedder, load_embedder
    from ondevice.store import DEFAULT_EMBED_MODEL

    embed_model = embed_model or DEFAULT_EMBED_MODEL
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        # 1. indexing without the model
        write_corpus(tmp / "files", n_files)
        with Index(tmp / "speed.sqlite", embedder=HashEmbedder()) as index:
            summary = index.add([tmp / "files"])
        files_per_s = summary.files_per_s_excluding_embedding
        chunks_per_s = summary.chunks_written / max(summary.seconds - summary.embed_seconds, 1e-9)

        # 2. the real embedder
        real = load_embedder(embed_model)
        with Index(tmp / "speed.sqlite", embedder=HashEmbedder(), create=False) as index:
            texts = [r[0] for r in index.store.conn.execute("SELECT text FROM chunks LIMIT 256")]
        real.embed(texts[:8])  # warm-up
        t0 = time.perf_counter()
        for start in range(0, len(texts), 64):
            real.embed(texts[start:start + 64])
        embed_rate = len(texts) / (time.perf_counter() - t0)
        name, dim = real.name, real.dim
        real.close()

        # 3. an index of n_chunks (about 4 chunks per file) with random vectors under the real model's name
        write_corpus(tmp / "big", max(1, n_chunks // 4), seed=1)
        with Index(tmp / "big.sqlite", embedder=Embedder(HashEmbedder(name, dim), name)) as index:
            index.add([tmp / "big"])
            total_chunks = index.stats()[1]
        rng = random.Random(2)
        words = _vocabulary()
        queries = [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(n_queries)]
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(target=_query_worker, args=(str(tmp / "big.sqlite"), embed_model, queries, out))
        proc.start()
        times, cpu, rss = out.get()
        proc.join()
    times.sort()
    cpu.sort()
    return BenchReport(
        files=summary.files_seen, index_files_per_s_excl_embedding=round(files_per_s, 1),
        index_chunks_per_s_excl_embedding=round(chunks_per_s, 1), embed_model=name,
        embeddings_per_s=round(embed_rate, 1), index_chunks=total_chunks, queries=len(times),
        retrieval_p50_ms=round(statistics.median(times), 2),
        retrieval_p95_ms=round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
        retrieval_cpu_p50_ms=round(statistics.median(cpu), 2),
        retrieval_cpu_p95_ms=round(cpu[min(len(cpu) - 1, int(0.95 * len(cpu)))], 2),
        query_process_rss_mb=round(rss, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--embed-model", default=None)
    args = parser.parse_args()
    report = run_benchmark(args.chunks, args.files, args.queries, args.embed_model)
    for key, value in report.__dict__.items():
        print(f"{key:34} {value}")


if __name__ == "__main__":
    main()
