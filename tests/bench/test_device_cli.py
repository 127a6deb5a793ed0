"""`ondevice bench --device NAME` and `ondevice fit --device NAME`: predictions for a catalog device (bench.predict),
the same numbers `ondevice predict` gives, nothing measured on this machine."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bench.predict import predict
from ondevice.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_bench_targets_on_a_device_predicts_the_llama3_8b_probe():
    result = invoke("bench", "--targets", "--device", "pi5", "--json")
    assert result.exit_code == 0, result.output
    (data,) = json.loads(result.stdout)
    expected = predict(probe="llama3-8b", quant="Q4_K_M", device="pi5", n_ctx=4096).to_dict()
    assert data == json.loads(json.dumps(expected))
    assert data["device"] == "raspberry-pi-5" and data["fits_ram"] is True
    rows = {t["name"]: t for t in data["targets"]}
    # a Pi 5 (17 GB/s) cannot read a 4.9 GB model 10 times a second
    assert rows["decode >= 10 tok/s"]["pass"] is False and data["predicted_tg_tok_s"] < 10


def test_bench_models_and_probe_on_a_device_give_one_prediction_each():
    result = invoke("bench", "smollm2-135m", "--probe", "qwen2.5-7b", "--quant", "Q8_0", "--device", "m2", "-t", "4",
                    "--ctx", "2048", "--json")
    assert result.exit_code == 0, result.output
    small, probe = json.loads(result.stdout)
    assert (small["quant"], small["n_ctx"], small["device"]) == ("Q4_1", 2048, "apple-m2")
    assert (probe["model"], probe["quant"]) == ("qwen2.5-7b", "Q8_0")
    assert small["predicted_tg_tok_s"] > probe["predicted_tg_tok_s"]


def test_fit_on_a_device_checks_its_ram_before_any_speed():
    result = invoke("fit", "--probe", "llama3.1-8b", "--quant", "F16", "--device", "pi5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fits_ram"] is False and data["predicted_tg_tok_s"] is None
    assert data["verdict"] == "does not fit in 16 GB"
    text = invoke("fit", "--probe", "llama3.1-8b", "--quant", "Q4_K_M", "--device", "m2").stdout
    assert text.index("RAM: needs") < text.index("decode:") and "PASS" in text


@pytest.mark.parametrize("args", [
    ["fit", "--probe", "llama3-8b", "--device", "no-such-chip"],
    ["fit", "smollm2-135m", "--measure", "--device", "m2"],
    ["fit", "--device", "m2"],
    ["bench", "--device", "m2"],
    ["bench", "--targets", "--device", "m2", "--reference"],
    ["bench", "--targets", "--device", "m2", "-o", "csv"],
    ["bench", "smollm2-135m", "--quant", "Q4_0", "--device", "m2"],
])
def test_bad_device_prediction_input_is_one_line_and_exit_2(args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
