"""The bench tools, `ondevice bench TOOL ...`: one click command each, beside the default `ondevice bench MODEL`.

Each command parses, calls one measurement of bench's library (the module named in its help) and formats; the
option names and defaults are those of the `python -m bench.X` scripts they replace. bench/cli.py joins them to the
`ondevice bench` group. Heavy imports stay inside the commands, so `ondevice bench --help` stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ondevice.cli.common import ctx_option, json_option, print_json, threads_option
from ondevice.errors import InvalidInput


def _int_list(allow_empty: bool = False):
    """A callback: "1,2,4,8" -> (1, 2, 4, 8), positive integers (empty items ignored; none at all only with
    `allow_empty`)."""

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
        try:
            numbers = tuple(int(v) for v in value.split(",") if v.strip())
        except ValueError:
            numbers = (0,)
        if any(n < 1 for n in numbers) or not (numbers or allow_empty):
            raise click.BadParameter(f"{value!r}: give positive integers separated by commas, e.g. 1,2,4,8")
        return numbers

    return parse


def _floats(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    try:
        numbers = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        numbers = []
    if not numbers:
        raise click.BadParameter(f"{value!r}: give numbers separated by commas, e.g. 0,0.8")
    return numbers


def _names(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter(f"{value!r}: give names separated by commas, e.g. cpu,openvino")
    return names


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.command("chat-turns", short_help="Chat TTFT turn by turn, ours vs llama-cpp-python.")
@click.argument("model", default="smollm2-135m")
@click.option("--turns", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--turn-tokens", type=click.IntRange(min=1), default=400, show_default=True,
              help="Tokens of each new user message.")
@click.option("--answer-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@threads_option
@ctx_option(default=8192, help="Context length of both sides.")
@click.option("--no-reference", is_flag=True, help="Skip llama-cpp-python.")
@click.option("--restore-tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also time a restart from a saved session of about this many tokens.")
@click.option("--chat-template", default=None, help="Jinja chat template file, or 'plain' (role-prefixed lines), "
                                                    "for a model without one (both sides use it).")
@click.option("--flash-attn", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Flash attention on both sides (auto: off with an f16 KV cache).")
@json_option
def chat_turns_command(model, turns, turn_tokens, answer_tokens, threads, n_ctx, no_reference, restore_tokens,
                       chat_template, flash_attn, as_json):
    """Chat TTFT over a multi-turn conversation, ours vs llama-cpp-python, turn by turn (bench/chat_turns.py)."""
    from bench.chat_turns import PLAIN_TEMPLATE, format_result, run_chat_turns

    template = None
    if chat_template == "plain":
        template = PLAIN_TEMPLATE
    elif chat_template:
        try:
            template = Path(chat_template).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read --chat-template: {exc.strerror}: {chat_template}") from None
    result = run_chat_turns(model, turns, turn_tokens, answer_tokens, threads, n_ctx, not no_reference,
                            restore_tokens, template, flash_attn)
    print_json(result) if as_json else click.echo(format_result(result))


@click.command("kv-cache", short_help="Quantised KV cache: quality, memory, decode speed.")
@click.argument("models", nargs=-1, required=True)
@click.option("--chunks", type=click.IntRange(min=1), default=8, show_default=True,
              help="512-token windows of pydoc text to score.")
@threads_option
@click.option("--depths", default="512,4096", show_default=True, callback=_int_list(allow_empty=True),
              help="Context depths for decode speed (comma-separated; \"\" for quality only).")
@json_option
def kv_cache_command(models, chunks, threads, depths, as_json):
    """A quantised KV cache's quality (KLD, same top), memory and decode speed, per model (bench/kv_cache.py)."""
    from bench.kv_cache import markdown, measure

    results = [r for m in models for r in measure(m, chunks, threads=threads, depths=depths)]
    print_json(results) if as_json else click.echo(markdown(results))


