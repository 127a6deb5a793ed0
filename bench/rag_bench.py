"""RAG benchmark: indexing files/s without embedding, embeddings/s, retrieval latency at N chunks, query memory.

    ondevice rag bench --chunks 10000        (or `ondevice bench rag`)

- Indexing speed is measured with a trivial hashing embedder, so it counts walking, reading, hashing, parsing,
  chunking and the SQLite writes (FTS5 + vectors, one transaction per file) but not the model.
- Embeddings/s is the real embedding model on chunk-sized texts, batched as the indexer batches them.
- Retrieval latency is `Index.search` end to end (query embedding with the real model, BM25, vector KNN, fusion,
  fetching rows) in a fresh process, on an index of N chunks whose stored vectors are random unit vectors under
  the real model's name: latency does not depend on the vector values, and embedding 10k chunks here would only
  measure the embedder again. The same process's peak RSS is the query memory.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import random
import re
import statistics
import sys
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
    from ondevice.models.store import DEFAULT_EMBED_MODEL

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


@dataclass
class ScalePoint:
    """One library size: an index of `chunks` chunks (hashing vectors under the real model's name)."""

    chunks: int
    files: int
    index_mb: float
    build_s: float                 # incremental build up to this size, hashing embedder (excludes the model)
    index_process_rss_mb: float
    reindex_one_file_s: float      # one changed file, hashing embedder: walk, stat, read, parse, write
    retrieval_p50_ms: float
    retrieval_p95_ms: float
    retrieval_cpu_p95_ms: float
    query_process_rss_mb: float
    # the path before issue 27's retrieval work (FTS5 bm25() and one float32 product over every vector), measured
    # in the same process, query by query alternating with the current one
    before_p50_ms: float = 0.0
    before_p95_ms: float = 0.0
    before_cpu_p95_ms: float = 0.0
    first_query_s: float = 0.0     # the process's first query: loads the model, the vectors and the BM25 postings
    same_results: float = 0.0      # share of queries whose top 5 (chunks and order) the two paths agree on
    reindex_one_file_cpu_s: float = 0.0
    load_average: str = ""         # os.getloadavg() before and after: the machine is shared


@dataclass
class LibraryReport:
    """`ondevice rag bench --library N`: the real model on N generated files, then latency at larger sizes."""

    files: int
    chunks: int
    embed_model: str
    first_index_s: float
    embeddings_per_s: float
    index_mb: float
    index_process_rss_mb: float
    reindex_one_file_s: float      # real embedder
    facts: int
    facts_found_at_5: float
    fact_retrieval_p50_ms: float
    fact_retrieval_p95_ms: float
    scale: list[ScalePoint]


def _index_worker(index_file: str, root: str, embed_model: str | None, hashing: bool, change: str | None,
                  out) -> None:
    """In a fresh process: index `root`, then (if `change`) append a line to that file and index again."""
    import resource

    from ondevice.rag import Index
    from ondevice.rag.embedder import Embedder

    embedder = None
    if hashing:
        from ondevice.rag.embedder import load_embedder

        real = load_embedder(embed_model)  # for its name and dimension only
        embedder = Embedder(HashEmbedder(real.name, real.dim), real.name)
        real.close()
    reindex_cpu = [None]
    say = _every(30)  # the first index of a large library takes many minutes

    def progress(p) -> None:
        eta = f", ETA {p.eta_s / 60:.1f} min" if p.eta_s is not None else ""
        say(lambda: f"{p.files_done}/{p.files_total} files, {p.chunks} chunks, {p.embeddings_per_s:.1f} "
                    f"embeddings/s, {p.elapsed_s:.0f} s{eta}")

    with Index(index_file, embed_model=None if hashing else embed_model, embedder=embedder) as index:
        t0 = time.perf_counter()
        summary = index.add([root], on_progress=progress)
        first = time.perf_counter() - t0
        reindex = None
        if change:
            with open(change, "a") as f:
                f.write("\nChanged: one more line for the one-file re-index measurement.\n")
            t0, c0 = time.perf_counter(), time.process_time()
            again = index.add([root])
            reindex = time.perf_counter() - t0
            reindex_cpu[0] = time.process_time() - c0
            assert again.updated == 1 and again.embedded <= 3, again
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((first, summary.embeddings_per_s, summary.total_files, summary.total_chunks, (reindex, reindex_cpu[0]),
             rss))


def _every(seconds: float):
    """A progress printer for long runs: `say(message)` writes "[time] message, load L" to stderr at most once per
    `seconds` (message: a callable, formatted only when printed)."""
    last = [0.0]

    def say(message) -> None:
        if time.perf_counter() - last[0] >= seconds:
            last[0] = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] {message()}, load {_load()}", file=sys.stderr, flush=True)

    return say


