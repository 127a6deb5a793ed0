"""`ondevice demo --out DIR` (what `make demo` runs): quantise, evaluate, bench, check targets, one report."""

from __future__ import annotations

import click

from ondevice.cli.common import err_console


@click.command("demo")
@click.option("--out", "out_dir", default="demo-report", show_default=True, help="Report folder.")
@click.option("--model", "source", default="smollm2-135m", show_default=True, help="Model to quantise.")
@click.option("-t", "--threads", type=int, default=None, help="CPU threads (default: physical cores).")
def demo_command(out_dir, source, threads):
    """The quantise-and-bench run on the embedded model: GGUF Q4_K_M/Q8_0 + ONNX int4, quality, speed, targets."""
    from bench.demo import run_demo
    from bench.report import markdown_table, targets_table
    from ondevice.cli.bench_cmd import _ProgressBar

    def log(message: str) -> None:
        err_console.print(f"[bold]demo[/bold] {message}")

    with _ProgressBar() as bar:
        result = run_demo(out_dir, source, threads=threads, log=log, progress=bar)
    click.echo(markdown_table(result.bench.results))
    click.echo("\n" + targets_table(result.bench))
    click.echo(f"\nreport: {result.out_dir}/report.md ({result.seconds:.0f} s)")
