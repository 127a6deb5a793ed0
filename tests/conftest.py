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
