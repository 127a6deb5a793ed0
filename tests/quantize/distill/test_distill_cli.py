"""`ondevice distill` bad input: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ondevice.cli.main import cli


def run_cli(*args):
    return CliRunner().invoke(cli, ["distill", *map(str, args)])


def assert_one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0]


def test_missing_teacher_path(tmp_path):
    assert_one_line_error(run_cli(tmp_path / "nope", "--out", tmp_path / "s"), "nope")


@pytest.mark.parametrize("keep", [6, 7, 0, -1])
def test_keep_layers_out_of_range(tiny_teacher, tmp_path, keep):
    assert_one_line_error(run_cli(tiny_teacher, "--out", tmp_path / "s", "--keep-layers", keep), "6 layers")


def test_keep_and_drop_together(tiny_teacher, tmp_path):
    assert_one_line_error(run_cli(tiny_teacher, "--out", tmp_path / "s", "--keep-layers", 3, "--drop-layers", 2),
                          "not both")


def test_empty_data_folder(tiny_teacher, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli(tiny_teacher, "--out", tmp_path / "s", "--data", tmp_path / "empty"),
                          "no readable text")


def test_resume_without_checkpoint(tiny_teacher, tmp_path):
    assert_one_line_error(run_cli(tiny_teacher, "--out", tmp_path / "s", "--resume"), "no checkpoint")


def test_bad_then(tiny_teacher, tmp_path):
    assert_one_line_error(run_cli(tiny_teacher, "--out", tmp_path / "s", "--then", "onnx"), "gguf:TYPE")


def test_cli_runs_and_prints_json(tiny_teacher, tiny_data, tmp_path):
    import json

    result = run_cli(tiny_teacher, "--out", tmp_path / "s", "--keep-layers", 5, "--steps", 2, "--data", tiny_data,
                     "--seq-len", 32, "--batch", 2, "--eval-tokens", 256, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["steps"] == 2 and len(data["kept_layers"]) == 5
