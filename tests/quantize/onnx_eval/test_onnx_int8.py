"""onnx:int8 is weight-only 8-bit (MatMulNBits): no integer-activation op that saturates on CPUs without VNNI, the
tied embedding shares the head's 8-bit bytes, and the model predicts what the f16 GGUF predicts."""

from __future__ import annotations

import numpy as np
import pytest

from tests.quantize.onnx_eval.test_onnx_llm import TEXTS

SATURATING_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul"}


def _ops(folder) -> dict[str, int]:
    import onnx

    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops


def test_int8_is_weight_only_matmulnbits(smollm2_onnx_int8):
    folder = smollm2_onnx_int8.ref.path
    ops = _ops(folder)
    assert not SATURATING_OPS & set(ops), ops
    assert ops.get("MatMul", 0) == 0 and ops["MatMulNBits"] == 30 * 5 + 1  # every MatMul of the fp32 graph
    assert ops.get("GatherBlockQuantized") == 1  # the tied embedding reads the head's 8-bit table
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 175 * 2 ** 20, size  # fp32 is 519 MiB; 8-bit weights + one shared table + tokenizer ~ 151 MiB


def test_int8_predicts_what_f16_gguf_predicts(smollm2_onnx_int8, smollm2_f16_gguf):
    """Measured: mean KLD 0.0065 and 94% top-1 agreement on a pydoc window; the former dynamic int8 gave KLD 0.53
    with VNNI and 13.4 (0% agreement) on an AVX2-only CPU."""
    import ondevice
    from quantize.kld import KLDAccumulator

    text = " ".join(TEXTS) + " The river flows through the city and into the sea."
    with ondevice.load(smollm2_f16_gguf, n_ctx=512) as ref:
        ids = ref.tokenize(text, add_special=True)
        base = ref.logits(ids)
        greedy_ref = ref.generate("The capital of France is", max_tokens=8).tokens
    acc = KLDAccumulator()
    acc.add(smollm2_onnx_int8.logits(ids)[:-1], base[:-1], ids[1:])
    result = acc.result("int8", "f16", len(ids))
    assert result.kld_mean < 0.03, result.kld_mean
    assert result.same_top_pct >= 85, result.same_top_pct
    assert smollm2_onnx_int8.generate("The capital of France is", max_tokens=8).tokens == greedy_ref


@pytest.mark.parametrize("accuracy_level", [1, 4])
def test_8bit_matmul_does_not_saturate_on_this_cpu(tmp_path, accuracy_level):
    """The worst case for 8-bit integer kernels: every activation aligned in sign with a full-scale weight. u8s8
    `vpmaddubsw` kernels (CPUs without VNNI) saturate here: the former dynamic int8 came out 49% wrong on an
    emulated AVX2-only CPU. Our quantiser's MatMulNBits must give the float answer to rounding, for one row (decode)
    and several (prefill)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from quantize.onnx_weights import quantize_matmuls

    k, n = 256, 64
    rng = np.random.default_rng(0)
    w = np.where(rng.random((k, n)) < 0.5, -1.0, 1.0).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", n])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              str(tmp_path / "f.onnx"))
    out = quantize_matmuls(tmp_path / "f.onnx", tmp_path / "q", bits=8, accuracy_level=accuracy_level,
                           external_data=False)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for rows in (1, 4):
        x = 3.0 * np.sign(w[:, :rows].T).astype(np.float32)
        x = np.vstack([x, -x])
        expected = x.astype(np.float64) @ w
        got = session.run(None, {"x": x})[0]
        assert np.abs(got - expected).max() / np.abs(expected).max() < 0.01, rows