@click.command("batch-steps", short_help="Cost of one batch-engine decode step with N sequences.")
@click.argument("model", default="smollm2-135m")
@threads_option
@click.option("--sequences", default="1,2,4,8", show_default=True, callback=_int_list(),
              help="Comma-separated sequence counts; the first is the base.")
@click.option("--steps", type=click.IntRange(min=1), default=30, show_default=True, help="Timed steps per count.")
@json_option
def batch_steps_command(model, threads, sequences, steps, as_json):
    """What one decode step of the server's batch engine costs with N sequences in it (bench/batch_steps.py)."""
    import ondevice
    from bench.batch_steps import measure

    with ondevice.load(model, threads=threads, n_ctx=512) as m:
        rows = measure(m, list(sequences), steps)
        name, used = m.name, m.threads
    if as_json:
        print_json({"model": name, "threads": used, "steps": rows})
        return
    click.echo(f"{name}, {used} threads")
    click.echo("| sequences | ms / step | tok/s | step cost vs 1 sequence |\n|---:|---:|---:|---:|")
    for r in rows:
        click.echo(f"| {r.sequences} | {r.ms_per_step} | {r.tokens_per_s} | {r.cost_vs_one}x |")


@click.command("reuse-cost", short_help="TTFT of later turns: exact vs cache_reuse='all'.")
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--turns", type=click.IntRange(1, 4), default=3, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--threads", "-t", type=click.IntRange(min=1), default=1, show_default=True)
@json_option(help="Print only the JSON result (no summary line).")
def reuse_cost_command(model, turns, rounds, threads, as_json):
    """TTFT of a conversation's next turns: exact cache reuse vs cache_reuse="all", interleaved
    (bench/reuse_cost.py)."""
    import statistics

    from bench.reuse_cost import measure

    result = measure(model, turns, rounds, threads)
    click.echo(json.dumps(result, indent=1))
    if not as_json:
        click.echo(f"TTFT medians, exact vs all: {[(t['ttft_ms_exact'], t['ttft_ms_all']) for t in result['turns']]} "
                   f"median ratio {statistics.median(t['ratio_all_to_exact'] for t in result['turns'])}")


@click.command("structured", short_help="50 JSON Schemas: validity and the constraint's cost.")
@click.option("--gguf", default="smollm2-135m", show_default=True, help="GGUF model (alias or path), or 'none'.")
@click.option("--onnx", default="auto", show_default=True,
              help="ONNX model folder, 'auto' (export smollm2-135m to int4 first, ~1-2 min) or 'none'.")
@click.option("--temperatures", default="0,0.8", show_default=True, callback=_floats)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="First N schemas only.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--free-tokens", type=click.IntRange(min=1), default=64, show_default=True,
              help="Tokens of each unconstrained answer.")
