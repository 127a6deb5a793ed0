"""Weight-only block quantisation of an ONNX LLM graph: every constant MatMul weight becomes MatMulNBits.

This is what `onnx:int8` is (and `onnx:int4` with a calibration-free algorithm other than the builder's): only the
weights are stored in 8 (or 4) bits, in blocks of `block_size` values along the input dimension, each block with its
own scale. Activations stay float in the graph. How MatMulNBits multiplies is its `accuracy_level`:
1 = dequantise the block and multiply in fp32; 4 = quantise each activation block symmetrically to signed int8 and
use integer dot products.

Why not onnxruntime's `quantize_dynamic` (the former `onnx:int8`): it quantises activations to *unsigned* 8 bits
per tensor and multiplies them with signed 8-bit weights (u8s8). On x86 CPUs without VNNI (AVX2-only laptops, older
AVX-512) onnxruntime does that with `vpmaddubsw`, whose 16-bit pair sums saturate (2 x 255 x 127 > 32767): measured
on an emulated AVX2-only CPU, a worst-case MatMul came out 49% wrong and SmolLM2 answered gibberish (mean KLD 13.4).
MatMulNBits' int8 path quantises activations to *signed* int8 in [-127, 127], so a pair sum is at most
2 x 127 x 128 = 32512 and cannot saturate; measured on the same emulated CPU: the same worst case is exact to
rounding, and the model matches the AVX-512 VNNI result (docs/quantize-quality.md).

The tied embedding: the builder's fp32 graph reads the embedding as Transpose + Gather of the output head's weight.
Quantising the head alone would keep that fp32 copy (113 MB for SmolLM2's 49k x 576 table) beside the quantised
head; `share_embedding` replaces Transpose + Gather with GatherBlockQuantized over the head's quantised bytes, as the
builder itself does for its int4 models, so one 8-bit table serves both.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

ALGORITHMS = ("rtn", "hqq")  # calibration-free; RTN = round to nearest (onnxruntime's "DEFAULT" quantiser)
HEAD = "/lm_head/MatMul"


def _quantizer(model, bits: int, block_size: int, symmetric: bool, accuracy_level: int, algorithm: str,
               exclude: list[str]):
    from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    algo = None
    if algorithm == "hqq":  # HQQ is asymmetric by construction (it optimises scale and zero point together)
        algo = HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits)
    return MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=symmetric,
                                accuracy_level=accuracy_level, nodes_to_exclude=exclude, algo_config=algo)


def quantize_matmuls(src: Path, dst_dir: Path, bits: int = 8, block_size: int = 32, symmetric: bool = True,
                     accuracy_level: int = 4, algorithm: str = "rtn", head_bits: int | None = None,
                     share_embedding: bool = True, external_data: bool = True) -> Path:
    """Write `dst_dir/model.onnx` (+ model.onnx.data): `src` with every constant MatMul weight in `bits` bits.

    head_bits: bits for the output head (None = same as the rest; 8 keeps it at 8 bits in a 4-bit model, as
    llama.cpp's Q4 types keep their output tensor at higher precision; 32 leaves it in fp32).
    """
    import onnx

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    model = onnx.load(str(src))
    head_bits = head_bits or bits
    head_weight = _head_weight(model)
    exclude = [HEAD] if head_bits != bits else []
    q = _quantizer(model, bits, block_size, symmetric, accuracy_level, algorithm, exclude)
    q.process()
    model = q.model.model
    if head_bits not in (bits, 32):  # the head alone at its own width
        q = _quantizer(model, head_bits, block_size, symmetric, accuracy_level, algorithm, [])
        q.nodes_to_include = {HEAD}
        q.algo_config.op_types_to_quantize = set()
        q.process()
        model = q.model.model
    if share_embedding and head_weight is not None and head_bits == 8:
        _share_embedding(model, head_weight)
    _drop_unused_initializers(model)
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = dst_dir / "model.onnx"
    if external_data:  # small tensors (shapes) stay in the graph: shape inference needs them there
        onnx.save(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                  location="model.onnx.data", size_threshold=1024)
        os.chmod(dst_dir / "model.onnx.data", 0o644)  # onnx writes it private; a model is as readable as any file
    else:
        onnx.save(model, str(out))
    return out


def _head_weight(model) -> str | None:
    for node in model.graph.node:
        if node.name == HEAD and node.op_type == "MatMul":
            return node.input[1]
    return None


def _share_embedding(model, head_weight: str) -> None:
    """Transpose(head weight) -> Gather  ==>  GatherBlockQuantized over the quantised head (one table, not two)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    head = next((n for n in graph.node if n.op_type == "MatMulNBits" and n.name.startswith(HEAD)), None)
    transpose = next((n for n in graph.node if n.op_type == "Transpose" and n.input[0] == head_weight), None)
    gather = next((n for n in graph.node if n.op_type == "Gather" and transpose is not None
                   and n.input[0] == transpose.output[0]), None)
    if head is None or gather is None:
        return
    attrs = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    n_rows, k, bits, block = attrs["N"], attrs["K"], attrs["bits"], attrs["block_size"]
    if bits != 8:  # 4-bit heads: the builder shares those itself (int4_algo_config); keep the fp32 table here
        return
    k_blocks = -(-k // block)
    inits = {i.name: i for i in graph.initializer}
    # MatMulNBits stores B as [N, k_blocks, block*bits/8] bytes and scales as [N * k_blocks]: the same bytes are
    # GatherBlockQuantized's [N, K*bits/8] data quantised along axis 1, once reshaped.
    shape_data = numpy_helper.from_array(np.array([n_rows, k_blocks * block * bits // 8], np.int64),
                                         f"{head.name}/embed_data_shape")
    shape_scales = numpy_helper.from_array(np.array([n_rows, k_blocks], np.int64), f"{head.name}/embed_scale_shape")
    prefix = "/model/embed_tokens/shared"
    new = [helper.make_node("Reshape", [head.input[1], shape_data.name], [f"{prefix}/data"], name=f"{prefix}/data"),
           helper.make_node("Reshape", [head.input[2], shape_scales.name], [f"{prefix}/scales"],
                            name=f"{prefix}/scales")]
    gbq_inputs = [f"{prefix}/data", gather.input[1], f"{prefix}/scales"]
    if len(head.input) > 3 and head.input[3]:  # asymmetric: one zero point per block
        zp = numpy_helper.to_array(inits[head.input[3]]).reshape(n_rows, k_blocks)
        if zp.dtype != np.uint8:  # HQQ keeps float zero points, which GatherBlockQuantized does not take
            return
        gbq_inputs.append(f"{prefix}/zero_points")
    else:  # symmetric 8-bit MatMulNBits means zero point 128; say so explicitly to the gather
        zp = np.full((n_rows, k_blocks), 128, np.uint8)
        gbq_inputs.append(f"{prefix}/zero_points")
    graph.initializer.append(numpy_helper.from_array(zp, gbq_inputs[-1]))
    new.append(helper.make_node("GatherBlockQuantized", gbq_inputs, list(gather.output), name=f"{prefix}/gather",
                                domain="com.microsoft", bits=bits, block_size=block, gather_axis=0, quantize_axis=1))
    graph.initializer.extend([shape_data, shape_scales])
    keep = [n for n in graph.node if n is not transpose and n is not gather]
    del graph.node[:]
    graph.node.extend(new + keep)  # the embedding comes first; the rest keeps its (topological) order


def _drop_unused_initializers(model) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def replace_model(folder: Path, staged: Path) -> None:
    """Move staged/model.onnx(+.data) over folder/model.onnx(+.data) and remove `staged`."""
    for name in ("model.onnx", "model.onnx.data"):
        (folder / name).unlink(missing_ok=True)
        if (staged / name).exists():
            os.replace(staged / name, folder / name)
    shutil.rmtree(staged, ignore_errors=True)
