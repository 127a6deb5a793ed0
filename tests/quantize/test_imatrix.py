"""Importance matrices: computed by llama-imatrix on real text, read back, and used by libllama's quantiser."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from ondevice.errors import InvalidInput
from quantize.gguf_quantize import check_qtype, quantize_gguf
from quantize.imatrix import BUILTIN_TEXT, ImatrixParam, calibration_text, compute_imatrix, load_imatrix
from tests.native import link_built_tools


@pytest.fixture(scope="module")
def imatrix(isolated_store, smollm2_f16_gguf, tmp_path_factory):
    link_built_tools(isolated_store)
    out = tmp_path_factory.mktemp("imatrix") / "smollm2.imatrix.gguf"
    return compute_imatrix(smollm2_f16_gguf, out, ctx=256, chunks=4, threads=2)


def test_imatrix_covers_every_block_matrix_of_the_model(imatrix):
    assert imatrix.path.exists() and imatrix.n_chunks == 4 and imatrix.text == BUILTIN_TEXT
    entries = load_imatrix(imatrix.path)
    assert imatrix.n_entries == len(entries) >= 30 * 7  # q, k, v, o, gate, up, down in each of 30 layers
    q = entries["blk.0.attn_q.weight"]
    assert q.shape == (576,) and np.all(np.isfinite(q)) and np.all(q >= 0) and q.max() > 0
    assert entries["blk.0.ffn_down.weight"].shape == (1536,)
    assert 1 < imatrix.ppl < 1000


def test_imatrix_type_is_refused_without_one_and_accepted_with_one():
    with pytest.raises(InvalidInput, match="importance matrix"):
        check_qtype("IQ2_XXS")
    assert check_qtype("iq2_xxs", with_imatrix=True) == "IQ2_XXS"


def test_imatrix_changes_the_quantised_weights(imatrix, smollm2_f16_gguf, tmp_path):
    plain = quantize_gguf(smollm2_f16_gguf, tmp_path / "plain.gguf", "Q3_K_M", progress=False)
    weighted = quantize_gguf(smollm2_f16_gguf, tmp_path / "weighted.gguf", "Q3_K_M", progress=False,
                             imatrix=imatrix.path)
    assert plain.size_bytes == weighted.size_bytes  # same types per tensor, other rounding
    assert plain.path.read_bytes() != weighted.path.read_bytes()


def test_a_type_that_needs_an_imatrix_is_made_and_runs_with_one(imatrix, smollm2_f16_gguf, tmp_path):
    import ondevice
    from ondevice.models.gguf_file import file_type_name, read_gguf

    result = quantize_gguf(smollm2_f16_gguf, tmp_path / "q2ks.gguf", "Q2_K_S", progress=False,
                           imatrix=imatrix.path)
    assert file_type_name(read_gguf(result.path)) == "Q2_K_S" and result.bits_per_weight < 8  # below Q8_0
    with ondevice.load(result.path, n_ctx=128, threads=1) as model:
        assert len(model.generate("The capital of France is", max_tokens=3, temperature=0).tokens) == 3


def test_a_gguf_that_is_not_an_imatrix_is_refused(smollm2_path):
    with pytest.raises(InvalidInput, match="no importance-matrix entries"):
        load_imatrix(smollm2_path)


def test_calibration_text_is_the_users_files_when_given(tmp_path):
    (tmp_path / "a.txt").write_text("notes about the lighthouse keeper\n" * 3)
    (tmp_path / "b.md").write_text("# more notes\n")
    text, described = calibration_text(tmp_path)
    assert "lighthouse" in text and "more notes" in text and described == str(tmp_path)
    builtin, name = calibration_text()
    assert name == BUILTIN_TEXT and len(builtin) > 100_000


def test_imatrix_param_is_a_null_terminated_c_array():
    values = {"a.weight": np.arange(4, dtype=np.float32), "b.weight": np.ones(2, dtype=np.float32)}
    param = ImatrixParam(values)
    p = param.pointer
    assert p[0].name == b"a.weight" and p[0].size == 4 and p[0].data[3] == 3.0
    assert p[1].name == b"b.weight" and p[1].size == 2
    assert p[2].name is None
    assert ctypes.addressof(p[0]) == ctypes.addressof(param.array)