@threads_option
@click.option("--out", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the rows as JSON to this file.")
@json_option(help="Print the rows as JSON instead of the table (progress lines go to stderr).")
def structured_command(gguf, onnx, temperatures, limit, max_tokens, free_tokens, threads, json_path, as_json):
    """Constrained answers to 50 JSON Schemas: do they validate, and what does the constraint cost
    (bench/structured.py)? Exit code 1 when an answer does not validate."""
    import time

    from bench.structured import markdown, run_structured

    started = time.perf_counter()
    rows = run_structured(gguf, onnx, temperatures, limit, max_tokens, free_tokens, threads,
                          log=_say if as_json else click.echo)
    if as_json:
        print_json([r.to_dict() for r in rows])
    else:
        click.echo("\n" + markdown(rows))
        click.echo(f"({time.perf_counter() - started:.0f} s)")
    if json_path:
        from ondevice.files import atomic_output

        with atomic_output(json_path) as tmp_path:
            Path(tmp_path).write_text(json.dumps([r.to_dict() for r in rows], indent=2))
    if not all(r.valid == r.schemas for r in rows):
        raise SystemExit(1)


@click.command("providers", short_help="ONNX Runtime execution providers side by side.")
@click.option("--embed", default=None, help="An ONNX encoder folder or alias (e.g. minilm-l6).")
@click.option("--llm", default=None, help="An onnxruntime-genai model folder.")
@click.option("--devices", default="cpu,openvino", show_default=True, callback=_names,
              help="Comma-separated devices; the first is the reference.")
@threads_option
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--n-gen", type=click.IntRange(min=1), default=64, show_default=True)
@json_option
def providers_command(embed, llm, devices, threads, repeats, n_gen, as_json):
    """ONNX Runtime execution providers side by side: embeddings/s and decode tok/s, with the provider each one
    really ran on (bench/providers.py)."""
    from bench.providers import bench_decode, bench_embed
    from ondevice.machine.autoconfig import default_threads

    if not (embed or llm):
        raise InvalidInput("give --embed ENCODER, --llm ONNX_LLM_DIR or both")
    threads = threads or default_threads()
    rows = (bench_embed(embed, devices, threads, repeats) if embed else []) + \
        (bench_decode(llm, devices, threads, n_gen) if llm else [])
    if as_json:
        print_json(rows)
        return
    click.echo(f"{'task':7} {'requested':10} {'ran on':28} {'load s':>7} {'rate':>9}  cosine  note")
    for r in rows:
        cos = "" if r.cosine_vs_first is None else f"{r.cosine_vs_first:.6f}"
        click.echo(f"{r.task:7} {r.requested:10} {r.provider:28} {r.load_s:7.2f} {r.rate:7.1f} {r.unit:5} {cos:8} "
                   f"{r.note[:90]}")


@click.group("onnx-levers", no_args_is_help=False, short_help="ONNX decode-speed levers in onnxruntime(-genai) alone.")
def onnx_levers_group():
    """Decode-speed levers of an ONNX LLM folder, without ondevice's decode loop (bench/onnx_levers.py)."""


@onnx_levers_group.command("genai", short_help="onnxruntime-genai decode tok/s per VARIANT, interleaved.")
@click.argument("variants", nargs=-1, required=True)
@click.option("--rounds", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--threads", "-t", type=click.IntRange(min=1), default=2, show_default=True)
@json_option(help="Print each variant's tok/s per round as JSON.")
def onnx_levers_genai(variants, rounds, threads, as_json):
    """128-token greedy decodes in onnxruntime-genai, each VARIANT
    `LABEL|FOLDER[|SESSION_OPTIONS_JSON[|MAX_LENGTH[|py or cpp]]]` once per round, in a shuffled order."""
    import numpy as np

    from bench.onnx_levers import genai_decode_rates

    for spec in variants:
        label, _, rest = spec.partition("|")
        if not (label and rest and Path(rest.split("|")[0], "genai_config.json").is_file()):
            raise InvalidInput(f"{spec!r}: give LABEL|FOLDER[|SESSION_OPTIONS_JSON[|MAX_LENGTH[|py or cpp]]], "
                               f"FOLDER an onnxruntime-genai model folder")
    try:
        results = genai_decode_rates(list(variants), rounds, threads=threads)
    except (RuntimeError, ValueError) as exc:  # onnxruntime-genai refusing an option, bad JSON or MAX_LENGTH
        raise InvalidInput(f"onnx-levers genai: {str(exc).strip().splitlines()[0]}") from None
    if as_json:
        print_json(results)
        return
    for label, rates in results.items():
        click.echo(f"{label:28s} {np.mean(rates):7.1f} ± {np.std(rates, ddof=1):4.1f} tok/s")


@onnx_levers_group.command("ort", short_help="One decode step in plain onnxruntime per config set.")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("entries", nargs=-1)
@click.option("--threads", "-t", type=click.IntRange(min=1), default=2, show_default=True)
@json_option(help="Print ms per step for each entry set as JSON.")
def onnx_levers_ort(folder, entries, threads, as_json):
    """One decode step of FOLDER/model.onnx in plain onnxruntime, once per ENTRIES set (KEY=VALUE[,KEY=VALUE];
    '' for the defaults)."""
    from bench.onnx_levers import ort_step_ms

    steps = {}
    for spec in entries or [""]:
        pairs = [kv.split("=", 1) for kv in spec.split(",") if kv]
        if any(len(p) != 2 for p in pairs):
            raise InvalidInput(f"{spec!r}: give KEY=VALUE[,KEY=VALUE] session config entries")
        steps[spec] = ms = ort_step_ms(Path(folder) / "model.onnx", dict(pairs), threads)
        if not as_json:
            click.echo(f"{spec or '(defaults)':40s} {ms:7.3f} ms/step")
    if as_json:
        print_json({"ms_per_step": steps})


@click.command("native", short_help="llama.cpp's own llama-bench (--build: build the tools).")
@click.argument("model", required=False)
@click.option("--build", is_flag=True, help="Build the tools (and unpack llama.cpp's HF -> GGUF converter).")
@threads_option
@click.option("-n", "--n-gen", type=click.IntRange(min=0), default=128, show_default=True)
@click.option("-p", "--n-prompt", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-r", "--repetitions", type=click.IntRange(min=1), default=5, show_default=True)
@json_option(help="Print only the JSON: the tools' folder and, with MODEL, llama-bench's result.")
def native_command(model, build, threads, n_gen, n_prompt, repetitions, as_json):
    """llama.cpp's own llama-bench, built from the installed libllama's source on first use (minutes, then cached),
    on a GGUF MODEL (bench/native.py). `--build` only builds."""
    from bench.native import native_reference, native_tools

    tools, converter = native_tools(build, _say)
    if not as_json:
        if converter is not None:
            click.echo(f"{converter / 'convert_hf_to_gguf.py'} (llama.cpp's own HF -> GGUF converter)")
        click.echo(f"{tools.bin_dir} (llama-cpp-python {tools.version}, flags {tools.flags_from}: "
                   f"{' '.join(tools.cmake_args) or 'defaults'})")
    result = None
    if model:
        from ondevice.machine.cpu import detect_cpu

        result = native_reference(model, threads or detect_cpu().physical_cores, n_gen, n_prompt, repetitions)
        if not as_json:
            click.echo(json.dumps(result.__dict__, indent=1))
    if as_json:
        print_json({"bin_dir": str(tools.bin_dir), "converter": str(converter) if converter else None,
                    "result": result.__dict__ if result else None})


@click.command("calibrate", short_help="Refit the decode-speed model (docs/devices.md tables).")
@json_option
def calibrate_command(as_json):
    """Refit the decode-speed model on bench/calibration.json and print the tables of docs/devices.md
    (bench/calibrate.py)."""
    from bench.calibrate import calibration_report, report_markdown

    report = calibration_report()
    print_json(report) if as_json else click.echo(report_markdown(report))


@click.command("routing", short_help="Router overhead, and where a mixed workload goes.")
@click.option("--local", default="smollm2-135m", show_default=True)
@click.option("--remote", default=None, help="remote:MODEL@URL (default: a stand-in server of --local started here).")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--min-logprob", type=float, default=-2.5, show_default=True)
@json_option
def routing_command(local, remote, threads, min_logprob, as_json):
    """What a Router costs per request, and where a small mixed workload goes (bench/routing.py)."""
    from bench.routing import run

    report = run(local, remote, threads, min_logprob)
    if as_json:
        from dataclasses import asdict

        print_json({**asdict(report), "counts": report.counts(), "overhead": report.overhead()})
        return
    click.echo("| kind | local | remote |\n|---|---|---|")
    for kind, c in report.counts().items():
        click.echo(f"| {kind} | {c['local']} | {c['remote']} |")
    click.echo(f"\nrouting overhead per request: {report.overhead()}")
    for row in report.rows:
        click.echo(f"  {row.kind:9s} -> {row.routed_to:6s} {row.reason[:70]} | {row.decisions[-1][:60]}")


@click.command("protocol-overhead", short_help="Added latency per protocol adapter (running server).")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="A running `ondevice serve`.")
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=10, show_default=True)
@json_option
def protocol_overhead_command(url, model, rounds, as_json):
    """Added latency of each protocol adapter vs /v1/chat/completions, interleaved (bench/protocol_overhead.py)."""
    from bench.protocol_overhead import measure, overhead_table

    measured = measure(url, model, rounds)
    print_json(measured) if as_json else click.echo(overhead_table(measured))


@click.command("protocol-structured", short_help="Structured output through all four protocols (server).")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="A running `ondevice serve`.")
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="First N schemas only.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@json_option
def protocol_structured_command(url, model, limit, max_tokens, as_json):
    """The 50 schemas through all four protocols' structured-output fields, each answer validated
    (bench/protocol_structured.py)."""
    from bench.protocol_structured import check

    result = check(url, model, limit, max_tokens)
    if as_json:
        print_json(result)
        return
    for protocol, count in result.valid.items():
        click.echo(f"{protocol:<18} {count}/{result.schemas} valid")
        for failure in result.failures.get(protocol, []):
            click.echo(f"  invalid: {failure}")
    click.echo(f"identical answer through all four: {result.identical}/{result.schemas}")


