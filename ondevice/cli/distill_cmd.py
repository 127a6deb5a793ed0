"""`ondevice distill`: make a smaller student from a teacher (layer pruning + logit distillation)."""

from __future__ import annotations

import click
from rich.table import Table

from ondevice.cli.common import console, print_json


def report_table(report) -> Table:
    """The report as one table: sizes, perplexities per held-out text, gap recovered, cost."""
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
@click.option("--seq-len", type=int, default=256, show_default=True)
@click.option("--batch", type=int, default=4, show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--warmup", type=int, default=10, show_default=True, help="Warm-up steps before cosine decay.")
@click.option("--temperature", type=float, default=2.0, show_default=True)
@click.option("--ce-weight", type=float, default=0.0, show_default=True, help="Weight of CE on the data.")
@click.option("--hidden-weight", type=float, default=0.0, show_default=True, help="Weight of hidden-state loss.")
@click.option("--prune-method", type=click.Choice(["cosine", "iterative", "iterative-ppl"]), default="iterative",
              show_default=True)
@click.option("--bf16", is_flag=True, help="bf16 autocast (fp32 master weights).")
@click.option("--max-minutes", type=float, default=None, help="Stop training after this much wall time.")
@click.option("--eval-tokens", type=int, default=8192, show_default=True, help="Tokens per held-out text.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from DIR/checkpoint.pt exactly.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--then", "then", default=None, help="Chain into quantisation, e.g. gguf:Q4_K_M.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def distill_command(teacher, out_dir, keep_layers, drop_layers, steps, data, synthetic, seq_len, batch, grad_accum,
                    lr, warmup, temperature, ce_weight, hidden_weight, prune_method, bf16, max_minutes, eval_tokens,
                    checkpoint_every, resume, seed, then, as_json):
    """Distil TEACHER (HF folder, GGUF or alias) into a student with fewer layers, saved as an HF folder."""
    from quantize.distill import distill

    report = distill(teacher, out_dir, keep_layers=keep_layers, drop_layers=drop_layers, steps=steps, data=data,
                     synthetic=synthetic, seq_len=seq_len, batch=batch, grad_accum=grad_accum, lr=lr,
                     temperature=temperature, checkpoint_every=checkpoint_every, resume=resume, seed=seed,
                     then=then, prune_method=prune_method, eval_tokens=eval_tokens, progress=not as_json,
                     warmup=warmup, ce_weight=ce_weight, hidden_weight=hidden_weight,
                     dtype="bf16" if bf16 else "fp32",
                     time_limit_s=max_minutes * 60 if max_minutes else None)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(report_table(report))
