"""`ondevice rag`: index local files, search them, ask questions with citations, evaluate retrieval."""

from __future__ import annotations

import sys

import click

from ondevice.cli.common import PluginGroup, console, err_console, json_option, print_json, threads_option
from ondevice.plugins import RAG_COMMANDS_GROUP
from ondevice.models.store import DEFAULT_MODEL

index_option = click.option("--index", "index_name", default=None, metavar="NAME|FILE",
                            help="Index name (under the model store's rag/ folder) or .sqlite file; default 'default'.")
class _RagGroup(PluginGroup):
    """rag's own subcommands, then those installed packages add ("ondevice.rag_commands": bench's `rag bench`)."""

    plugin_group = RAG_COMMANDS_GROUP


embed_option = click.option("--embed-model", default=None, metavar="MODEL",
                            help="Embedding model (alias, ONNX folder or GGUF); default: the index's own, "
                                 "or minilm-l6 for a new index.")


@click.group("rag", cls=_RagGroup)
def rag_group():
    """Ask questions of your own files: hybrid search and cited answers, fully offline."""


def _open(index_name, embed_model=None, create=False, threads=None):
    from ondevice.rag import Index

    return Index(index_name, embed_model=embed_model, create=create, threads=threads)


@rag_group.command("index")
@click.argument("paths", nargs=-1, required=True)
@index_option
@embed_option
@click.option("--exclude", multiple=True, metavar="GLOB", help=".gitignore-style pattern to skip (repeatable).")
@click.option("--watch", is_flag=True, help="Keep running and re-index when files change.")
@click.option("--first-pass", default=None, metavar="MODEL",
              help="For a new index: embed with this fast model first (minilm-l6-static: searchable in about a "
                   "minute at 50,000 chunks), then fill in --embed-model's vectors and switch to them.")
@json_option
def index_command(paths, index_name, embed_model, exclude, watch, first_pass, as_json):
    """Index files and folders (incremental: only changed files are re-read)."""
    with _open(index_name, embed_model, create=True) as index:
        summary = _index_with_progress(index, paths, exclude, quiet=as_json, first_pass=first_pass)
        _print_summary(summary, as_json)
        if watch:
            from ondevice.rag.watch import watch as watch_paths

            err_console.print(f"watching {', '.join(paths)} (Ctrl-C to stop)")
            watch_paths(index, paths, exclude, on_update=lambda s: _print_summary(s, as_json))


def _index_with_progress(index, paths, exclude, quiet: bool, first_pass: str | None = None):
    if quiet or not sys.stderr.isatty():
        return index.add(paths, exclude=exclude, first_pass=first_pass)  # a pending fill runs inside, unshown
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    def columns(what: str, unit: str):
        return (TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]:.0f} embeddings/s"), TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"))

    def clock(seconds):
        return "-" if seconds is None else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"

    with Progress(*columns("indexing", "files"), console=err_console, transient=True) as progress:
        task = progress.add_task("index", total=None, chunks=0, rate=0.0, eta="-")

        def update(event):
            progress.update(task, completed=event.files_done, total=event.files_total, chunks=event.chunks,
                            rate=event.embeddings_per_s, eta=clock(event.eta_s))

        summary = index.add(paths, exclude=exclude, on_progress=update, first_pass=first_pass, fill=False)
    if index.store.next_embed_model:
        err_console.print(f"searchable now with {index.store.embed_model}; filling in "
                          f"{index.store.next_embed_model} vectors (Ctrl-C stops; the next run resumes)")
        with Progress(*columns(f"filling in {index.store.next_embed_model}", "chunks"), console=err_console,
                      transient=True) as progress:
            task = progress.add_task("fill", total=None, chunks=0, rate=0.0, eta="-")

            def update_fill(event):
                progress.update(task, completed=event.done, total=event.total, chunks=event.done,
                                rate=event.embeddings_per_s, eta=clock(event.eta_s))

            index.note_fill(summary, index.fill(update_fill))
    return summary


