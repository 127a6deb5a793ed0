"""`ondevice rag bench` (also `ondevice bench rag`): RAG's indexing, embedding and retrieval benchmarks
(bench/rag_bench.py). Joined to the runtime's `rag` group through the "ondevice.rag_commands" entry point, so the
runtime never imports bench."""

from __future__ import annotations

import time

import click

from ondevice.cli.common import console, err_console, json_option, print_json

EMBEDDING_VARIANTS = "ours,spinning,opt-basic,batch-4096,batch-16384,cap-128,static"


def _chunk_counts(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        sizes = ()
    if any(n < 1 for n in sizes):
        sizes = ()
    if not sizes and value.strip():
        raise click.BadParameter(f"expected chunk counts separated by commas, got {value!r}")
    return sizes


@click.command("bench")
@click.option("--chunks", type=click.IntRange(min=100), default=10_000, show_default=True)
@click.option("--files", type=click.IntRange(min=10), default=500, show_default=True)
@click.option("--queries", type=click.IntRange(min=5), default=100, show_default=True)
@click.option("--library", type=click.IntRange(min=10), default=None, metavar="N",
              help="Generate N realistic files (notes, Markdown, PDF, DOCX, code) with known facts: first-index and "
                   "one-file re-index time, facts found, then size, re-index time, p50/p95 and memory at --scales.")
@click.option("--scales", default="10000,50000,100000", show_default=True, metavar="CHUNKS,...",
              callback=_chunk_counts, help="Index sizes (chunks) for --library's latency runs ('' for none).")
@click.option("--first-pass", default=None, metavar="MODEL",
              help="With --library: index with this fast model first (minilm-l6-static), then fill in --embed-model; "
                   "reports when the index became searchable, the facts each finds and the fill's time.")
@click.option("--fill/--no-fill", default=True, show_default=True,
              help="With --first-pass: also fill in --embed-model (--no-fill: measure the first pass only).")
@click.option("--embedding", is_flag=True,
              help="Instead: embeddings/s on real chunks, the plain onnxruntime loop vs ours (and --variants), "
                   "interleaved.")
@click.option("--texts", type=click.IntRange(min=1), default=128, show_default=True, help="Texts for --embedding.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Rounds for --embedding.")
@click.option("--variants", default=EMBEDDING_VARIANTS, show_default=True, help="Variants for --embedding.")
@click.option("--embed-model", default=None, metavar="MODEL",
              help="Embedding model (alias, ONNX folder or GGUF); default minilm-l6.")
@json_option
def rag_bench_command(chunks, files, queries, library, scales, first_pass, fill, embedding, texts, rounds, variants,
                      embed_model, as_json):
    """Indexing files/s (without embedding), embeddings/s, retrieval p95 at N chunks, query-process memory;
    `--library N` on a generated library, `--embedding` for the encoder alone."""
    from bench.rag_bench import run_benchmark, run_embedding_benchmark, run_first_pass_benchmark, run_library_benchmark

    def step(message: str) -> None:
        if not as_json:
            err_console.print(f"[dim][{time.strftime('%H:%M:%S')}] {message}[/]")

    if embedding:
        result = run_embedding_benchmark(texts, rounds, embed_model=embed_model,
                                         variants=tuple(v for v in variants.split(",") if v), on_step=step)
        if as_json:
            print_json(result)
        else:
            for name, row in result.items():
                console.print(f"{name:64} {row}")
        return
    if first_pass and not library:
        raise click.UsageError("--first-pass needs --library N")
    if library and first_pass:
        report = run_first_pass_benchmark(library, first_pass, queries, embed_model, on_step=step, fill=fill)
    elif library:
        report = run_library_benchmark(library, scales, queries, embed_model, on_step=step)
    else:
        report = run_benchmark(n_chunks=chunks, n_files=files, n_queries=queries, embed_model=embed_model)
    if as_json:
        print_json(report)
        return
    for key, value in report.__dict__.items():
        if key == "scale":
            for point in value:
                console.print(f"{'at ' + str(point.chunks) + ' chunks':32} {point.__dict__}")
        else:
            console.print(f"{key:32} {value}")
