"""`ondevice sweep`: many models x many quantisation types, each cell quantised, evaluated and benched in its own
process, locally or on a Ray cluster; one merged table and report (bench/sweep.py).

It joins the `ondevice` command through the "ondevice.commands" entry points in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

import click

from ondevice.cli.common import console, err_console, json_option, print_json, threads_option
from ondevice.errors import InvalidInput

MB = 1024 * 1024


def _budgets(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    try:
        budgets = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give GB numbers separated by commas, e.g. 4,8,16") from None
    if not budgets or any(b <= 0 for b in budgets):
        raise click.BadParameter(f"{value!r}: budgets must be positive GB numbers")
    return budgets


@click.command("sweep")
@click.argument("models", nargs=-1, required=True)
@click.option("--to", "targets", multiple=True, required=True, metavar="FORMAT:TYPE[,TYPE]",
              help="Variants of every model, e.g. gguf:Q8_0,Q4_K_M,Q4_0 or onnx:int4 (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for results/ (one file per finished cell), cells/, sweep.csv, sweep.json, report.md, "
                   "pareto.png. Re-running into it skips finished cells.")
@click.option("--eval", "do_eval", is_flag=True, help="Measure PPL and KL divergence against the f16 reference.")
@click.option("--bench", "do_bench", is_flag=True, help="Measure prompt and decode tok/s and peak RSS.")
@threads_option(help="CPU threads per cell (on Ray: the CPUs each cell task reserves; default 1 there).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: cells one after another here; ray: one Ray task per cell.")
@click.option("--address", default=None, help="Ray cluster to join (e.g. HEAD_IP:6379 or auto); default: start a "
                                                "local one for the sweep.")
@click.option("--window", type=click.IntRange(min=16), default=512, show_default=True,
              help="Evaluation window in tokens.")
@click.option("--chunks", type=click.IntRange(min=1), default=8, show_default=True,
              help="Evaluation windows per cell.")
@click.option("-p", "n_prompt", type=click.IntRange(min=0), default=128, show_default=True,
              help="Prompt tokens (--bench).")
@click.option("-n", "n_gen", type=click.IntRange(min=0), default=64, show_default=True,
              help="Generated tokens (--bench).")
@click.option("-r", "repetitions", type=click.IntRange(min=1), default=3, show_default=True,
              help="Repetitions (--bench).")
@click.option("--ram-gb", "ram_gb", default="2,4,8,16", show_default=True, callback=_budgets,
              help="RAM budgets (GB, comma-separated) to recommend a variant for.")
@click.option("--max-kld", type=float, default=None, help="Quality bound for the recommendation (needs --eval).")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=16), default=2048, show_default=True,
              help="Context length the recommended variant must hold (sizes its KV cache).")
@json_option(help="Print the merged sweep (rows, files) as JSON.")
def sweep_command(models, targets, out_dir, do_eval, do_bench, threads, engine, address, window, chunks, n_prompt,
                  n_gen, repetitions, ram_gb, max_kld, n_ctx, as_json):
    """Quantise every MODEL to every --to type, evaluate and bench each cell in its own process; merge the results."""
    from bench.sweep import SweepConfig, run_sweep

    if max_kld is not None and not do_eval:
        raise InvalidInput("--max-kld needs --eval (quality is only known after evaluation)")
    config = SweepConfig(do_eval, do_bench, threads, window, chunks, n_prompt, n_gen, repetitions)
    report = run_sweep(list(models), list(targets), out_dir, config, engine, address, ram_gb, max_kld, n_ctx,
                       log=lambda message: err_console.print(f"[dim]{message}[/dim]"))
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    if report.failed:  # the sweep finished, but not every cell: say so to scripts too
        err_console.print(f"{len(report.failed)} of {len(report.rows)} cells failed (see {report.files['markdown']})")
        raise SystemExit(1)


def _num(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _print(report) -> None:
    from rich.table import Table

    table = Table(title=f"sweep ({report.engine}): {len(report.ran)} run, {len(report.skipped)} reused, "
                        f"{len(report.failed)} failed, {report.seconds:.0f} s")
    for column in ("cell", "size MB", "PPL", "KLD", "pp tok/s", "tg tok/s", "status"):
        table.add_column(column, justify="left" if column in ("cell", "status") else "right")
    for r in report.rows:
        table.add_row(r.cell, _num(r.size_bytes / MB if r.size_bytes else None, 1), _num(r.ppl, 3),
                      _num(r.kld_mean, 5), _num(r.pp_tok_s, 1), _num(r.tg_tok_s, 1),
                      "ok" if r.status == "ok" else f"failed: {r.error}")
    console.print(table)
    console.print(f"report: {report.files['markdown']}  {report.files['csv']}  {report.files['json']}  "
                  f"{report.files['plot']}")