def _print_summary(summary, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    console.print(f"[bold]{summary.index}[/]: {summary.files_seen} files seen — {summary.added} added, "
                  f"{summary.updated} updated, {summary.renamed} renamed, {summary.deleted} deleted, "
                  f"{summary.unchanged} unchanged; {summary.chunks_written} chunks written, {summary.embedded} "
                  f"embedded ({summary.embeddings_per_s:.0f}/s), {summary.reused_vectors} vectors reused; "
                  f"{summary.total_files} files / {summary.total_chunks} chunks in the index "
                  f"({summary.seconds:.1f} s)" + (f"; {summary.filled} {summary.embed_model} vectors filled in"
                                                 if summary.filled else ""))
    for failed in summary.failed:
        console.print(f"[yellow]skipped (could not parse)[/] {failed.path}: {failed.reason}")
    for skipped in summary.skipped:
        console.print(f"[dim]skipped[/] {skipped.path}: {skipped.reason}")


@rag_group.command("search")
@click.argument("query")
@index_option
@embed_option
@click.option("--k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Results to return.")
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "vector"]), default="hybrid", show_default=True)
@click.option("--rerank", is_flag=True, help="Re-order the top 10 by how likely the local LLM finds the query after "
                                            "each (better on paraphrases; a few seconds per query).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="LLM for --rerank.")
@json_option
def search_command(query, index_name, embed_model, k, mode, rerank, model, as_json):
    """Hybrid (BM25 + vector) search of an index."""
    with _open(index_name, embed_model) as index:
        results = index.search(query, k, mode, rerank_model=model if rerank else None)
    if as_json:
        print_json({"query": query, "results": [_result_json(r) for r in results]})
        return
    from rich.table import Table

    from ondevice.rag.answer import display_path

    table = Table("#", "score", "source", "text", show_lines=True)
    for n, r in enumerate(results, start=1):
        table.add_row(str(n), f"{r.score:.4f}", f"{display_path(r.path)}:{r.span}", r.text[:300])
    console.print(table)


def _result_json(r) -> dict:
    item = {"path": r.path, "score": r.score, "text": r.text}
    if r.page is not None:
        item["page"] = r.page
    else:
        item.update(start_line=r.start_line, end_line=r.end_line)
    if r.relevance is not None:
        item["relevance"] = r.relevance
    return item


@rag_group.command("ask")
@click.argument("question")
@index_option
@embed_option
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="LLM that writes the answer.")
@click.option("--k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Chunks to consider.")
@click.option("--rerank", is_flag=True, help="Re-order the top 10 by the LLM's query likelihood before answering "
                                            "(a few seconds more).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--remote", default=None, metavar="URL",
              help="Let a remote OpenAI-compatible model answer (remote:MODEL@URL); sources with sensitive data "
                   "never leave this device.")
@click.option("--mode", "answer_mode", type=click.Choice(["auto", "extractive", "generative"]), default="auto",
              show_default=True, help="extractive: quote the retrieved sentence the model picks, with its exact "
                                      "lines; generative: the model writes the answer; auto: generative until extractive measures ahead (docs/rag.md).")
@click.option("--lead-in", is_flag=True, help="Extractive: one generated line before the quote, from it alone.")
@json_option
def ask_command(question, index_name, embed_model, model, k, rerank, max_tokens, remote, answer_mode, lead_in,
                as_json):
    """Answer a question from the index with the local model, with numbered citations."""
    on_text = None if as_json else (lambda piece: click.echo(piece, nl=False))
    if remote and not remote.startswith("remote:"):
        remote = f"remote:{remote}"
    with _open(index_name, embed_model) as index:
        answer = index.ask(question, model=model, k=k, on_text=on_text, rerank=rerank, max_tokens=max_tokens,
                           remote=remote, mode=answer_mode, lead_in=lead_in)
    if as_json:
        print_json({"question": question, "answer": answer.answer, "found": answer.found, "mode": answer.mode,
                    "citations": [{"number": c.number, "path": c.path, "span": c.span} for c in answer.citations],
                    "quotes": [{"number": q.number, "text": q.text, "path": q.path, "start_line": q.start_line,
                                "end_line": q.end_line, "page": q.page, "verbatim": q.verbatim}
                               for q in answer.quotes],
                    "lead_in": answer.lead_in,
                    "routed_to": answer.routed_to, "route_reason": answer.route_reason,
                    "withheld": [{"path": c.path, "span": c.span} for c in answer.withheld]})
        return
    click.echo()
    for citation in answer.citations:
        click.echo(str(citation))
    if remote:
        click.echo(f"(answered {answer.routed_to}: {answer.route_reason})", err=True)
        for kept in answer.withheld:
            click.echo(f"(kept on this device: {kept.path}{':' + kept.span if kept.span else ''})", err=True)


