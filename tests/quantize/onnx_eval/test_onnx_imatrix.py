"""onnx:int4-wls-imx: the least-squares fit weighted by calibration activations (quantize/onnx_imatrix.py).

Specification: one forward pass of the real SmolLM2 over the built-in calibration text gives every linear layer's
mean squared input per channel, keyed so that the ONNX builder's fused MatMuls find theirs; on a real tensor that is
not on a 4-bit grid, the importance-weighted fit has a lower importance-weighted error than the unweighted fit.
"""

from __future__ import annotations

import numpy as np
import pytest

from quantize.onnx_imatrix import gather_importance, matmul_key
from quantize.onnx_wls import fit_matrix, weighted_error

from .test_onnx_wls import _matmul_weight


@pytest.fixture(scope="module")
def importance(smollm2_hf_dir):
    return gather_importance(smollm2_hf_dir, ctx=128, chunks=2)


@pytest.mark.parametrize("name,key", [
    ("/model/layers.3/attn/qkv_proj/MatMul", (3, "q")),
    ("model.layers.3.self_attn.q_proj", (3, "q")),
    ("/model/layers.12/mlp/gate_up_proj/MatMul", (12, "gate")),
    ("model.layers.29.mlp.down_proj", (29, "down")),
    ("/lm_head/MatMul", (None, "lm_head")),
    ("/model/embed_tokens/Gather", None),
])
def test_onnx_and_hf_names_share_a_key(name, key):
    assert matmul_key(name) == key


def test_every_linear_input_is_measured(importance):
    """30 layers x 7 projections + the head, each a positive vector as wide as the layer's input."""
    values = importance.values
    assert len(values) == 30 * 7 + 1
    assert values[(0, "down")].shape == (1536,) and values[(None, "lm_head")].shape == (576,)
    assert all(np.all(v >= 0) and v.sum() > 0 for v in values.values())
    assert importance.n_tokens == 256
    assert importance.for_node("/model/layers.7/attn/qkv_proj/MatMul") is values[(7, "q")]


def test_importance_weighted_fit_lowers_the_weighted_error(smollm2_path, importance):
    """The head's real input importance on the tied token embedding (Q8_0 in the source, so on no 4-bit grid)."""
    w = _matmul_weight(smollm2_path, "token_embd.weight", columns=2048)
    imp = importance.for_node("/lm_head/MatMul")
    weighted = weighted_error(w, fit_matrix(w, importance=imp), importance=imp)
    plain = weighted_error(w, fit_matrix(w), importance=imp)
    assert weighted < 0.95 * plain, (weighted, plain)


def test_importance_keeps_a_q4_1_tensor_exact(smollm2_path, importance):
    """On the embedded model's own Q4_1 grid the weighted fit lands back on it exactly, as the unweighted one does:
    `imx` writes the same 4-bit layers as `wls` there."""
    w = _matmul_weight(smollm2_path, "blk.0.attn_q.weight")
    fit = fit_matrix(w, importance=importance.for_node("/model/layers.0/attn/qkv_proj/MatMul"))
    assert np.abs(fit.dequantize() - w).max() <= 1e-5 * np.abs(w).max()


def test_most_sensitive_takes_most_kld_per_weight_up_to_the_share():
    """sN's choice: groups ranked by KLD per weight, taken until they hold the share of all weights."""
    from quantize.onnx_sensitivity import Sensitivity, group_key

    sens = Sensitivity(kld={(0, "q"): 0.02, (0, "down"): 0.03, (1, "o"): 0.001, (1, "up"): 0.01},
                       n_weights={(0, "q"): 100, (0, "down"): 300, (1, "o"): 100, (1, "up"): 500},
                       n_tokens=512, seconds=0.0)
    assert sens.most_sensitive(0.1) == {(0, "q")}              # 2e-4 per weight: the first pick
    assert sens.most_sensitive(0.3) == {(0, "q"), (0, "down")}  # then 1e-4 per weight
    assert group_key("/model/layers.4/attn/v_proj/MatMul") == (4, "q")  # an unfused v goes with q
    assert group_key("/lm_head/MatMul") is None
