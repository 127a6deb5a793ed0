"""ONNX model folders with hostile or broken configs: every one is a clear InvalidModelFile naming the file and the
value, checked before onnxruntime allocates anything (issue 23). Before, `head_size: 1000000` allocated ~22 GB until
the kernel killed the process and `num_hidden_layers: 1000000000` ran for minutes; the checks here refuse them in
milliseconds, in `ondevice.load`, in `read_info` (`ondevice models info`) and in the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import ondevice
from ondevice.errors import InvalidModelFile, UnsupportedOperation
from ondevice.models.model_info import read_info
from ondevice.models.onnx_folder import check_genai_folder, graph_io
from ondevice.models.store import resolve


@pytest.fixture
def folder(tiny_onnx_fp32_dir, tmp_path):
    """A private copy of the tiny exported model (about 600 KB) to break."""
    return shutil.copytree(tiny_onnx_fp32_dir, tmp_path / "model")


def edit(folder, change) -> None:
    path = folder / "genai_config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def decoder(**values):
    return lambda config: config["model"]["decoder"].update(values)


def model(**values):
    return lambda config: config["model"].update(values)


CASES = [
    (model(context_length="512"), "'context_length' must be an integer"),
    (model(context_length=None), "'context_length' must be an integer"),
    (model(context_length=10 ** 12), "context_length 1000000000000 is outside"),
    (model(vocab_size=True), "'vocab_size' must be an integer"),
    (model(vocab_size=100), "vocab_size is 100 but model.onnx's logits has 512"),
    (model(eos_token_id=[2, "x"]), "eos_token_id"),
    (decoder(head_size=1_000_000), "head_size 1000000 is outside"),
    (decoder(head_size=8), "head_size is 8 but past_key_values.0.key has 16"),
    (decoder(num_hidden_layers=1_000_000_000), "num_hidden_layers 1000000000 is outside"),
    (decoder(num_hidden_layers=3), "num_hidden_layers is 3 but model.onnx has 2"),
    (decoder(num_key_value_heads=4), "num_key_value_heads is 4 but past_key_values.0.key has 2"),
    (decoder(num_key_value_heads=3), "must divide num_attention_heads"),
    (decoder(num_attention_heads=-4), "num_attention_heads -4 is outside"),
    (decoder(inputs={"input_ids": "tokens"}), "input 'tokens' is not an input of model.onnx"),
    (decoder(inputs={"past_key_names": "past.%d.k"}), "has 0 'past.%d.k' inputs"),
    (decoder(outputs={"logits": "scores"}), "output 'scores' is not an output"),
    (decoder(filename="../../etc/passwd"), "is not a file in"),
    (decoder(filename=5), "'filename' must be a non-empty string"),
    (decoder(filename="x" * 5000), "is not a file in"),  # found by the fuzz suite: ENAMETOOLONG was a traceback
    (decoder(filename="a\u0000b"), "is not a file in"),
    (lambda config: config.pop("model"), "'model' must be an object (missing)"),
    (lambda config: config["model"].pop("decoder"), "'decoder' must be an object"),
    (lambda config: config.update(search={"max_length": 10 ** 9}), "max_length 1000000000 is outside"),
]


@pytest.mark.parametrize("change, message", CASES)
def test_bad_genai_config_values_are_refused_before_loading(folder, change, message):
    edit(folder, change)
    with pytest.raises(InvalidModelFile, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_info(resolve(folder))           # `ondevice models info`
    with pytest.raises(InvalidModelFile):
        ondevice.load(folder)                # `ondevice run`


@pytest.mark.parametrize("content, message", [
    (b"[1, 2, 3]", "must hold a JSON object, not a list"),
    (b"\xff\xfe{\x00}", "not UTF-8"),
    (b"{\"model\": ", "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
])
def test_genai_config_files_that_are_not_json_objects(folder, content, message):
    (folder / "genai_config.json").write_bytes(content)
    with pytest.raises(InvalidModelFile, match=message):
        ondevice.load(folder)


@pytest.mark.parametrize("name, content, message", [
    ("config.json", {"num_attention_heads": "four"}, "'num_attention_heads' must be a whole number"),
    ("config.json", {"rope_theta": [1]}, "'rope_theta' must be a number"),
    ("config.json", {"text_config": 5}, "'text_config' must be an object"),
    ("ondevice_onnx.json", {"quant": 4}, "'quant' must be a string"),
    ("ondevice_onnx.json", {"n_params": "many"}, "'n_params' must be a whole number"),
])
def test_config_and_metadata_files_with_wrong_types(folder, name, content, message):
    (folder / name).write_text(json.dumps(content))
    with pytest.raises(InvalidModelFile, match=message):
        read_info(resolve(folder))


def test_a_folder_without_genai_config_names_the_missing_file(folder):
    (folder / "genai_config.json").unlink()
    with pytest.raises((UnsupportedOperation, InvalidModelFile), match="genai_config.json"):
        with ondevice.load(folder) as m:
            m.chat([{"role": "user", "content": "Hi"}], max_tokens=4)


def test_the_graph_reader_sees_the_real_inputs(tiny_onnx_fp32_dir):
    inputs, outputs = graph_io(tiny_onnx_fp32_dir / "model.onnx")
    assert inputs["past_key_values.1.value"] == ["?", 2, "?", 16]
    assert outputs["logits"] == ["?", "?", 512]
    assert check_genai_folder(tiny_onnx_fp32_dir).n_layers == 2


@pytest.mark.parametrize("command", [["models", "info"], ["run", "--max-tokens", "4"]])
def test_cli_refuses_a_broken_folder_with_one_line(folder, command):
    edit(folder, decoder(head_size=1_000_000))
    args = [sys.executable, "-m", "ondevice", *command, str(folder)] + (["Hi"] if command[0] == "run" else [])
    run = subprocess.run(args, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "head_size 1000000 is outside" in run.stderr
