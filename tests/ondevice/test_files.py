"""Safe output files: the free-disk check and the temp-name-then-rename writer."""

from __future__ import annotations

import pytest

from ondevice.errors import InvalidInput
from ondevice.files import atomic_output, check_free_space


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
