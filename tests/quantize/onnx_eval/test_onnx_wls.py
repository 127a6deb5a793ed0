"""onnx:int4-wls, the default onnx:int4: least-squares scale and float minimum per block (quantize/onnx_wls.py).

Specification: on real tensors of the embedded SmolLM2 the fit beats round-to-nearest (symmetric, and asymmetric
with an integer zero point) in the weighted error it minimises, and reproduces a tensor that is already on a Q4_1
grid exactly; the graph's form (integer zero points + offset rows) multiplies as the fit does, one MatMulNBits per
weight; the exported model answers the same at temperature 0 on two loads and agrees with the f16 GGUF's
next token almost everywhere; a bad ONNX type is refused with the accepted forms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ondevice.errors import InvalidInput
from quantize.onnx_export import parse_llm_type
from quantize.onnx_wls import BlockFit, block_summer, fit_matrix, rtn_symmetric, weighted_error, with_offset_rows


def _matmul_weight(gguf_path, name: str, columns: int | None = None) -> np.ndarray:
    """A GGUF tensor de-quantised to MatMul layout [K (inputs), N (outputs)]."""
    import gguf

    tensor = next(t for t in gguf.GGUFReader(str(gguf_path)).tensors if t.name == name)
    rows = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1, int(tensor.shape[0]))
    return np.ascontiguousarray(rows[:columns].T, dtype=np.float32)


def _asymmetric_integer_zero_point(w: np.ndarray, block: int = 32) -> BlockFit:
    """onnxruntime's asymmetric RTN: range including 0, the zero point rounded to an integer level."""
    k, n = w.shape
    x = w.T.reshape(n, k // block, block)
    lo, hi = np.minimum(x.min(-1), 0), np.maximum(x.max(-1), 0)
    scale = np.where(hi > lo, (hi - lo) / 15, 1.0)
    zero = np.clip(np.rint(-lo / scale), 0, 15)
    q = np.clip(np.rint(x / scale[..., None]) + zero[..., None], 0, 15)
    return BlockFit(q.astype(np.uint8), scale.astype(np.float32), (-zero * scale).astype(np.float32))


def test_fit_reproduces_a_q4_1_tensor_that_integer_zero_points_cannot(smollm2_path):
    """The embedded model's layers are Q4_1 (float minimum per 32-block): the fit lands back on that grid."""
    w = _matmul_weight(smollm2_path, "blk.0.attn_q.weight")
    fit = fit_matrix(w)
    assert np.abs(fit.dequantize() - w).max() <= 1e-5 * np.abs(w).max()
    assert fit.q.max() <= 15
    ours = weighted_error(w, fit)
    assert ours < 1e-6 * weighted_error(w, _asymmetric_integer_zero_point(w))
    assert ours < 1e-6 * weighted_error(w, rtn_symmetric(w))


def test_fit_beats_round_to_nearest_off_the_grid(smollm2_path):
    """The token embedding is Q8_0 (not on any 4-bit grid): a real test of the fit itself."""
    w = _matmul_weight(smollm2_path, "token_embd.weight", columns=2048)
    ours = weighted_error(w, fit_matrix(w))
    assert ours < 0.8 * weighted_error(w, _asymmetric_integer_zero_point(w))
    assert ours < 0.5 * weighted_error(w, rtn_symmetric(w))


@pytest.mark.parametrize("name", ["blk.0.attn_q.weight", "blk.5.ffn_down.weight"])
def test_offset_rows_multiply_as_the_float_minimum_does(smollm2_path, name):
    """The graph's form of the fit: integer zero points (onnxruntime's fast kernel takes no other) and the residual
    offsets as extra rows over the activations' block sums give the fit's own product to ~8-bit offset precision."""
    w = _matmul_weight(smollm2_path, name)
    fit = fit_matrix(w)
    rows = with_offset_rows(fit, 32)
    k, n = w.shape
    assert rows.zero.max() <= 15 and rows.q.max() <= 15
    assert rows.q.shape == (n, k // 32 + rows.extra_blocks, 32) and rows.extra_blocks == -(-(k // 32) // 16)
    residual = fit.minimum + rows.zero[:, :k // 32] * fit.scale
    assert np.all(np.abs(residual) <= 0.5 * fit.scale + 1e-7)  # Q4_1 minimums lie inside the 4-bit range
    as_written = ((rows.q.astype(np.float32) - rows.zero[..., None]) * rows.scale[..., None]).reshape(n, -1).T
    a = np.random.default_rng(0).standard_normal((8, k)).astype(np.float32)
    extended = np.concatenate([a, a @ block_summer(k, 32)], axis=-1)
    exact = a @ fit.dequantize()
    assert np.abs(extended @ as_written - exact).max() <= 2e-3 * np.abs(exact).max()
    integer_only = ((fit.q.astype(np.float32) - rows.zero[:, :k // 32, None]) * fit.scale[..., None]).reshape(n, -1).T
    assert np.abs(a @ integer_only - exact).max() >= 20 * np.abs(extended @ as_written - exact).max()


def test_default_int4_is_one_fast_matmulnbits_per_weight(smollm2_onnx_int4):
    """onnx:int4 is wls: every layer weight one MatMulNBits with uint8 zero points (the packed integer kernel; float
    zero points de-quantise on every call), no offset node per weight: the only float MatMuls are the block sums,
    one per activation, each joined to it by a Concat."""
    import json

    import onnx

    folder = Path(smollm2_onnx_int4.info.path)
    assert json.loads((folder / "ondevice_onnx.json").read_text())["algorithm"] == "wls"
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    elem = {i.name: i.data_type for i in graph.initializer}
    nbits = [nd for nd in graph.node if nd.op_type == "MatMulNBits"]
    layers = [nd for nd in nbits if nd.name.startswith("/model/layers.")]
    assert len(layers) == 30 * 5  # qkv, o, gate, up, down
    assert all(len(nd.input) == 4 and elem[nd.input[3]] == onnx.TensorProto.UINT8 for nd in layers)
    float_matmuls = [nd for nd in graph.node if nd.op_type == "MatMul"]
    assert float_matmuls and all(nd.output[0].endswith("/wls_offset_columns") for nd in float_matmuls)
    concats = {nd.input[1] for nd in graph.node if nd.op_type == "Concat"}
    assert {nd.output[0] for nd in float_matmuls} <= concats
    assert len(float_matmuls) == 30 * 4  # per layer: the qkv, o, gate/up and down inputs
    assert not any(nd.op_type == "Add" and "offset" in nd.name for nd in graph.node)


@pytest.mark.parametrize("spec,expected", [
    ("int4", ("int4", {})),
    ("INT4-rtn-head4", ("int4", {"algorithm": "rtn", "head_bits": 4})),
    ("int4-wls-b16", ("int4", {"algorithm": "wls", "block_size": 16})),
    ("int8-b64", ("int8", {"block_size": 64})),
    ("int4-wls_mixed-imx", ("int4", {"algorithm": "wls_mixed", "imatrix": True})),
    ("int4-imx-wls-b16", ("int4", {"imatrix": True, "algorithm": "wls", "block_size": 16})),
    ("int4-imx", ("int4", {"imatrix": True})),  # imx on the default algorithm, wls
])
def test_onnx_type_options_parse(spec, expected):
    assert parse_llm_type(spec) == expected


@pytest.mark.parametrize("spec", ["int4-foo", "int4-head6", "int8-wls", "fp32-b16", "int4-rtn-wls",
                                  "int4-k_quant_mixed-head4", "int3", "int4-rtn-imx", "int4-hqq-s10", "int8-imx",
                                  "int4-wls-imx-imx"])
def test_bad_onnx_type_is_refused_with_the_accepted_forms(spec):
    with pytest.raises(InvalidInput, match="TYPE\\[-OPTION...\\]|head8"):
        parse_llm_type(spec)


def test_wls_export_is_stable_and_close_to_the_reference(smollm2_onnx_int4_wls, smollm2_f16_gguf):
    """Same greedy tokens from a second load of the same folder; next-token argmax agrees with the f16 GGUF's at
    >= 90% of the positions of a fixed text (round-to-nearest int4 with an 8-bit head: 47-75%)."""
    import ondevice

    model = smollm2_onnx_int4_wls
    prompt = "The three primary colors are"
    first = model.generate(prompt, max_tokens=12, temperature=0.0).tokens
    with ondevice.load(model.ref.path, n_ctx=256) as again:
        assert again.generate(prompt, max_tokens=12, temperature=0.0).tokens == first
    text = ("Hello world! The capital of France is Paris. Prices rose 12.5% in 2024. "
            "The river flows through the city and into the sea, past the old mill and the bridge.")
    with ondevice.load(smollm2_f16_gguf, n_ctx=256) as ref:
        ids = ref.tokenize(text, add_special=True)
        agree = np.mean(ref.logits(ids).argmax(-1) == model.logits(ids).argmax(-1))
    assert agree >= 0.9, agree


def test_mixed_layers_are_the_ones_llama_cpp_gives_more_bits(smollm2_report):
    """wls_mixed upgrades the layers llama.cpp's Q4_K_M upgrades: those whose ffn_down libllama wrote as Q6_K."""
    import gguf

    from quantize.onnx_wls import more_bits

    path = next(v.path for v in smollm2_report.variants if v.qtype == "Q4_K_M")
    down = {int(t.name.split(".")[1]): t.tensor_type.name for t in gguf.GGUFReader(path).tensors
            if t.name.endswith("ffn_down.weight")}
    assert sorted(i for i, kind in down.items() if kind == "Q6_K") == [i for i in range(len(down))
                                                                       if more_bits(i, len(down))]