def _in_process(target, *args):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def _size_mb(index_file: Path) -> float:
    return round(sum(p.stat().st_size for p in index_file.parent.glob(index_file.name + "*")) / 2**20, 1)


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


def run_library_benchmark(n_files: int = 1000, scales: tuple[int, ...] = (10_000, 50_000, 100_000),
                          n_queries: int = 100, embed_model: str | None = None, workdir: str | None = None,
                          on_step=None) -> LibraryReport:
    """Generated library: first index and one-file re-index with the real embedder, facts retrieved, then
    index size, re-index time, retrieval p50/p95 and process memory at each size in `scales` (chunks)."""
    from ondevice.rag.library import write_library
    from ondevice.models.store import DEFAULT_EMBED_MODEL

    embed_model = embed_model or DEFAULT_EMBED_MODEL
    step = on_step or (lambda message: None)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        step(f"writing {n_files} files")
        facts = write_library(tmp / "lib", n_files)
        step("indexing them with the real embedding model")
        first, rate, files, chunks, (reindex, _), rss = _in_process(
            _index_worker, str(tmp / "lib.sqlite"), str(tmp / "lib"), embed_model, False,
            str(tmp / "lib" / facts[0].path) if not facts[0].path.endswith((".pdf", ".docx")) else
            str(tmp / "lib" / next(f.path for f in facts if f.path.endswith((".md", ".txt")))))
        sample = facts[:: max(1, len(facts) // n_queries)][:n_queries]
        step(f"asking {len(sample)} fact questions")
        times, _, _, found = _in_process(_fact_worker, str(tmp / "lib.sqlite"), embed_model,
                                         [(f.question, f.path) for f in sample])
        report = LibraryReport(files, chunks, embed_model, round(first, 1), round(rate, 1),
                               _size_mb(tmp / "lib.sqlite"), round(rss, 1), round(reindex, 2), len(sample),
                               round(found, 3), _percentile(times, 0.5), _percentile(times, 0.95), [])
        # Larger sizes: one library grown step by step, vectors from the hashing embedder.
        grown, per_file = 0, max(chunks / max(files, 1), 1.0)
        words = _vocabulary()
        rng = random.Random(3)
        queries = [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(n_queries)]
        big = tmp / "big.sqlite"
        for target in scales:
            need = int(target / per_file) - grown
            if need > 0:
                step(f"growing the library to about {target} chunks")
                write_library(tmp / "big" / f"part{len(report.scale)}", need, seed=10 + len(report.scale))
                grown += need
            change = next(p for p in sorted((tmp / "big").rglob("*.md")))
            t0 = time.perf_counter()
            _, _, n_files_big, n_chunks_big, (reindex_big, reindex_cpu), rss_big = _in_process(
                _index_worker, str(big), str(tmp / "big"), embed_model, True, str(change))
            build = time.perf_counter() - t0
            step(f"querying {n_chunks_big} chunks")
            load = _load()
            result = _in_process(_compare_worker, str(big), embed_model, queries)
            report.scale.append(ScalePoint(
                n_chunks_big, n_files_big, _size_mb(big), round(build, 1), round(rss_big, 1), round(reindex_big, 2),
                _percentile(result["now"], 0.5), _percentile(result["now"], 0.95),
                _percentile(result["now_cpu"], 0.95), round(result["rss"], 1), _percentile(result["before"], 0.5),
                _percentile(result["before"], 0.95), _percentile(result["before_cpu"], 0.95),
                round(result["first_s"], 2), round(result["same"], 3), round(reindex_cpu, 2),
                f"{load} -> {_load()}"))
    return report


@dataclass
class FirstPassReport:
    """`ondevice rag bench --library N --first-pass MODEL`: how soon a new library is searchable with a fast first
    pass, what that first pass finds, and how long filling in the final model takes."""

    files: int
    chunks: int
    first_pass: str
    embed_model: str
    searchable_after_s: float      # walk, read, chunk, first-pass embed, write: the index answers from here on
    first_pass_per_s: float        # first-pass embeddings/s
    first_pass_facts_at_5: float   # planted facts found in the top 5 with the first pass's vectors
    fill_s: float | None           # filling in the final model's vectors, and the swap (None: not run)
    fill_per_s: float | None
    facts_at_5: float | None       # after the fill: what indexing with the final model from the start finds
    facts: int
    index_process_rss_mb: float
    load_average: str


def _first_pass_worker(index_file: str, root: str, first_pass: str, embed_model: str, fill: bool, out) -> None:
    """In a fresh process: index `root` with the first pass only (fill=False), or fill in the final model."""
    import resource

    from ondevice.rag import Index

    say = _every(30)

    def progress(p) -> None:
        done, total = (p.done, p.total) if fill else (p.files_done, p.files_total)
        say(lambda: f"{'fill' if fill else 'first pass'}: {done}/{total}, {p.embeddings_per_s:.1f} embeddings/s, "
                    f"{p.elapsed_s:.0f} s")

    with Index(index_file, embed_model=embed_model) as index:
        t0 = time.perf_counter()
        if fill:
            result = index.fill(progress)
            rate = result.embeddings_per_s
        else:
            summary = index.add([root], first_pass=first_pass, fill=False, on_progress=progress)
            rate = summary.embeddings_per_s
        seconds = time.perf_counter() - t0
        files, chunks = index.stats()
    out.put((seconds, rate, files, chunks, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_first_pass_benchmark(n_files: int, first_pass: str, n_queries: int = 100, embed_model: str | None = None,
                             workdir: str | None = None, on_step=None, fill: bool = True) -> FirstPassReport:
    """A generated library indexed with a fast first pass (`Index.add(first_pass=...)`), then (`fill`) filled in."""
    from ondevice.models.store import DEFAULT_EMBED_MODEL
    from ondevice.rag.library import write_library
    from ondevice.rag.embedder import load_embedder

    embed_model = embed_model or DEFAULT_EMBED_MODEL
    step = on_step or (lambda message: None)
    step(f"loading {first_pass} (a static table is distilled once, on first use)")
    load_embedder(first_pass).close()
    load = _load()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        step(f"writing {n_files} files")
        facts = write_library(tmp / "lib", n_files)
        index_file = str(tmp / "lib.sqlite")
        step(f"first pass with {first_pass}")
        searchable, fast_rate, files, chunks, rss = _in_process(_first_pass_worker, index_file, str(tmp / "lib"),
                                                                first_pass, embed_model, False)
        sample = facts[:: max(1, len(facts) // n_queries)][:n_queries]
        questions = [(f.question, f.path) for f in sample]
        step(f"asking {len(sample)} fact questions of the first pass")
        _, _, _, fast_found = _in_process(_fact_worker, index_file, embed_model, questions)
        fill_s = fill_rate = found = None
        fill_rss = 0.0
        if fill:
            step(f"filling in {embed_model}")
            fill_s, fill_rate, _, _, fill_rss = _in_process(_first_pass_worker, index_file, str(tmp / "lib"),
                                                            first_pass, embed_model, True)
            step(f"asking {len(sample)} fact questions after the fill")
            _, _, _, found = _in_process(_fact_worker, index_file, embed_model, questions)
    return FirstPassReport(files, chunks, first_pass, embed_model, round(searchable, 1), round(fast_rate, 1),
                           round(fast_found, 3), fill_s and round(fill_s, 1), fill_rate and round(fill_rate, 1),
                           found and round(found, 3), len(sample), round(max(rss, fill_rss), 1),
                           f"{load} -> {_load()}")


def _load() -> str:
    import os

    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class _Before:
    """The index's store as retrieval used it before issue 27's work: FTS5's bm25() and one float32 product."""

    def __init__(self, store):
        self.store = store

    def bm25(self, query, limit):
        return self.store.bm25_fts5(query, limit)

    def nearest(self, vector, limit):
        from ondevice.rag.vectors import unit

        vectors = self.store._vectors()
        scores = vectors.rows @ unit(vector)
        top = np.argpartition(-scores, min(limit, len(scores)) - 1)[:limit] if len(scores) > limit else \
            np.arange(len(scores))
        top = top[np.argsort(-scores[top])]
        return [(int(vectors.ids[i]), float(scores[i])) for i in top]

    def chunk_rows(self, ids):
        return self.store.chunk_rows(ids)


def _compare_worker(index_file: str, embed_model: str, queries: list[str], out) -> None:
    """Retrieval latency now and before, alternating query by query (which goes first alternates too)."""
    import resource

    from ondevice.rag import Index
    from ondevice.rag.retrieve import search

    with Index(index_file, embed_model=embed_model, create=False) as index:
        t0 = time.perf_counter()
        index.search(queries[0], 5)  # loads the model, the vectors and the BM25 postings
        first = time.perf_counter() - t0
        before = _Before(index.store)
        search(before, index.embedder, queries[0], 5)
        runs = {"now": [], "now_cpu": [], "before": [], "before_cpu": []}
        same = 0
        for n, q in enumerate(queries):
            got = {}
            for name in (("now", "before") if n % 2 == 0 else ("before", "now")):
                t0, c0 = time.perf_counter(), time.process_time()
                got[name] = index.search(q, 5) if name == "now" else search(before, index.embedder, q, 5)
                runs[name].append((time.perf_counter() - t0) * 1000)
                runs[name + "_cpu"].append((time.process_time() - c0) * 1000)
            same += [r.chunk_id for r in got["now"]] == [r.chunk_id for r in got["before"]]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put({**runs, "first_s": first, "same": same / len(queries), "rss": rss})


def _fact_worker(index_file: str, embed_model: str, questions: list[tuple[str, str]], out) -> None:
    import resource

    from ondevice.rag import Index

    with Index(index_file, embed_model=embed_model, create=False) as index:
        index.search(questions[0][0], 5)  # warm-up: loads the model, the vector matrix
        times, cpu, found = [], [], 0
        for question, path in questions:
            t0, c0 = time.perf_counter(), time.process_time()
            results = index.search(question, 5)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            found += bool(path) and any(r.path.endswith(path) for r in results)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((times, cpu, rss, found / len(questions)))


def plain_onnx_loop(onnx_dir: Path, threads: int = 2, batch: int = 64, max_length: int = 256):
    """The baseline: a plain onnxruntime loop, batches of `batch` texts in their given order padded to the longest."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=0)
    names = {i.name for i in session.get_inputs()}

    def embed(texts):
        rows = []
        for start in range(0, len(texts), batch):
            encodings = tokenizer.encode_batch(list(texts[start:start + batch]))
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            rows.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(rows)

    return embed


def run_embedding_benchmark(n_texts: int = 128, rounds: int = 2, threads: int = 2, embed_model: str | None = None,
                            variants: tuple[str, ...] = ("ours", "spinning", "opt-basic", "batch-4096",
                                                         "batch-16384", "cap-128", "static"),
                            on_step=None) -> dict:
    """Embeddings/s on real chunks (a generated library's), interleaved: the plain loop, our path, and our path
    with one setting changed at a time, each over the same texts in each round. Returns {variant: {...}} with the
    median wall-clock rate and the median rate per CPU-second of this process (texts / CPU time: steadier than
    wall time on a shared machine, as long as threads do not spin)."""
    import ondevice
    from ondevice.rag.chunking import chunk_document
    from ondevice.rag.embedder import BucketedEncoder, SessionSettings
    from ondevice.rag.library import write_library
    from ondevice.rag.readers import read_document
    from ondevice.models.store import DEFAULT_EMBED_MODEL

    embed_model = embed_model or DEFAULT_EMBED_MODEL
    with tempfile.TemporaryDirectory() as tmp:
        write_library(Path(tmp), max(10, n_texts // 3))
        texts = [c.text for p in sorted(Path(tmp).rglob("*.*")) for c in chunk_document(read_document(p, p.read_bytes()))]
    random.Random(0).shuffle(texts)
    texts = texts[:n_texts]
    model = ondevice.load(embed_model, threads=threads)
    folder = Path(model._backend.ref.path)
    model.close()
    runners = {"plain onnxruntime loop (batches of 64, padded to the longest)": plain_onnx_loop(folder, threads)}
    from bench.embedding_variants import build_runner, is_model_variant

    work_dir = tempfile.TemporaryDirectory()
    work = Path(work_dir.name)
    settings = {"ours": {}, "spinning": {"spinning": True}, "opt-basic": {"optimization": "basic"}}
    for name in variants:
        if name in settings:
            runners[name] = BucketedEncoder(folder, SessionSettings(threads=threads, **settings[name])).embed
        elif name.startswith("batch-"):
            runners[name] = BucketedEncoder(folder, SessionSettings(threads=threads),
                                            batch_tokens=int(name.split("-")[1])).embed
        elif name.startswith("threads-"):  # intra-op threads, the other settings as ours
            runners[name] = BucketedEncoder(folder, SessionSettings(threads=int(name.split("-")[1]))).embed
        elif name.startswith("cap-"):
            runners[name] = BucketedEncoder(folder, SessionSettings(threads=threads),
                                            max_length=int(name.split("-")[1])).embed
        elif name == "static":
            from ondevice.rag.static import load_static

            runners[name] = load_static(embed_model, threads).embed
        elif is_model_variant(name):  # another form of the same model (bench/embedding_variants.py)
            if on_step:
                on_step(f"building {name}")
            runners[name] = build_runner(name, folder, Path(ondevice.resolve(embed_model).path), work, threads)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    cpu_rates: dict[str, list[float]] = {name: [] for name in runners}
    vectors = {}
    for name, run in runners.items():  # warm-up (and the static table's one-time distillation)
        run(texts[:8])
    for r in range(rounds):
        for name, run in runners.items():
            if on_step:
                on_step(f"round {r + 1}: {name}")
            t0, c0 = time.perf_counter(), time.process_time()
            vectors[name] = run(texts)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
            cpu_rates[name].append(len(texts) / max(time.process_time() - c0, 1e-9))
    base_name = next(iter(runners))
    base = vectors[base_name]
    base_rate = statistics.median(rates[base_name])
    base_cpu = statistics.median(cpu_rates[base_name])
    out = {}
    for name in runners:
        rate = statistics.median(rates[name])
        cpu = statistics.median(cpu_rates[name])
        cosine = (vectors[name] * base).sum(axis=1) if vectors[name].shape == base.shape else None
        out[name] = {"per_s": round(rate, 1), "x_plain": round(rate / base_rate, 2),
                     "per_cpu_s": round(cpu, 1), "x_plain_cpu": round(cpu / base_cpu, 2),
                     "rounds": [round(x, 1) for x in rates[name]],
                     "min_cosine_vs_plain": None if cosine is None else round(float(cosine.min()), 5)}
    out["_texts"] = {"n": len(texts), "mean_chars": round(sum(map(len, texts)) / len(texts))}
    work_dir.cleanup()
    return out
