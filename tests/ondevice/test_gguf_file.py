"""GGUF files are parsed and bounds-checked in Python before libllama sees them."""

from __future__ import annotations

import pytest

from ondevice.errors import InvalidModelFile
from ondevice.gguf_file import file_type_name, read_gguf


def test_reads_metadata_and_tensor_table_of_the_embedded_model(smollm2_path):
    g = read_gguf(smollm2_path)
    assert g.architecture == "llama"
    assert g.arch_value("block_count") == 30
    assert g.vocab_size == 49152            # a long array: its length is kept, its contents skipped
    assert g.get("tokenizer.chat_template").startswith("{% for message in messages %}")
    assert g.n_tensors == 272 and g.n_params == 134_515_008
    assert file_type_name(g) == "Q4_1"


@pytest.mark.parametrize("keep, message", [(2_000, "corrupt or truncated GGUF"), (60_000_000, "truncated GGUF")])
def test_truncated_files_are_refused_with_one_line(tmp_path, smollm2_path, keep, message):
    cut = tmp_path / "cut.gguf"
    with open(smollm2_path, "rb") as src:
        cut.write_bytes(src.read(keep))
    with pytest.raises(InvalidModelFile, match=message):
        read_gguf(cut)


def test_unsupported_version_is_refused(tmp_path):
    bad = tmp_path / "v9.gguf"
    bad.write_bytes(b"GGUF" + (9).to_bytes(4, "little") + bytes(16))
    with pytest.raises(InvalidModelFile, match="unsupported GGUF version 9"):
        read_gguf(bad)
