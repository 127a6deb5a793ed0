"""Shared fixtures. The model store goes to a per-run temporary folder so tests never touch ~/.cache/ondevice."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def isolated_store(tmp_path_factory):
    home = tmp_path_factory.mktemp("ondevice-home")
    old = os.environ.get("ONDEVICE_HOME")
    os.environ["ONDEVICE_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("ONDEVICE_HOME", None)
    else:
        os.environ["ONDEVICE_HOME"] = old


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M-Instruct (Q4_1 GGUF), loaded once with a small context."""
    import ondevice

    model = ondevice.load("smollm2-135m", n_ctx=1024)
    yield model
    model.close()


@pytest.fixture(scope="session")
def smollm2_path():
    import ondevice

    return ondevice.resolve("smollm2-135m").path


@pytest.fixture(scope="session")
def tiny_llama_hf(tmp_path_factory):
    """A tiny random-weight llama as a Hugging Face folder (tests.tiny_models), made once per run."""
    from tests.tiny_models import make_tiny_hf

    return make_tiny_hf("llama", tmp_path_factory.mktemp("tiny-llama-hf"))


@pytest.fixture(scope="session")
def tiny_onnx_fp32_dir(tiny_llama_hf, tmp_path_factory):
    """`tiny_llama_hf` exported to an onnxruntime-genai folder in fp32: real graphs and plumbing, noise for answers.
    Tests only read it."""
    from quantize.onnx_export import export_onnx_llm

    return export_onnx_llm(tiny_llama_hf, tmp_path_factory.mktemp("tiny-onnx") / "tiny-fp32", quant="fp32").path


@pytest.fixture(scope="session")
def tiny_onnx_int4_dir(tiny_llama_hf, tmp_path_factory):
    """`tiny_llama_hf` exported with the default `onnx:int4` (MatMulNBits). Tests only read it."""
    from quantize.onnx_export import export_onnx_llm

    return export_onnx_llm(tiny_llama_hf, tmp_path_factory.mktemp("tiny-onnx") / "tiny-int4", quant="int4").path