@rag_group.command("eval")
@click.argument("qa_file")
@index_option
@embed_option
@click.option("--k", "k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "vector"]), default="hybrid", show_default=True)
@click.option("--model", default=None, help="Also answer each question with this LLM (answer quality per mode).")
@click.option("--answer-modes", default="extractive,generative", show_default=True, metavar="MODES",
              help="With --model: comma-separated answer modes to compare (extractive, generative, auto), "
                   "run interleaved question by question.")
@click.option("--lead-in", is_flag=True, help="Extractive answers start with a generated line.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=160, show_default=True,
              help="Longest generated answer.")
@click.option("--rerank", is_flag=True, help="Search (and answer) as --rerank does: the top 10 re-ordered by the "
                                            "LLM's query likelihood (--model's, else the default LLM).")
@threads_option(help="Threads for the LLM and the embedder (default: physical cores).")
@json_option
def eval_command(qa_file, index_name, embed_model, k, mode, model, answer_modes, lead_in, max_tokens, rerank,
                 threads, as_json):
    """Recall@1/@5, MRR; with --model, per answer mode: answers containing the fact, citing its file, "not found"
    on unanswerable questions, seconds per answer. QA.jsonl: {"question", "answer", "source"} per line, answer
    and source null for a question the files do not answer."""
    from ondevice.errors import InvalidInput
    from ondevice.rag.answer import ANSWER_MODES
    from ondevice.rag.evaluate import read_qa

    read_qa(qa_file)  # malformed input fails before the index and models load
    modes = [m.strip() for m in answer_modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ANSWER_MODES]
    if bad or not modes:
        raise InvalidInput(f"unknown answer mode {', '.join(bad) or repr(answer_modes)}; choose from "
                           f"{', '.join(ANSWER_MODES)}")
    progress = None
    if model is not None and not as_json:
        progress = lambda done, total: err_console.print(f"answered {done}/{total}", end="\r")  # noqa: E731
    with _open(index_name, embed_model, threads=threads) as index:
        report = index.evaluate(qa_file, k=k, mode=mode, model=model, answer_modes=modes, lead_in=lead_in,
                                on_progress=progress, max_tokens=max_tokens, threads=threads, rerank=rerank)
    if as_json:
        print_json(report)
        return
    answerable = sum(1 for item in report.items if item.source is not None)
    console.print(f"{report.n} questions ({answerable} answerable), {mode}{' + rerank' if rerank else ''}: "
                  f"recall@1 {report.recall_at_1:.2f}, "
                  f"recall@5 {report.recall_at_5:.2f}, MRR {report.mrr:.3f}")
    if not report.answer_modes:
        return
    from rich.table import Table

    def share(value):
        return "-" if value is None else f"{value:.2f}"

    table = Table("mode", "contains fact (source retrieved)", "cites its file (source retrieved)",
                  "fact among candidates", "contains fact (all answerable)", "not found (unanswerable)",
                  "s/answer mean", "p50", "max")
    for q in report.answer_modes:
        table.add_row(q.mode, f"{share(q.contains_fact)} of {q.retrieved}", f"{share(q.cites_source)} of "
                      f"{q.retrieved}", share(q.fact_in_candidates), f"{share(q.contains_fact_all)} of {q.answerable}",
                      f"{share(q.not_found)} of {q.unanswerable}", f"{q.seconds_mean:.2f}", f"{q.seconds_p50:.2f}",
                      f"{q.seconds_max:.2f}")
    console.print(table)
