"""Shape probes: exact shape arithmetic for the full-size models, and a small probe that loads and decodes."""

from __future__ import annotations

import numpy as np
import pytest

from bench.probe import PROBES, check_probe_args, n_params, probe_nbytes, tensor_plan
from ondevice.errors import InvalidInput


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
