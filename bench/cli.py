"""`ondevice bench`, `ondevice fit` and `ondevice demo`: parse, call bench's library, format.

These commands join the `ondevice` command through the "ondevice.commands" entry points in pyproject.toml; the
runtime does not import this package. `ondevice bench` is a group: `ondevice bench TOOL ...` runs one of the tools
of bench/tools_cmd.py, and anything else runs its default tool, `speed` (`ondevice bench MODEL... [options]`, the
command as it always was).
"""

from __future__ import annotations

import json
import sys

import click
from click_default_group import DefaultGroup

from bench.rag_cmd import rag_bench_command
from bench.tools_cmd import TOOLS
from ondevice.cli.common import (OnDeviceGroup, ProgressBar, console, ctx_option, err_console, json_option, print_json,
                                 threads_option)
from ondevice.errors import InvalidInput
from ondevice.models.memory import KV_TYPES


@click.command("speed", short_help="Speed, TTFT, load time and peak RSS, like llama-bench.")
@click.argument("models", nargs=-1)
@click.option("-p", "n_prompt", type=int, default=512, show_default=True, help="Prompt tokens (pp test).")
@click.option("-n", "n_gen", type=int, default=128, show_default=True, help="Generated tokens (tg test).")
@click.option("-r", "repetitions", type=int, default=5, show_default=True, help="Repetitions after one warm-up.")
@threads_option
@ctx_option(help="Context length (default 4096, capped at trained).")
@click.option("--kv-type", type=click.Choice(KV_TYPES), default="f16", show_default=True)
@click.option("--flash-attn", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Flash attention for GGUF models (the runtime option; auto = the runtime's default).")
@click.option("-o", "output", type=click.Choice(["md", "json", "jsonl", "csv"]), default="md", show_default=True)
@json_option(help="Print JSON (the same as -o json).")
@click.option("--reference", is_flag=True, help="Also time a bare libllama decode loop and print the ratio.")
@click.option("--native", is_flag=True, help="Also run llama.cpp's own llama-bench on each GGUF (same file, threads, "
                                             "-p/-n), interleaved with the public API for -r rounds, and print "
                                             "public / native per round (builds it once: minutes).")
@click.option("--probe", default=None, help="Also measure a shape probe: llama3-8b, qwen2.5-7b, mistral-7b, gemma2-9b.")
@click.option("--quant", default=None, help="Quant type of the probe (default Q4_K_M).")
@click.option("--targets", is_flag=True, help="Check the device targets (7-10B, 10-20 tok/s, 8-16 GB) on the probe.")
@click.option("--report", "report_dir", default=None, help="Write report.md, report.json and PNG plots here.")
@click.option("--scenario", "scenarios", multiple=True, type=click.Choice(["rag", "summarize", "rewrite", "chat", "all"]),
              help="Real-prompt scenarios instead of pp/tg: plain vs lookup decoding side by side (repeatable; "
                   "-n tokens, -r repetitions; with --probe also the verify cost and an 8B prediction).")
@click.option("--device", default=None, metavar="NAME",
              help="Predict for a catalog device (`ondevice devices list`) instead of measuring here: RAM fit, "
                   "decode tok/s and the targets (bench.predict). A device name, unlike the auto/cpu/gpu "
                   "--device of run and serve.")
def speed_command(models, n_prompt, n_gen, repetitions, threads, n_ctx, kv_type, flash_attn, output, as_json, reference,
                  native, probe, quant, targets, report_dir, scenarios, device):
    """Measure prompt processing and generation speed, TTFT, load time and peak memory, like llama-bench
    (the default tool: `ondevice bench MODEL...` is `ondevice bench speed MODEL...`)."""
    from bench.report import csv_text, markdown_table, roofline_lines, targets_table
    from bench.runner import BenchConfig
    from bench.suite import run_bench

    if as_json:
        if output not in ("md", "json"):
            raise InvalidInput(f"--json and -o {output} ask for two formats; give one")
        output = "json"
    if device:
        _predict_on_device(list(models), probe, quant, targets, device, threads, n_ctx, kv_type, output,
                           measuring=bool(reference or native or report_dir))
        return
    if scenarios:
        from bench.scenarios import bench_scenarios

        report = bench_scenarios(list(models), scenarios, threads, n_gen, repetitions, probe, quant)
        print_json(report) if output == "json" else click.echo(report["markdown"])
        return
    config = BenchConfig(n_prompt, n_gen, repetitions, threads, n_ctx, reference, kv_type, flash_attn=flash_attn).check()
    with ProgressBar() as bar:
        report = run_bench(list(models), config, probe, quant, targets, report_dir, progress=bar)
    natives = None
    if native:
        from bench.native import compare_native

        natives = compare_native(report.results, repetitions, progress=lambda m: err_console.print(m), config=config)
    if output == "json":
        from dataclasses import asdict

        print_json({**report.to_dict(), "native": [asdict(n) for n in natives]} if natives is not None
                   else report.to_dict())
    elif output == "jsonl":
        from dataclasses import asdict

        for r in report.results:
            click.echo(json.dumps(asdict(r)))
    elif output == "csv":
        click.echo(csv_text(report.results), nl=False)
    else:
        click.echo(markdown_table(report.results))
        if natives:
            from bench.native import native_table

            click.echo(f"\nllama.cpp's own llama-bench, same file and threads, interleaved with the public API "
                       f"({repetitions} rounds of alternating fresh processes, each with its own warm-up):\n"
                       + native_table(natives))
        click.echo(f"\nmemory bandwidth {report.bandwidth_gbps:.1f} GB/s")
        for line in roofline_lines(report):
            click.echo(line)
        if report.targets:
            click.echo("\n" + targets_table(report))
        if report.report_dir:
            click.echo(f"\nreport written to {report.report_dir}")


class BenchGroup(OnDeviceGroup, DefaultGroup):
    """`ondevice bench TOOL [ARGS]...` runs a tool; when the first argument names none (a model, a path, an option),
    the whole line goes to the default tool, `speed`, so `ondevice bench MODEL... [options]` works as it always did.

    click-default-group's DefaultGroup does the dispatch (the way `llm` makes `llm prompt` its default); this class
    adds the help: `ondevice bench --help` shows the default tool's options and lists the tools.
    """

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [MODEL]...")
        formatter.write_usage(ctx.command_path, "TOOL [ARGS]...")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.commands[self.default_cmd_name].format_options(ctx, formatter)  # the options of `bench MODEL...`
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.commands)
        rows = [(name + (" (default)" if name == self.default_cmd_name else ""), cmd.get_short_help_str(limit))
                for name, cmd in self.commands.items()]
        with formatter.section("Tools (`ondevice bench TOOL --help` for each one's options)"):
            formatter.write_dl(rows)


@click.group("bench", cls=BenchGroup, default="speed", default_if_no_args=True,
             short_help="Measure models (MODEL...) or run a bench tool (TOOL ...).")
def bench_command():
    """Measure speed and memory: `ondevice bench MODEL...` (the `speed` tool, options below), or run one of the
    bench tools listed below: `ondevice bench TOOL [ARGS]...`. A model file named like a tool: give it as a path
    (./calibrate) or after the default tool's name (`ondevice bench speed calibrate`)."""


bench_command.add_command(speed_command)
for _tool in TOOLS:
    bench_command.add_command(_tool)
bench_command.add_command(rag_bench_command, name="rag")  # the same command as `ondevice rag bench`


def module_alias(tool: str) -> None:
    """`python -m bench.X ARGS`, the spelling before `ondevice bench TOOL`: one line saying so on stderr, then
    `ondevice bench TOOL ARGS` (deprecated; docs use the new spelling)."""
    click.echo(f"note: `python -m bench.{tool.replace('-', '_')}` is deprecated: use `ondevice bench {tool}`",
               err=True)
    bench_command.main([tool, *sys.argv[1:]], prog_name="ondevice bench")


def _predict_on_device(models, probe, quant, targets, device, threads, n_ctx, kv_type, output, measuring) -> None:
    """`bench --device NAME`: a prediction for each MODEL and the probe (with --probe/--targets) on a catalog device;
    nothing is measured on this machine."""
    from bench.devices_cmd import print_prediction
    from bench.predict import DEFAULT_CTX, predict

    if measuring:
        raise InvalidInput("--device predicts for a catalog device; --reference, --native and --report measure this "
                           "machine: give one or the other")
    if output not in ("md", "json"):
        raise InvalidInput(f"-o {output} lists measurements; with --device use --json or the default text")
    if not models and not (probe or targets):
        raise InvalidInput("give MODELs, --probe NAME or --targets (the llama3-8b Q4_K_M probe) with --device")
    if quant and not (probe or targets):
        raise InvalidInput("--quant applies to --probe; give --probe NAME too")
    args = dict(device=device, threads=threads, n_ctx=n_ctx or DEFAULT_CTX, kv_type=kv_type)
    predictions = [predict(model=m, **args) for m in models]
    if probe or targets:
        predictions.append(predict(probe=probe or "llama3-8b", quant=quant or "Q4_K_M", **args))
    if output == "json":
        print_json([p.to_dict() for p in predictions])
        return
    for i, pred in enumerate(predictions):
        if i:
            console.print()
        print_prediction(pred)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


@click.command("fit")
@click.argument("model", required=False)
@click.option("--probe", default=None, help="A 7-10B shape: llama3-8b, qwen2.5-7b, mistral-7b, gemma2-9b.")
@click.option("--quant", default=None, help="Quant type for --probe (default Q4_K_M).")
@ctx_option(help="Context length (default 4096, capped at trained).")
@click.option("--kv-type", type=click.Choice(KV_TYPES), default="f16", show_default=True)
@click.option("--measure", is_flag=True, help="Also load MODEL in a fresh process, fill the context, and compare "
                                                "with its peak RSS.")
@threads_option(help="CPU threads for --measure (with --device: threads on that device).")
@click.option("--device", default=None, metavar="NAME",
              help="Predict for a catalog device (`ondevice devices list`) instead of this machine: its RAM, "
                   "then decode tok/s and the targets (bench.predict). A device name, unlike the auto/cpu/gpu "
                   "--device of run and serve.")
@json_option
def fit_command(model, probe, quant, n_ctx, kv_type, measure, threads, device, as_json):
    """Will a model fit in RAM? weights + KV cache + compute buffer + runtime, against RAM total and available."""
    from bench.fit import fit, fit_and_measure

    if device:
        from bench.devices_cmd import print_prediction
        from bench.predict import DEFAULT_CTX, predict

        if measure:
            raise InvalidInput("--measure loads the model on this machine; --device predicts for a catalog device: "
                               "give one or the other")
        pred = predict(model, probe, quant, device, threads=threads, n_ctx=n_ctx or DEFAULT_CTX, kv_type=kv_type)
        print_json(pred.to_dict()) if as_json else print_prediction(pred)
        return
    if measure:
        if model is None:
            raise InvalidInput("--measure needs a MODEL file (a probe is measured with `ondevice bench --probe`)")
        with ProgressBar() as bar:
            check = fit_and_measure(model, n_ctx, kv_type, threads, progress=bar)
        est = check.estimate
    else:
        check, est = None, fit(model, probe, quant, n_ctx, kv_type)
    if as_json:
        print_json(check or est)
        return
    from rich.table import Table

    console.print(f"fit: {est.model} at {est.n_ctx} tokens of context, KV cache {est.kv_type}")
    table = Table(show_header=False)
    for label, value in (("weights", est.weights_bytes), ("KV cache", est.kv_bytes), ("compute buffer",
                         est.compute_bytes), ("runtime", est.runtime_bytes), ("total needed", est.total_bytes),
                         ("RAM available", est.ram_available_bytes), ("RAM total", est.ram_total_bytes)):
        table.add_row(label, _gb(value))
    if check:
        table.add_row("measured peak RSS, running", f"{_gb(check.measured_run_peak_rss_bytes)} "
                      f"(estimate {check.error_pct:+.1f}%)")
        table.add_row("measured peak RSS, with load", _gb(check.measured_peak_rss_bytes))
    table.add_row("verdict", est.verdict)
    console.print(table)


@click.command("demo")
@click.option("--out", "out_dir", default="demo-report", show_default=True, help="Report folder.")
@click.option("--model", "source", default="smollm2-135m", show_default=True, help="Model to quantise.")
@threads_option
@json_option(help="Print the bench report as JSON (report folder and seconds included).")
def demo_command(out_dir, source, threads, as_json):
    """The quantise-and-bench run on the embedded model: GGUF Q4_K_M/Q8_0 + ONNX int4, quality, speed, targets."""
    from bench.demo import run_demo
    from bench.report import markdown_table, targets_table

    def log(message: str) -> None:
        err_console.print(f"[bold]demo[/bold] {message}")

    with ProgressBar() as bar:
        result = run_demo(out_dir, source, threads=threads, log=log, progress=bar)
    if as_json:
        print_json({"out_dir": result.out_dir, "seconds": result.seconds, "bench": result.bench.to_dict()})
        return
    click.echo(markdown_table(result.bench.results))
    click.echo("\n" + targets_table(result.bench))
    click.echo(f"\nreport: {result.out_dir}/report.md ({result.seconds:.0f} s)")
