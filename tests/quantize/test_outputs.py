"""Safe output files: the free-disk check, the temp-name-then-rename writer, and `convert` on an HF folder."""

from __future__ import annotations

import pytest

from ondevice.errors import InvalidInput
from quantize.outputs import atomic_output, check_free_space


def test_free_disk_check_refuses_an_impossible_size(tmp_path):
    check_free_space(tmp_path / "small.gguf", 1024)
    with pytest.raises(InvalidInput, match="not enough free disk"):
        check_free_space(tmp_path / "huge.gguf", 10**18)


def test_atomic_output_renames_on_success_and_removes_on_failure(tmp_path):
    dest = tmp_path / "model.gguf"
    with pytest.raises(RuntimeError):
        with atomic_output(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(dest) as tmp:
        tmp.write_bytes(b"whole")
    assert dest.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [dest]


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
