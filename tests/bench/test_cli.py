"""`ondevice bench` / `ondevice fit` from the command line: output schemas and bad input (one line, exit 2)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ondevice.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("args", [
    ["bench", "--probe", "llama9-1t"],
    ["bench", "--probe", "llama3-8b", "--quant", "Q7_X"],
    ["bench", "smollm2-135m", "-r", "0"],
    ["bench", "/no/such/model.gguf"],
    ["bench"],
    ["bench", "smollm2-135m", "--quant", "Q4_0"],
    ["fit", "/no/such/model.gguf"],
    ["fit", "--probe", "nope"],
    ["fit"],
])
def test_bad_input_is_one_line_and_exit_2(args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_fit_json_for_a_probe():
    result = invoke("fit", "--probe", "llama3-8b", "--quant", "Q4_K_M", "--ctx", "4096", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kv_bytes"] == 512 * 2**20 and data["verdict"] in ("fits", "tight", "does not fit")


def test_bench_json_output_and_report_folder(tmp_path):
    result = invoke("bench", "smollm2-135m", "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--ctx", "64",
                    "-o", "json", "--report", str(tmp_path / "rep"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["test"] for r in data["results"]] == ["pp8", "tg4"]
    assert data["bandwidth_gbps"] > 0 and data["rooflines"]
    bw = data["bandwidth"]  # the machine's cached measurement, the one `ondevice doctor` shows
    assert bw["measured_at"] and data["bandwidth_gbps"] == next(r["max_gbps"] for r in bw["runs"]
                                                                if r["kernel"] == "read" and r["threads"] == 1)
    assert "- bandwidth: read" in (tmp_path / "rep" / "report.md").read_text()
    for name in ("report.md", "report.json", "tg.png", "pp.png", "roofline.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
