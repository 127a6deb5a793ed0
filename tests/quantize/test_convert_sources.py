"""`convert` takes an HF folder as is and refuses what is not a model."""

from __future__ import annotations

import pytest


def test_convert_takes_an_hf_folder_as_is(tiny_hf, tmp_path):
    from quantize.convert import convert
    from quantize.hf_source import to_hf_dir

    folder = tiny_hf("qwen2")
    assert to_hf_dir(folder) == folder.resolve()
    result = convert(folder, tmp_path / "q.gguf", "bf16")
    assert result.architecture == "qwen2" and result.outtype == "bf16" and result.path.exists()
    assert not (tmp_path / "q.gguf.partial").exists()


def test_convert_refuses_a_source_that_is_not_a_model(tmp_path):
    from ondevice.errors import OnDeviceError
    from quantize.convert import convert

    with pytest.raises(OnDeviceError, match="no model named"):
        convert(tmp_path / "missing", tmp_path / "x.gguf")