@click.command("ui-page", short_help="Web app page weight and first paint (Chromium).")
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True, help="Cold loads.")
@click.option("--chromium", default=None, help="Chromium executable (default: `chromium` on PATH).")
@json_option
def ui_page_command(runs, chromium, as_json):
    """Page weight and first paint of the web app in headless Chromium (bench/ui_page.py)."""
    from bench.ui_page import page_metrics

    m = page_metrics(runs, chromium)
    if as_json:
        print_json(m)
        return
    click.echo(f"page weight: {m.bytes} bytes in {m.files} requests (uncompressed: the document, its files and "
               f"/ui/api/info)")
    click.echo(f"first paint {m.fp_ms:.0f} ms, first contentful paint {m.fcp_ms:.0f} ms, DOMContentLoaded "
               f"{m.dcl_ms:.0f} ms (median of {len(m.fcp_each_ms)} cold loads; each: "
               + ", ".join(f"{v:.0f}" for v in m.fcp_each_ms) + " ms FCP)")


@click.command("soak", short_help="Load a running server: N clients stream chats for S seconds (bench.soak).")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="The server (loopback only).")
@click.option("--clients", type=int, default=16, show_default=True)
@click.option("--seconds", type=float, default=60, show_default=True)
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--max-tokens", type=int, default=32, show_default=True)
@click.option("--abandon-rate", type=float, default=0.2, show_default=True, help="Share of requests dropped mid-stream.")
@click.option("--grace", type=float, default=60, show_default=True, help="Seconds to let running requests finish.")
@click.option("--api-key", default=None)
@click.option("--versus", default=None, metavar="URL",
              help="A second server: soak both in alternation (bench.interleave: --rounds rounds of --seconds each, "
                   "order flipped every round) and print the per-round ratios.")
@click.option("--rounds", type=int, default=3, show_default=True, help="Rounds with --versus.")
@json_option(help="Print the JSON summary (the soak's only output: accepted so --json means one thing everywhere).")
def soak_command(url, clients, seconds, model, max_tokens, abandon_rate, grace, api_key, versus, rounds, as_json):
    """Soak a running server (not a test): N clients stream chats for S seconds, some walk away mid-stream; one
    JSON summary (requests by outcome, malformed streams, latency percentiles, tokens/s, the server's RSS). Exit 1
    when a stream was malformed or a request failed."""
    from bench.soak import run_soak

    summary, clean = run_soak(url, clients, seconds, model, max_tokens, abandon_rate, grace, api_key, versus, rounds)
    click.echo(json.dumps(summary, indent=2))
    if not clean:
        raise SystemExit(1)


TOOLS: tuple[click.Command, ...] = (
    chat_turns_command, kv_cache_command, batch_steps_command, reuse_cost_command, structured_command,
    providers_command, onnx_levers_group, native_command, calibrate_command, routing_command,
    protocol_overhead_command, protocol_structured_command, ui_page_command, soak_command,
)
