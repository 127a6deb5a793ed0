"""`ondevice quantize` (make GGUF/ONNX variants, report, recommend) and `ondevice eval` (PPL/KLD vs a reference)."""

from __future__ import annotations

from pathlib import Path

import click

from ondevice.cli.common import console, err_console, print_json
from ondevice.errors import InvalidInput

MB = 1024 * 1024


def _num(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@click.command("quantize")
@click.argument("source")
@click.option("--to", "targets", multiple=True, metavar="FORMAT:TYPE[,TYPE]",
              help="Variants to make, e.g. gguf:Q4_K_M,Q8_0 or onnx:int4 (repeatable). "
                   "Default: gguf:Q4_K_M,Q8_0 and onnx:int4.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the variants and report.md / report.json / quality.png.")
@click.option("--eval", "do_eval", is_flag=True, help="Measure PPL and KL divergence against the f16 reference.")
@click.option("--ctx", type=click.IntRange(min=16), default=512, show_default=True, help="Evaluation window.")
@click.option("--chunks", type=click.IntRange(min=1), default=None, help="Evaluate only the first N windows.")
@click.option("--text", "text_file", type=click.Path(path_type=Path), default=None,
              help="UTF-8 text to evaluate on (default: the standard library's pydoc text).")
@click.option("--recommend", "do_recommend", is_flag=True, help="Pick the smallest variant that fits --ram-gb.")
@click.option("--ram-gb", type=float, default=None, help="RAM budget for --recommend.")
@click.option("--max-kld", type=float, default=None, help="Quality bound for --recommend (mean KLD, needs --eval).")
@click.option("--run-ctx", type=click.IntRange(min=16), default=2048, show_default=True,
              help="Context the recommended model must hold (sizes its KV cache).")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=None, help="CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the report (and recommendation) as JSON.")
def quantize_command(source, targets, out_dir, do_eval, ctx, chunks, text_file, do_recommend, ram_gb, max_kld,
                     run_ctx, threads, as_json):
    """Make quantised variants of SOURCE (alias, GGUF file or HF folder) and report size, speed and quality."""
    from quantize.pipeline import DEFAULT_TARGETS, parse_targets, quantize
    from quantize.recommend import recommend

    if do_recommend and ram_gb is None:
        raise InvalidInput("--recommend needs --ram-gb N (the RAM budget in GB)")
    if max_kld is not None and not do_eval:
        raise InvalidInput("--max-kld needs --eval (quality is only known after evaluation)")
    if text_file is not None and not text_file.is_file():
        raise InvalidInput(f"--text {text_file}: no such file")
    targets = list(targets) or list(DEFAULT_TARGETS)
    parse_targets(targets)  # fail on a bad type before any work
    report = quantize(source, targets, out_dir, evaluate=do_eval, ctx=ctx, text=text_file, max_chunks=chunks,
                      threads=threads, log=lambda message: err_console.print(f"[dim]{message}[/dim]"))
    choice = recommend(report, ram_gb, max_kld, run_ctx) if do_recommend else None
    if as_json:
        from quantize.report import to_json

        data = to_json(report)
        if choice is not None:
            data["recommendation"] = {"variant": choice.variant.name if choice.variant else None,
                                      "reason": choice.reason, "needed_bytes": choice.needed_bytes}
        print_json(data)
        return
    _print_report(report)
    if choice is not None:
        console.print(f"\n[bold]Recommendation:[/bold] {choice.reason}")


def _print_report(report) -> None:
    from rich.table import Table

    table = Table(title=f"{report.source} -> {report.out_dir}")
    for column in ("variant", "size MB", "bpw", "PPL", "ΔPPL", "KLD", "same top %", "tok/s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in [report.reference, *report.variants]:
        table.add_row(v.name, f"{v.size_bytes / MB:.1f}", f"{v.bpw:.2f}", _num(v.ppl, 3), _num(v.delta_ppl, 3),
                      _num(v.kld_mean, 5), _num(v.same_top_pct, 2), _num(v.decode_tps, 1))
    console.print(table)
    console.print(f"report: {report.files.get('markdown')}  {report.files.get('json')}  {report.files.get('plot')}")


@click.command("eval")
@click.argument("model")
@click.option("--ref", required=True, help="Reference model (the f16/f32 GGUF of the same weights).")
@click.option("--text", "text_file", type=click.Path(path_type=Path), default=None,
              help="UTF-8 text to evaluate on (default: the standard library's pydoc text).")
@click.option("--ctx", type=click.IntRange(min=16), default=512, show_default=True, help="Window length.")
@click.option("--chunks", type=click.IntRange(min=1), default=None, help="Evaluate only the first N windows.")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=None, help="CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def eval_command(model, ref, text_file, ctx, chunks, threads, as_json):
    """Perplexity and KL divergence of MODEL against REF, as `llama-perplexity --kl-divergence` reports them."""
    from quantize.evaluate import evaluate

    if text_file is not None and not text_file.is_file():
        raise InvalidInput(f"--text {text_file}: no such file")
    result = evaluate(model, ref, text=text_file, ctx=ctx, max_chunks=chunks, threads=threads,
                      progress=lambda i, n: err_console.print(f"[dim]window {i}/{n}[/dim]"))
    if as_json:
        print_json(result)
        return
    r = result
    lines = [
        f"{r.n_chunks} windows of {r.ctx} tokens, {r.n_tokens} tokens scored",
        f"Mean PPL(Q)                   : {r.ppl:10.6f} ± {r.ppl_err:10.6f}",
        f"Mean PPL(base)                : {r.ppl_base:10.6f} ± {r.ppl_base_err:10.6f}",
        f"Cor(ln(PPL(Q)), ln(PPL(base))): {100 * r.ppl_correlation:6.2f}%",
        f"Mean ln(PPL(Q)/PPL(base))     : {r.ln_ppl_ratio:10.6f} ± {r.ln_ppl_ratio_err:10.6f}",
        f"Mean PPL(Q)/PPL(base)         : {r.ppl_ratio:10.6f}",
        f"Mean PPL(Q)-PPL(base)         : {r.delta_ppl:10.6f} ± {r.delta_ppl_err:10.6f}",
        f"Mean    KLD: {r.kld_mean:10.6f} ± {r.kld_err:10.6f}",
        f"Maximum KLD: {r.kld_max:10.6f}",
        f"99.9%   KLD: {r.kld_p999:10.6f}",
        f"99.0%   KLD: {r.kld_p99:10.6f}",
        f"Median  KLD: {r.kld_median:10.6f}",
        f"RMS Δp    : {r.rms_dp_pct:6.3f} ± {r.rms_dp_err:5.3f} %",
        f"Same top p: {r.same_top_pct:6.3f} ± {r.same_top_err:5.3f} %",
    ]
    click.echo("\n".join(lines))
