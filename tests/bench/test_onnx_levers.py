"""bench/onnx_levers.py: the two probes behind docs/quantize-quality.md's ONNX speed levers run on a real (tiny)
onnxruntime-genai folder, and a session option genai does not know is refused, not silently ignored."""

from __future__ import annotations

import json

import pytest

from bench.onnx_levers import genai_decode_rates, ort_step_ms


def test_genai_probe_measures_every_variant_every_round(tiny_onnx_int4_dir):
    one_thread = json.dumps({"intra_op_num_threads": 1})
    folder = tiny_onnx_int4_dir
    rates = genai_decode_rates([f"a|{folder}", f"b|{folder}|{one_thread}|64|cpp"], rounds=2, n_tokens=8, threads=1)
    assert list(rates) == ["a", "b"]
    assert all(len(r) == 2 and min(r) > 0 for r in rates.values())


def test_genai_probe_refuses_an_unknown_session_option(tiny_onnx_int4_dir):
    with pytest.raises(RuntimeError, match="no_such_option"):
        genai_decode_rates([f"x|{tiny_onnx_int4_dir}|{json.dumps({'no_such_option': 1})}"], rounds=1, n_tokens=2)


def test_ort_probe_times_one_step_with_config_entries(tiny_onnx_int4_dir):
    entries = {"session.intra_op.allow_spinning": "0"}
    assert ort_step_ms(tiny_onnx_int4_dir / "model.onnx", entries, threads=1, steps=5) > 0


def test_the_ort_probe_runs_through_the_command_and_bad_variants_are_one_line(tiny_onnx_int4_dir):
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    run = CliRunner().invoke(cli, ["bench", "onnx-levers", "ort", str(tiny_onnx_int4_dir), "",
                                   "session.intra_op.allow_spinning=0", "-t", "1"])
    assert run.exit_code == 0, run.output
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["(defaults)", "session.intra_op.allow_spinning=0"]
    assert all(float(line.split()[-2]) > 0 and line.endswith("ms/step") for line in lines)
    for variant in ("no-folder", f"x|{tiny_onnx_int4_dir}|{json.dumps({'no_such_option': 1})}"):
        bad = CliRunner().invoke(cli, ["bench", "onnx-levers", "genai", variant, "--rounds", "1"])
        assert bad.exit_code == 2, bad.output
        (line,) = bad.stderr.strip().splitlines()
        assert line.startswith("error: ")
