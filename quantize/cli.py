"""`ondevice quantize` (make GGUF/ONNX variants, report, recommend), `ondevice eval` (PPL/KLD vs a reference) and
`ondevice distill` (a smaller student from a teacher).

These commands join the `ondevice` command through the "ondevice.commands" entry points in pyproject.toml; the
runtime does not import this package. Library imports stay inside the commands so `ondevice --help` stays cheap.
--window is the evaluation window (tokens per scored window); --ctx, as everywhere in `ondevice`, a context length.
"""

from __future__ import annotations

from pathlib import Path

import click

from ondevice.cli.common import console, err_console, json_option, print_json, threads_option
from ondevice.errors import InvalidInput

MB = 1024 * 1024


def _ctx_is_not_a_window(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """`--ctx` means a context length in every `ondevice` command; here it would be the window, so say which."""
    if value is not None:
        raise click.UsageError("--ctx is a context length in ondevice; the evaluation window is --window N", ctx)


window_option = click.option("--window", type=click.IntRange(min=16), default=512, show_default=True,
                             help="Evaluation window in tokens (the second half of each window is scored).")
old_ctx_option = click.option("--ctx", type=int, default=None, hidden=True, expose_value=False,
                              callback=_ctx_is_not_a_window)


def _num(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _measures_activations(parsed: list[tuple[str, str]]) -> bool:
    """Whether an ONNX target's options (-imx, -sN) gather activations from a calibration text."""
    from quantize.onnx_export import parse_llm_type, uses_calibration

    return any(fmt == "onnx" and uses_calibration(parse_llm_type(qtype)[1]) for fmt, qtype in parsed)


@click.command("quantize")
@click.argument("source")
@click.option("--to", "targets", multiple=True, metavar="FORMAT:TYPE[,TYPE]",
              help="Variants to make, e.g. gguf:Q4_K_M,Q8_0 or onnx:int4 (repeatable). ONNX types take options "
                   "after '-': an int4 algorithm (wls, the default; rtn, wls_mixed, k_quant, k_quant_mixed, hqq), "
                   "head4/head8, "
                   "b16..b128, imx (wls fit weighted by calibration activations), s1..s99 (that % of the layers' "
                   "weights at 8 bits, the most sensitive by measurement; slow), "
                   "e.g. onnx:int4-rtn-head4, onnx:int4-wls_mixed-imx. "
                   "Default: gguf:Q4_K_M,Q8_0 and onnx:int4.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the variants and report.md / report.json / quality.png.")
@click.option("--eval", "do_eval", is_flag=True, help="Measure PPL and KL divergence against the f16 reference.")
@window_option
@click.option("--chunks", default="20", show_default=True, metavar="N|all",
              help="Windows to score (the first N; 'all' scores the whole text, which takes much longer).")
@click.option("--text", "text_file", type=click.Path(path_type=Path), default=None,
              help="UTF-8 text to evaluate on (default: the standard library's pydoc text).")
@click.option("--imatrix", default=None, metavar="auto|FILE",
              help="Make the GGUF variants with an importance matrix: auto computes one on the f16 reference with "
                   "llama.cpp's llama-imatrix (built once: minutes), or give an imatrix GGUF. Enables IQ1/IQ2/IQ3 "
                   "types and Q2_K_S.")
@click.option("--calibration", type=click.Path(exists=True, path_type=Path), default=None,
              help="Text file or folder to compute --imatrix auto and ONNX -imx / -sN on (default: the standard "
                   "library's module docstrings, not the evaluation text).")
@click.option("--recommend", "do_recommend", is_flag=True, help="Pick the smallest variant that fits --ram-gb.")
@click.option("--ram-gb", type=float, default=None, help="RAM budget for --recommend.")
@click.option("--max-kld", type=float, default=None, help="Quality bound for --recommend (mean KLD, needs --eval).")
@click.option("--ctx", "--run-ctx", "n_ctx", type=click.IntRange(min=16), default=2048, show_default=True,
              help="Context length the recommended model must hold (sizes its KV cache).")
@threads_option
@json_option(help="Print the report (and recommendation) as JSON.")
def quantize_command(source, targets, out_dir, do_eval, window, chunks, text_file, imatrix, calibration, do_recommend,
                     ram_gb, max_kld, n_ctx, threads, as_json):
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
    parsed = parse_targets(targets, with_imatrix=imatrix is not None)  # fail on a bad type before any work
    if calibration is not None and imatrix != "auto" and not _measures_activations(parsed):
        raise InvalidInput("--calibration is the text for --imatrix auto or an ONNX -imx / -sN type; give one of "
                           "them too")
    from quantize.evaluate import parse_chunks

    report = quantize(source, targets, out_dir, evaluate=do_eval, window=window, text=text_file,
                      max_chunks=parse_chunks(chunks),
                      threads=threads, log=lambda message: err_console.print(f"[dim]{message}[/dim]"),
                      imatrix=imatrix, calibration=calibration)
    choice = recommend(report, ram_gb, max_kld, n_ctx) if do_recommend else None
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
@window_option
@old_ctx_option
@click.option("--chunks", default="20", show_default=True, metavar="N|all",
              help="Windows to score (the first N; 'all' scores the whole text, which takes much longer).")
@threads_option
@json_option(help="Print the statistics as JSON.")
def eval_command(model, ref, text_file, window, chunks, threads, as_json):
    """Perplexity and KL divergence of MODEL against REF, as `llama-perplexity --kl-divergence` reports them."""
    from quantize.evaluate import evaluate

    if text_file is not None and not text_file.is_file():
        raise InvalidInput(f"--text {text_file}: no such file")
    from quantize.evaluate import parse_chunks
    from quantize.progress import window_bar

    with window_bar("evaluating") as bar:
        result = evaluate(model, ref, text=text_file, window=window, max_chunks=parse_chunks(chunks),
                          threads=threads, progress=bar)
    if as_json:
        print_json(result)
        return
    r = result
    lines = [
        f"{r.n_chunks} windows of {r.window} tokens, {r.n_tokens} tokens scored",
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


def report_table(report):
    """The report as one table: sizes, perplexities per held-out text, gap recovered, cost."""
    from rich.table import Table

    table = Table(title=f"distill {report.teacher} -> {report.student_dir}", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("teacher params / layers", f"{report.teacher_params / 1e6:.1f} M / {report.teacher_layers}")
    table.add_row("student params / layers", f"{report.student_params / 1e6:.1f} M / {len(report.kept_layers)}")
    table.add_row(f"dropped blocks ({report.prune_method})", ",".join(map(str, report.dropped_layers)))
    for name, ppl in report.heldout.items():
        table.add_row(f"PPL {name}: teacher / pruned / distilled",
                      f"{ppl.teacher:.2f} / {ppl.pruned:.2f} / {ppl.distilled:.2f}")
        table.add_row(f"gap recovered ({name}, {ppl.tokens} tokens)", f"{ppl.recovered:.1%}")
    table.add_row("steps / tokens seen", f"{report.steps} / {report.tokens_seen:,}"
                  + (" (stopped early)" if report.stopped_early else ""))
    table.add_row("train wall / CPU / total", f"{report.wall_s:.0f} s / {report.cpu_s:.0f} s CPU / "
                  f"{report.total_s:.0f} s ({report.device})")
    table.add_row("steps/s, tokens/s", f"{report.steps_per_s:.3f}, {report.tokens_per_s:.0f}")
    if report.loss_png:
        table.add_row("loss curve", report.loss_png)
    if report.gguf:
        table.add_row("gguf", report.gguf)
    return table


@click.command("distill")
@click.argument("teacher")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Student HF folder.")
@click.option("--keep-layers", type=int, default=None, help="Blocks the student keeps.")
@click.option("--drop-layers", type=int, default=None, help="Blocks to drop (instead of --keep-layers).")
@click.option("--steps", type=int, default=200, show_default=True, help="Optimizer steps.")
@click.option("--data", type=click.Path(), default=None, help="Text file or folder (default: pydoc_data text).")
@click.option("--synthetic", type=int, default=0, show_default=True, help="Add N teacher-written training texts.")
@click.option("--seq-len", type=int, default=128, show_default=True)
@click.option("--batch", type=int, default=2, show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--warmup", type=int, default=10, show_default=True, help="Warm-up steps before cosine decay.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--ce-weight", type=float, default=0.5, show_default=True, help="Weight of CE on the data.")
@click.option("--hidden-weight", type=float, default=0.0, show_default=True, help="Weight of hidden-state loss.")
@click.option("--prune-method", type=click.Choice(["cosine", "iterative", "iterative-ppl"]), default="iterative",
              show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Autocast dtype (fp32 master weights); auto = bf16 where the CPU/GPU has native bf16.")
@click.option("--bf16", is_flag=True, help="Same as --dtype bf16.")
@click.option("--teacher-topk", type=int, default=0, show_default=True,
              help="Cache the teacher's top-k log-probs per chunk (no teacher pass when a chunk is seen again).")
@click.option("--train-chunks", type=int, default=0, show_default=True,
              help="Train on N chunks spread over the data (0 = all); with --teacher-topk, repeats are cheap.")
@click.option("--max-minutes", type=float, default=None, help="Stop training after this much wall time.")
@threads_option(help="CPU threads for training (default: one per physical core).")
@click.option("--max-cpu-minutes", type=float, default=None,
              help="Stop training after this much process CPU time (all threads): fair on a busy machine.")
@click.option("--eval-tokens", type=int, default=8192, show_default=True, help="Tokens per held-out text.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from DIR/checkpoint.pt exactly.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--then", "then", default=None, help="Chain into quantisation, e.g. gguf:Q4_K_M.")
@json_option(help="Print the report as JSON.")
def distill_command(teacher, out_dir, keep_layers, drop_layers, steps, data, synthetic, seq_len, batch, grad_accum,
                    lr, warmup, temperature, ce_weight, hidden_weight, prune_method, dtype, bf16, teacher_topk,
                    train_chunks, max_minutes, threads, max_cpu_minutes, eval_tokens, checkpoint_every, resume, seed,
                    then, as_json):
    """Distil TEACHER (HF folder, GGUF or alias) into a student with fewer layers, saved as an HF folder."""
    from quantize.distill import distill

    report = distill(teacher, out_dir, keep_layers=keep_layers, drop_layers=drop_layers, steps=steps, data=data,
                     synthetic=synthetic, seq_len=seq_len, batch=batch, grad_accum=grad_accum, lr=lr,
                     temperature=temperature, checkpoint_every=checkpoint_every, resume=resume, seed=seed,
                     then=then, prune_method=prune_method, eval_tokens=eval_tokens, progress=not as_json,
                     warmup=warmup, ce_weight=ce_weight, hidden_weight=hidden_weight,
                     dtype="bf16" if bf16 else dtype, teacher_topk=teacher_topk, threads=threads or 0,
                     train_chunks=train_chunks,
                     time_limit_s=max_minutes * 60 if max_minutes else None,
                     cpu_limit_s=max_cpu_minutes * 60 if max_cpu_minutes else None)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(report_table(report))
