"""Session fixtures for quantize tests (also used by tests/quantize/onnx_eval/).

The SmolLM2 de-quantisation (GGUF -> fp32 HF folder) and its f16 conversion are the expensive steps; each runs once
per test session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.tiny_models import make_tiny_hf


@pytest.fixture(scope="session")
def smollm2_hf_dir(isolated_store) -> Path:
    """The embedded SmolLM2-135M-Instruct de-quantised to an fp32 HF folder (cached in the test store)."""
    from quantize.hf_source import to_hf_dir

    return to_hf_dir("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2_f16_gguf(smollm2_hf_dir, tmp_path_factory) -> Path:
    """SmolLM2 converted by our converter to an f16 GGUF."""
    from quantize.hf_to_gguf import convert_hf_to_gguf

    out = tmp_path_factory.mktemp("smollm2-f16") / "smollm2-135m-f16.gguf"
    return convert_hf_to_gguf(smollm2_hf_dir, out, "f16").path


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Callable[[str], Path]:
    """Factory: arch ("llama", "qwen2", "gemma3") -> a tiny random-weight HF folder, built once per session."""
    built: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in built:
            built[arch] = make_tiny_hf(arch, tmp_path_factory.mktemp(f"tiny-{arch}"))
        return built[arch]

    return make
