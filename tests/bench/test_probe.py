"""Shape probes: exact shape arithmetic for the full-size models, and a small probe that loads and decodes."""

from __future__ import annotations

import numpy as np
import pytest

from bench.probe import PROBES, check_probe_args, n_params, probe_info, probe_nbytes, tensor_plan
from ondevice.errors import InvalidInput
from ondevice.models.memory import decode_bytes_per_token, estimate_memory, kv_bytes, weights_read_per_token
from ondevice.models.model_info import ModelInfo


def test_llama3_8b_has_its_published_parameter_count_and_q4_k_m_size():
    spec = PROBES["llama3-8b"]
    assert n_params(spec) == 8_030_261_248
    # llama.cpp's Llama-3-8B Q4_K_M is 4.58 GiB, Q8_0 7.95 GiB (PR #6936)
    assert probe_nbytes(spec, "Q4_K_M") / 2**30 == pytest.approx(4.58, abs=0.02)
    assert probe_nbytes(spec, "Q8_0") / 2**30 == pytest.approx(7.95, abs=0.02)


def test_full_size_shape_table_matches_the_architectures():
    plan = {t.name: t for t in tensor_plan(PROBES["llama3-8b"], "Q4_K_M")}
    assert plan["token_embd.weight"].shape == (4096, 128256)
    assert plan["blk.31.attn_k.weight"].shape == (4096, 1024)   # 8 KV heads x 128
    assert plan["blk.0.ffn_down.weight"].shape == (14336, 4096)
    assert plan["blk.0.ffn_down.weight"].type == "Q6_K" and plan["blk.4.ffn_down.weight"].type == "Q4_K"
    assert plan["output.weight"].type == "Q6_K"
    gemma = {t.name: t for t in tensor_plan(PROBES["gemma2-9b"], "Q4_0")}
    assert "output.weight" not in gemma and gemma["blk.41.attn_q.weight"].shape == (3584, 4096)
    assert "blk.0.post_ffw_norm.weight" in gemma
    qwen = {t.name: t for t in tensor_plan(PROBES["qwen2.5-7b"], "Q8_0")}
    assert qwen["blk.0.attn_k.bias"].shape == (512,)
    assert n_params(PROBES["qwen2.5-7b"]) == pytest.approx(7.62e9, rel=0.01)
    assert n_params(PROBES["mistral-7b"]) == pytest.approx(7.25e9, rel=0.01)
    assert n_params(PROBES["gemma2-9b"]) == pytest.approx(9.24e9, rel=0.01)


def test_probe_info_is_a_model_info_with_the_planned_tensor_table():
    info = probe_info("llama3-8b", "Q4_K_M")
    assert isinstance(info, ModelInfo) and info.quant == "Q4_K_M" and info.n_params == 8_030_261_248
    assert info.size_bytes == probe_nbytes(PROBES["llama3-8b"], "Q4_K_M") == sum(info.tensor_bytes.values())
    assert info.tensor_types["output.weight"] == "Q6_K" and not info.tied_embeddings
    # any shape-only ModelInfo works the same way (model-family tables)
    tiny = ModelInfo.from_shapes("tiny", "llama", n_layers=2, n_embd=256, n_ff=512, n_heads=4, n_kv_heads=2,
                                 head_dim=64, vocab_size=1024, context_length=2048)
    assert probe_info(tiny, "q8_0").n_params == sum(t.n_elements for t in tensor_plan(tiny, "Q8_0"))
    with pytest.raises(InvalidInput, match="unknown quant"):
        probe_info(tiny, "Q7_X")


def test_mmap_counts_the_mapped_pages_of_repacked_tensors():
    q4 = probe_info("llama3-8b", "Q4_K_M")
    mapped = estimate_memory(q4, 4096, mmap=True).mapped_bytes
    repacked = sum(b for n, b in q4.tensor_bytes.items() if q4.tensor_types[n] == "Q4_K" and n != "token_embd.weight")
    assert mapped == repacked and 0.5 * q4.size_bytes < mapped < q4.size_bytes
    assert estimate_memory(probe_info("llama3-8b", "Q8_0"), 4096, mmap=True).mapped_bytes == 0  # Q8_0 not repacked


def test_decode_reads_the_output_head_but_only_rows_of_the_embedding():
    llama = probe_info("llama3-8b", "Q4_K_M")  # separate output head: the embedding table is only gathered from
    embd = llama.tensor_bytes["token_embd.weight"]
    assert weights_read_per_token(llama) == llama.size_bytes - embd + embd // 128256  # one row of 128,256
    gemma = probe_info("gemma2-9b", "Q4_K_M")  # tied: the embedding is the output head, read in full
    assert weights_read_per_token(gemma) == gemma.size_bytes
    assert decode_bytes_per_token(llama, 4096) - weights_read_per_token(llama) == kv_bytes(llama, 4096)


def test_unknown_probe_or_quant_is_a_user_error():
    with pytest.raises(InvalidInput, match="unknown probe"):
        check_probe_args("llama9-1t", "Q4_K_M")
    with pytest.raises(InvalidInput, match="unknown quant"):
        check_probe_args("llama3-8b", "Q7_X")


def test_small_probe_file_has_the_planned_shapes_and_types(small_probe, small_probe_spec):
    import gguf

    reader = gguf.GGUFReader(small_probe)
    tensors = {t.name: t for t in reader.tensors}
    for planned in tensor_plan(small_probe_spec, "Q4_K_M"):
        t = tensors[planned.name]
        assert tuple(int(x) for x in t.shape) == planned.shape
        assert t.tensor_type.name == planned.type
    assert reader.fields["llama.attention.head_count_kv"].parts[-1][0] == 2


def test_small_probe_loads_and_decodes_with_finite_logits(small_probe):
    import ondevice

    with ondevice.load(str(small_probe), n_ctx=128, threads=1) as m:
        assert m.info.n_layers == 2 and m.info.vocab_size == 1024
        assert np.isfinite(m.logits([1, 10, 20, 30])).all()
        out = m.generate("t1 t2", max_tokens=4)
        assert len(out.tokens) >= 1


def test_ensure_probe_writes_once_into_the_store_and_reuses(monkeypatch, small_probe_spec):
    import bench.probe as probe

    monkeypatch.setitem(probe.PROBES, "tiny", probe.scaled(small_probe_spec, name="tiny"))
    first = probe.ensure_probe("tiny", "q8_0")
    assert first.parent.name == "probes" and first.exists()
    mtime = first.stat().st_mtime_ns
    assert probe.ensure_probe("tiny", "Q8_0") == first and first.stat().st_mtime_ns == mtime
    assert not list(first.parent.glob("*.partial*"))


def test_a_cached_probe_with_a_stale_tensor_table_is_written_again(monkeypatch, small_probe_spec, small_probe):
    import shutil

    import bench.probe as probe
    from ondevice.models.gguf_file import read_gguf

    monkeypatch.setitem(probe.PROBES, "tiny-stale", probe.scaled(small_probe_spec, name="tiny-stale"))
    path = probe.probe_path(probe.PROBES["tiny-stale"], "Q8_0")
    shutil.copy(small_probe, path)  # a Q4_K_M tensor table under the Q8_0 name
    assert probe.ensure_probe("tiny-stale", "Q8_0") == path
    assert {t.type for t in read_gguf(path).tensors} == {"Q8_0", "F32"}
