"""GGUF files are parsed and bounds-checked in Python before libllama sees them."""

from __future__ import annotations

import pytest

from ondevice.errors import InvalidModelFile
from ondevice.models.gguf_file import file_type_name, read_gguf


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


def test_tensor_table_gives_each_tensor_its_type_and_bytes(smollm2_path):
    g = read_gguf(smollm2_path)
    table = {t.name: t for t in g.tensors}
    assert len(g.tensors) == g.n_tensors and sum(t.n_elements for t in g.tensors) == g.n_params
    assert table["blk.0.attn_q.weight"].type == "Q4_1" and table["blk.0.attn_norm.weight"].type == "F32"
    # Q4_1: 20 bytes per 32 weights; 576 x 576 query projection
    assert table["blk.0.attn_q.weight"].nbytes == 576 * 576 // 32 * 20
    assert sum(t.nbytes for t in g.tensors) < g.file_size < sum(t.nbytes for t in g.tensors) + 4 * 2**20


def test_model_info_carries_the_shapes_fit_and_roofline_need(smollm2_path):
    from ondevice.models.model_info import read_info
    from ondevice.models.store import resolve

    info = read_info(resolve(smollm2_path))
    assert (info.n_ff, info.sliding_window, info.tied_embeddings, info.qkv_bias) == (1536, 0, True, False)
    assert info.rope_theta == 100000.0 and info.norm_eps == pytest.approx(1e-5)
    assert len(info.tensor_types) == 272 and info.tensor_types["output_norm.weight"] == "F32"
    assert info.tensor_bytes["blk.0.attn_q.weight"] == 576 * 576 // 32 * 20
    assert "tensor_types" not in info.to_dict() and info.to_dict()["n_ff"] == 1536


def test_hf_config_gives_the_same_shape_record():
    from ondevice.models.model_info import hf_config_info

    config = {"model_type": "qwen2", "num_hidden_layers": 24, "hidden_size": 896, "intermediate_size": 4864,
              "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
              "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
              "tie_word_embeddings": True, "sliding_window": 32768, "use_sliding_window": False}
    info = hf_config_info(config, "qwen2.5-0.5b")
    assert (info.n_layers, info.n_embd, info.n_ff, info.n_heads, info.n_kv_heads, info.head_dim) == \
        (24, 896, 4864, 14, 2, 64)
    assert info.tied_embeddings and info.qkv_bias and info.rope_theta == 1e6 and info.context_length == 32768
    assert info.sliding_window == 0  # named, but switched off
    assert info.kv_bytes_per_token() == 2 * 24 * 2 * 64 * 2
