"""`ondevice bench` is one command for every bench tool: `ondevice bench TOOL ...` runs a tool, anything else runs
the default tool, `speed`, exactly as `ondevice bench MODEL... [options]` always ran."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from bench.cli import bench_command
from ondevice.cli.main import cli

TOOLS = sorted(bench_command.commands)
# every command under `ondevice bench`, nested ones (onnx-levers genai / ort) included
ALL = [[name] for name in TOOLS] + [[name, sub] for name in TOOLS
                                    if isinstance(bench_command.commands[name], click.Group)
                                    for sub in bench_command.commands[name].commands]


def invoke(*args):
    return CliRunner().invoke(cli, ["bench", *args])


def test_help_lists_every_tool_and_the_default_tools_options():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    tools = result.output.split("Tools (")[1]
    for name in ("speed", "chat-turns", "kv-cache", "batch-steps", "reuse-cost", "structured", "providers",
                 "onnx-levers", "native", "calibrate", "routing", "protocol-overhead", "protocol-structured",
                 "ui-page"):
        assert f"\n  {name} " in tools
    assert set(TOOLS) == {line.split()[0] for line in tools.splitlines()[1:] if line.startswith("  ") and
                          not line.startswith("   ")}
    options = result.output.split("Tools (")[0]  # `ondevice bench MODEL...` takes the speed tool's options
    for option in ("-n INTEGER", "--probe", "--reference", "--scenario", "--device NAME"):
        assert option in options


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_every_tool_has_help(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: cli bench {' '.join(path)} ")


def test_calibrate_prints_what_the_library_computes():
    from bench.calibrate import calibration_report, report_markdown
    from ondevice.cli.common import to_jsonable

    report = calibration_report()
    text = invoke("calibrate")
    assert text.exit_code == 0 and text.stdout == report_markdown(report) + "\n"
    as_json = invoke("calibrate", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == to_jsonable(report)


@pytest.mark.parametrize("args, says", [
    (["chat-turns", "--turns", "x"], "'--turns': 'x' is not a valid integer"),
    (["chat-turns", "--turns", "50", "--ctx", "512"], "do not fit --ctx 512"),
    (["kv-cache"], "Missing argument 'MODELS...'"),
    (["kv-cache", "smollm2-135m", "--depths", "512,x"], "'--depths'"),
    (["structured", "--temperatures", "hot"], "'--temperatures'"),
    (["reuse-cost", "--turns", "9"], "'--turns'"),
    (["providers"], "give --embed"),
    (["providers", "--embed", "minilm-l6", "--devices", ","], "'--devices'"),
    (["onnx-levers"], "Missing command"),
    (["protocol-overhead", "--url", "http://127.0.0.1:9", "--rounds", "1"], "http://127.0.0.1:9"),
    (["routing", "--bogus"], "No such option '--bogus'"),
    (["smollm2-135m", "--bogus"], "No such option '--bogus'"),  # the default tool parses its own options
    (["./calibrate"], "no model named './calibrate'"),  # a model named like a tool, as a path: the speed tool
    (["speed", "calibrate"], "no model named 'calibrate'"),  # or after the default tool's name
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line


def test_options_before_the_model_still_run_the_speed_tool():
    result = invoke("-p", "8", "-n", "4", "-r", "1", "-t", "1", "--ctx", "64", "smollm2-135m", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["test"] for r in data["results"]] == ["pp8", "tg4"]
    assert (data["config"]["threads"], data["config"]["n_ctx"], data["config"]["repetitions"]) == (1, 64, 1)


def test_the_old_module_spelling_still_runs_the_tool_and_says_the_new_one():
    proc = subprocess.run([sys.executable, "-m", "bench.calibrate", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "use `ondevice bench calibrate`" in proc.stderr
    assert json.loads(proc.stdout) == json.loads(invoke("calibrate", "--json").stdout)
