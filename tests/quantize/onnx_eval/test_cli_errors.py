"""`ondevice quantize` / `ondevice eval` refuse bad input with one line on stderr and exit code 2, before any work."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ondevice.cli.main import cli


def _run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("args", [
    ["quantize", "smollm2-135m", "--to", "gguf:Q9_9", "--out", "OUT"],
    ["quantize", "smollm2-135m", "--to", "tflite:int8", "--out", "OUT"],
    ["quantize", "smollm2-135m", "--to", "onnx:int3", "--out", "OUT"],
    ["quantize", "smollm2-135m", "--to", "onnx:int4-nosuchalgo", "--out", "OUT"],
    ["quantize", "smollm2-135m", "--to", "gguf:IQ2_XXS", "--out", "OUT"],
    ["quantize", "no-such-model.gguf", "--to", "gguf:Q4_K_M", "--out", "OUT"],
    ["quantize", "smollm2-135m", "--to", "gguf:Q4_K_M", "--out", "OUT", "--recommend"],
    ["quantize", "smollm2-135m", "--to", "gguf:Q4_K_M", "--out", "OUT", "--text", "missing.txt", "--eval"],
    ["eval", "no-such-model.gguf", "--ref", "smollm2-135m"],
    ["eval", "smollm2-135m", "--ref", "smollm2-135m", "--text", "missing.txt"],
    ["eval", "smollm2-135m", "--ref", "smollm2-135m", "--chunks", "some"],
    ["quantize", "smollm2-135m", "--to", "gguf:Q4_K_M", "--out", "OUT", "--eval", "--chunks", "0"],
])
def test_bad_input_is_one_line_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert not (tmp_path / "OUT").exists()  # refused before any work


def test_eval_text_too_short_for_a_window(tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("Only a few words.")
    result = _run("eval", "smollm2-135m", "--ref", "smollm2-135m", "--text", str(text), "--window", "512")
    assert result.exit_code == 2 and "tokens" in result.output


def test_calibration_needs_something_that_reads_it(tmp_path, monkeypatch):
    from quantize.cli import _measures_activations

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my own text " * 200)
    result = _run("quantize", "smollm2-135m", "--to", "gguf:Q4_K_M", "--to", "onnx:int4-wls", "--out", "OUT",
                  "--calibration", "notes.txt")
    assert result.exit_code == 2 and "--calibration is the text for --imatrix auto or an ONNX -imx" in result.output
    assert not (tmp_path / "OUT").exists()
    # the ONNX options that gather activations accept it (and the pipeline hands it to them)
    assert _measures_activations([("gguf", "Q4_K_M"), ("onnx", "int4-wls-imx")])
    assert _measures_activations([("onnx", "int4-wls_mixed-s20")])
    assert not _measures_activations([("onnx", "int4-wls"), ("gguf", "Q4_K_M")])
