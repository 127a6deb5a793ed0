"""The CLI: real commands, one clear line and exit code 2 on bad input, never a traceback or a crash."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from ondevice.cli.main import cli


SYSTEM = "Answer in one short sentence."  # see test_generate.py: a clear greedy margin for "Paris"


def run_cli(*args):
    return CliRunner().invoke(cli, list(args))


def test_run_streams_the_answer():
    result = run_cli("run", "smollm2-135m", "What is the capital of France?", "--system", SYSTEM,
                     "--max-tokens", "24", "--ctx", "512")
    assert result.exit_code == 0, result.output
    assert "Paris" in result.stdout


def test_run_json_has_text_tokens_and_timings():
    result = run_cli("run", "smollm2-135m", "What is the capital of France?", "--system", SYSTEM, "-n", "16",
                     "--ctx", "512", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "Paris" in data["text"]
    assert data["tokens"] > 0
    assert data["timings"]["decode_tokens_per_s"] > 0
    assert data["backend"] == "gguf"


def test_models_list_shows_the_embedded_models():
    result = run_cli("models", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["smollm2-135m"]["format"] == "gguf"
    assert rows["smollm2-135m"]["quant"] == "Q4_1"
    assert rows["minilm-l6"]["format"] == "hf"
    assert rows["gemma3-270m"]["quant"] == "Q4_K_M"


def test_models_info_reads_gguf_metadata():
    result = run_cli("models", "info", "smollm2-135m", "--json")
    info = json.loads(result.stdout)
    assert (info["architecture"], info["n_layers"], info["n_heads"], info["n_kv_heads"]) == ("llama", 30, 9, 3)
    assert info["context_length"] == 8192
    assert info["vocab_size"] == 49152
    assert 130e6 < info["n_params"] < 140e6
    assert 4.5 < info["bits_per_weight"] < 6.5


def test_doctor_json_has_the_documented_keys():
    result = run_cli("doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("cpu", "cores", "ram_total_gb", "ram_available_gb", "bandwidth_gbps", "llama_cpp",
                "onnxruntime_providers", "hazards"):
        assert key in report
    assert report["bandwidth_gbps"] > 0
    bw = report["bandwidth"]
    assert bw["gbps"] == report["bandwidth_gbps"] and bw["measured_at"] and bw["fingerprint"]
    assert {r["kernel"] for r in bw["runs"]} == {"read", "triad"}
    again = json.loads(run_cli("doctor", "--json").stdout)["bandwidth"]
    assert again["cached"] and again["measured_at"] == bw["measured_at"]  # the same figure until --bandwidth
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert report["llama_cpp"]["installed"] is True
    assert not any("AMX" in h for h in report["hazards"])  # our build turns AMX off


def test_doctor_bandwidth_measures_again_and_shows_every_kernel_and_thread_count():
    before = json.loads(run_cli("doctor", "--json").stdout)["bandwidth"]
    result = run_cli("doctor", "--bandwidth")
    assert result.exit_code == 0, result.output
    assert "read, 1 thread" in result.stdout and "triad, 1 thread" in result.stdout
    assert "median" in result.stdout and "spread" in result.stdout
    after = json.loads(run_cli("doctor", "--json").stdout)["bandwidth"]
    assert after["cached"] and after["measured_at"] >= before["measured_at"]


@pytest.fixture()
def bad_files(tmp_path):
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("this is a text file, not a model\n" * 10)
    return {"not_gguf": not_gguf}


@pytest.fixture()
def truncated_gguf(tmp_path, smollm2_path):
    path = tmp_path / "truncated.gguf"
    with open(smollm2_path, "rb") as src:
        path.write_bytes(src.read(20_000_000))
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing", "no model named"),
    ("unknown_alias", "no model named 'llama-99b'"),
    ("not_gguf", "not a GGUF file"),
    ("truncated", "truncated GGUF"),
])
def test_bad_model_input_is_one_line_and_exit_code_2(case, expected, tmp_path, bad_files, truncated_gguf):
    model = {"missing": str(tmp_path / "nope.gguf"), "unknown_alias": "llama-99b",
             "not_gguf": str(bad_files["not_gguf"]), "truncated": str(truncated_gguf)}[case]
    # A real process: a bad file must never abort or segfault it.
    proc = subprocess.run([sys.executable, "-m", "ondevice", "run", model, "hi"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_prompt_longer_than_context_is_exit_code_2():
    result = run_cli("run", "smollm2-135m", "word " * 600, "--ctx", "256")
    assert result.exit_code == 2
    assert "context holds 256" in result.output


@pytest.mark.parametrize("columns", [80, 200])
def test_models_list_never_cuts_an_alias(columns):
    """In an 80-column terminal the path column gives way; the aliases (what a user types) stay whole."""
    result = CliRunner().invoke(cli, ["models", "list"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    for alias in ("smollm2-135m", "gemma3-270m", "minilm-l6"):
        assert any(f" {alias} " in line for line in lines), (alias, result.stdout)
    assert "…" not in result.stdout
    assert ("path" in lines[1]) == (columns == 200)


def _leaf_commands(group, ctx, prefix=()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, ctx, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), command


NO_DATA = {"chat", "serve", "ui"}  # interactive / long-running: nothing to print as JSON


def test_shared_options_mean_one_thing_in_every_command():
    """--json wherever a command prints data; --ctx is always the context length (n_ctx); --threads is -t, >= 1."""
    ctx = click.Context(cli)
    commands = dict(_leaf_commands(cli, ctx))
    assert {"run", "models list", "quantize", "eval", "bench speed", "bench chat-turns", "fit", "demo",
            "rag search"} <= set(commands)
    for name, command in commands.items():
        options = {opt: param for param in command.params for opt in param.opts}
        if name not in NO_DATA:
            assert "--json" in options and options["--json"].is_flag, name
        if "--ctx" in options and not options["--ctx"].hidden:
            assert options["--ctx"].name == "n_ctx", name
        if "--threads" in options:
            param = options["--threads"]
            assert "-t" in param.opts and isinstance(param.type, click.IntRange) and param.type.min == 1, name


def test_bench_takes_json_like_every_other_command():
    result = run_cli("bench", "smollm2-135m", "--json", "-o", "csv")  # refused before any work
    assert result.exit_code == 2 and result.stderr.strip() == "error: --json and -o csv ask for two formats; give one"
    assert run_cli("bench", "--targets", "--json", "--help").exit_code == 0


def test_eval_window_is_window_and_ctx_says_so():
    result = run_cli("eval", "smollm2-135m", "--ref", "smollm2-135m", "--ctx", "512")
    assert result.exit_code == 2
    assert "the evaluation window is --window" in result.stderr and len(result.stderr.strip().splitlines()) == 1
