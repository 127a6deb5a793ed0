"""Shared fixtures. The model store goes to a per-run temporary folder so tests never touch ~/.cache/ondevice."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The suite writes up to about 3.3 GB of exports and models into the temporary folder (measured peak; none left
# behind when it passes). With less free, hundreds of tests would fail one by one on "not enough free disk".
NEEDED_TMP_BYTES = int(3.5e9)


def pytest_sessionstart(session):
    import shutil
    import tempfile

    if os.environ.get("ONDEVICE_TESTS_SKIP_DISK_CHECK"):
        return
    folder = session.config.option.basetemp or tempfile.gettempdir()
    os.makedirs(folder, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < NEEDED_TMP_BYTES:
        pytest.exit(f"the test suite needs about {NEEDED_TMP_BYTES / 1e9:.1f} GB free in {folder}, found "
                    f"{free / 1e9:.2f} GB: free some space (or set TMPDIR to a roomier disk)", returncode=2)


@pytest.fixture(scope="session", autouse=True)
def isolated_store(tmp_path_factory):
    from tests.native import CONVERTER  # looked up in the user's store, before it is swapped for a temporary one

    home = tmp_path_factory.mktemp("ondevice-home")
    old = os.environ.get("ONDEVICE_HOME")
    os.environ["ONDEVICE_HOME"] = str(home)
    if CONVERTER is not None:  # llama.cpp's converter (HF folders convert through it): shared, not re-unpacked
        (home / "native").mkdir(exist_ok=True)
        (home / "native" / CONVERTER.name).symlink_to(CONVERTER, target_is_directory=True)
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


@pytest.fixture(scope="session")
def llama_converter(isolated_store):
    """llama.cpp's own convert_hf_to_gguf.py, linked into the test store (skips when not unpacked)."""
    from tests.native import link_converter

    return link_converter(isolated_store)
