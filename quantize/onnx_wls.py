"""4-bit weights with a float minimum per block (llama.cpp's Q4_1 / Q4_K idea) for onnxruntime's MatMulNBits.

Why: onnxruntime's own int4 quantisers (RTN, k_quant, asymmetric RTN) measured within one standard error of each
other on SmolLM2 (docs/quantize-quality.md), far from GGUF Q4_K_M. Their asymmetric form stores an *integer*
zero point per block, so a block's minimum can only sit on a multiple of its scale: up to half a step of offset
error shared by all 32 weights of the block, which does not average out. llama.cpp's Q4_1 and Q4_K store the
minimum as a float, and Q4_K fits scale and minimum by weighted least squares (`make_qkx2_quants` in
ggml-quants.c). This module does the same fit.

How it runs fast: MatMulNBits also accepts float zero points, but onnxruntime 1.32's CPU kernel then skips its
prepacked integer kernels and de-quantises the whole matrix on every call (`has_unquantized_zero_point_` in
matmul_nbits.cc; measured 46x slower per MatMul). So each weight is one *asymmetric* MatMulNBits with integer zero
points (the fast kernel) over extended activations: w = s·(q − z) + r, z the integer nearest −minimum/s, and r the
block's residual offset (|r| ≤ s/2). Because r is constant over a block of k, sum_k a_k·r = r · (block sum of a):
the activations get their block sums appended as extra columns (one small MatMul and a Concat per activation,
shared by the MatMuls that read it) and B gets r as extra 4-bit rows, high and low part (`offset_rows`: about
8 bits of resolution per offset). No node per weight is added; an earlier form (a separate offset MatMul and Add
per weight, 14 more nodes a layer) decoded 30-40% slower (docs/quantize-quality.md).

The output head (tied to the embedding in small models) is written as 8-bit blocks with scale max|w|/127, as
llama.cpp's Q8_0 does, so `quantize.onnx_weights` can share it with the embedding through GatherBlockQuantized.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from quantize.onnx_weights import HEAD, _drop_unused_initializers, _head_weight, _share_embedding

if TYPE_CHECKING:
    from quantize.onnx_imatrix import ActivationImportance

log = logging.getLogger(__name__)


@dataclass
class BlockFit:
    """A [K, N] MatMul weight in blocks of `block` along K: w[k, n] ≈ q·scale + minimum of its block."""

    q: np.ndarray        # [N, K/block, block] uint8 in 0..nmax
    scale: np.ndarray    # [N, K/block] float32
    minimum: np.ndarray  # [N, K/block] float32

    def dequantize(self) -> np.ndarray:
        """Back to a [K, N] float32 matrix."""
        w = self.q.astype(np.float32) * self.scale[..., None] + self.minimum[..., None]
        return w.reshape(w.shape[0], -1).T


def block_weights(x: np.ndarray, importance: np.ndarray | None = None) -> np.ndarray:
    """Per-value weights of the least-squares fit, as llama.cpp's Q4_K: mean-magnitude + |x| without an importance
    vector; importance · sqrt(2·mean(x²) + x²) with one (per input channel, broadcast over the block)."""
    if importance is None:
        return np.sqrt(np.mean(x * x, axis=-1, keepdims=True)) + np.abs(x)
    return importance * np.sqrt(2 * np.mean(x * x, axis=-1, keepdims=True) + x * x)


def fit_scale_min(x: np.ndarray, weights: np.ndarray, nmax: int = 15, nstep: int = 20, rmin: float = -1.0,
                  rdelta: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares scale and minimum for each row of `x` ([blocks, n]): llama.cpp's make_qkx2_quants,
    vectorised over blocks. Start from min/max rounding, then try nstep+1 slightly different step sizes; for each,
    round, solve the 2x2 weighted least-squares system for (scale, min), and keep whichever has the least weighted
    squared error. Unlike Q4_K the minimum is not clamped to <= 0 (it is stored as a float offset here, not as a
    positive 6-bit multiple), so a block that already is on a 4-bit grid (a Q4_1 source) is reproduced exactly.
    Returns (q uint8 [blocks, n], scale [blocks], minimum [blocks])."""
    x = x.astype(np.float32, copy=False)
    w = weights.astype(np.float32, copy=False)
    lo, hi = x.min(axis=1), x.max(axis=1)
    span = hi - lo
    flat = span <= 0
    span = np.where(flat, 1.0, span)
    sum_w, sum_x = w.sum(axis=1), (w * x).sum(axis=1)
    shifted = x - lo[:, None]

    def rounded(inv_scale):
        return np.clip(np.rint(inv_scale[:, None] * shifted), 0, nmax)

    def error(levels, scale, minimum):
        diff = scale[:, None] * levels + minimum[:, None] - x
        return (w * diff * diff).sum(axis=1)

    best_q = rounded(nmax / span)
    best_scale, best_min = span / nmax, lo.copy()
    best_err = error(best_q, best_scale, best_min)
    for step in range(nstep + 1):
        levels = rounded((rmin + rdelta * step + nmax) / span)
        wl = w * levels
        sum_l, sum_l2, sum_xl = wl.sum(axis=1), (wl * levels).sum(axis=1), (wl * x).sum(axis=1)
        det = sum_w * sum_l2 - sum_l * sum_l
        ok = det > 0
        det = np.where(ok, det, 1.0)
        scale = (sum_w * sum_xl - sum_x * sum_l) / det
        minimum = (sum_l2 * sum_x - sum_l * sum_xl) / det
        err = error(levels, scale, minimum)
        better = ok & (err < best_err)
        best_q[better], best_scale[better], best_min[better], best_err[better] = \
            levels[better], scale[better], minimum[better], err[better]
    best_q[flat], best_scale[flat], best_min[flat] = 0, 0.0, x[flat, 0]
    return best_q.astype(np.uint8), best_scale.astype(np.float32), best_min.astype(np.float32)


def _blocks(w: np.ndarray, block: int, importance: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A [K, N] weight as rows of `block` values along K ([N·K/block, block]) and the per-input-channel importance
    [K] laid out the same way (None stays None)."""
    n = w.shape[1]
    x = np.ascontiguousarray(w.T, dtype=np.float32).reshape(-1, block)
    imp = None if importance is None else np.tile(np.asarray(importance, np.float32).reshape(-1, block), (n, 1))
    return x, imp


def fit_matrix(w: np.ndarray, block: int = 32, importance: np.ndarray | None = None) -> BlockFit:
    """Fit a [K, N] MatMul weight (K a multiple of `block`) block by block along K. importance: [K] or None."""
    k, n = w.shape
    x, imp = _blocks(w, block, importance)
    q, scale, minimum = fit_scale_min(x, block_weights(x, imp))
    return BlockFit(q.reshape(n, k // block, block), scale.reshape(n, -1), minimum.reshape(n, -1))


def rtn_symmetric(w: np.ndarray, block: int = 32, bits: int = 4) -> BlockFit:
    """Round-to-nearest symmetric blocks, scale = max|w| / (2^(bits-1) - 1) (llama.cpp's Q8_0 for 8 bits), written
    in the same form as `fit_matrix` (minimum = -half·scale) to compare or to pack."""
    k, n = w.shape
    half = 1 << (bits - 1)
    x = np.ascontiguousarray(w.T, dtype=np.float32).reshape(n, k // block, block)
    scale = np.abs(x).max(axis=-1) / (half - 1)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(x / safe[..., None]), -half + 1, half - 1) + half
    return BlockFit(q.astype(np.uint8), scale.astype(np.float32), (-half * scale).astype(np.float32))


def weighted_error(w: np.ndarray, fit: BlockFit, block: int = 32, importance: np.ndarray | None = None) -> float:
    """The fit's error in the metric it minimises (block weights as `block_weights`, with the per-input-channel
    `importance` [K] when given), summed over the matrix."""
    x, imp = _blocks(w, block, importance)
    diff = np.ascontiguousarray(fit.dequantize().T).reshape(-1, block) - x
    return float((block_weights(x, imp) * diff * diff).sum())


def _pack(q: np.ndarray, bits: int) -> np.ndarray:
    """[N, blocks, block] levels -> MatMulNBits' B bytes [N, blocks, block·bits/8] (4 bits: low nibble first)."""
    if bits == 8:
        return q
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def offset_rows(offset: np.ndarray, block: int, parts: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The block offsets c [N, K/block] of one weight as extra 4-bit rows of its MatMulNBits (module docstring):
    E = ceil(K/block / (block/parts)) blocks per column, block j holding the offsets of `block/parts` weight blocks
    `parts` times (1: c ≈ t·q; 2: high part then low part, c ≈ t·(q_hi + q_lo/16), about 8 bits of resolution),
    with one symmetric 4-bit scale t per (column, extra block). Returns (q [N, E, block] uint8 with 8 as zero,
    scale [N, E])."""
    n, blocks = offset.shape
    slots = block // parts
    e = -(-blocks // slots)
    c = np.zeros((n, e * slots), np.float32)
    c[:, :blocks] = offset
    c = c.reshape(n, e, slots)
    t = np.abs(c).max(axis=-1) / 7
    safe = np.where(t > 0, t, 1.0)[..., None]
    levels, rest = [], c
    for _ in range(parts):
        level = np.clip(np.rint(rest / safe), -8, 7)
        levels.append(level)
        rest, safe = rest - level * safe, safe / 16
    q = np.concatenate(levels, axis=-1)
    if q.shape[-1] < block:
        q = np.concatenate([q, np.zeros((n, e, block - q.shape[-1]))], axis=-1)
    return (q + 8).astype(np.uint8), t.astype(np.float32)


@dataclass
class OffsetRows:
    """A 4-bit `BlockFit` as one asymmetric MatMulNBits over the extended activations [a, a @ block_summer(K)]:
    w = scale·(q − zero) per block, the first K/block blocks the fit's own levels with an integer zero point, the
    last `extra_blocks` the residual offsets (`offset_rows`)."""

    q: np.ndarray      # [N, K/block + extra_blocks, block] uint8 in 0..15
    scale: np.ndarray  # [N, K/block + extra_blocks] float32
    zero: np.ndarray   # [N, K/block + extra_blocks] uint8 in 0..15
    extra_blocks: int


def with_offset_rows(fit: BlockFit, block: int) -> OffsetRows:
    """`fit` (w = scale·q + minimum) as w = scale·(q − zero) + residual, zero = the integer nearest −minimum/scale
    (onnxruntime's fast kernels take integer zero points only), |residual| ≤ scale/2 inside 0..15; the residual
    travels in `offset_rows`."""
    zero = np.clip(np.rint(-fit.minimum / np.where(fit.scale > 0, fit.scale, 1.0)), 0, 15)
    extra_q, extra_scale = offset_rows(fit.minimum + zero * fit.scale, block)
    extra = extra_scale.shape[1]
    return OffsetRows(np.concatenate([fit.q, extra_q], axis=1), np.concatenate([fit.scale, extra_scale], axis=1),
                      np.concatenate([zero, np.full(extra_scale.shape, 8)], axis=1).astype(np.uint8), extra)


def block_summer(k: int, block: int, parts: int = 2) -> np.ndarray:
    """[K, E·block] fp32: activations @ it = the activations' extra columns that `offset_rows` multiplies (each
    block's sum, then the same sum / 16 for the low part, laid out as `offset_rows` lays out the offsets)."""
    blocks, slots = k // block, block // parts
    e = -(-blocks // slots)
    summer = np.zeros((k, e * block), np.float32)
    for b in range(blocks):
        j, i = divmod(b, slots)
        for part in range(parts):
            summer[b * block:(b + 1) * block, j * block + part * slots + i] = 1.0 / 16 ** part
    return summer


def more_bits(layer: int, n_layers: int) -> bool:
    """llama.cpp's Q4_K_M rule (`use_more_bits` in src/llama-quant.cpp) for which layers' attn_v / ffn_down get
    more bits: the first and last eighth of the layers and every third layer between."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


def _layer_of(node_name: str) -> int | None:
    match = re.match(r"/model/layers\.(\d+)/", node_name)
    return int(match.group(1)) if match else None


def quantize_wls(src: Path, dst_dir: Path, block_size: int = 32, accuracy_level: int = 4, head_bits: int = 8,
                 mixed: bool = False, importance: ActivationImportance | None = None,
                 eight_bit: set[tuple[int | None, str]] | None = None) -> Path:
    """Write `dst_dir/model.onnx` (+ .data): every constant MatMul of an LLM graph (activations [batch, seq, K]) as
    4-bit MatMulNBits with a least-squares-fitted scale and float minimum per block, the minimum as an integer zero
    point plus offset rows over the activations' block sums (module docstring);
    the output head at `head_bits` 8 (Q8_0-style, shared with a tied embedding) or 4 (fitted like the rest).
    mixed: as Q4_K_M keeps attn_v and ffn_down at 6 bits in the layers `more_bits` picks, write those layers' value
    projection (the builder fuses q, k and v into one MatMul: the whole qkv) and down projection at 8 bits.
    importance: per-input-channel mean squared activations (`quantize.onnx_imatrix`); the 4-bit fits then weight
    each value's error by it, as llama.cpp's Q4_K does with an importance matrix.
    eight_bit: MatMuls (keys of `quantize.onnx_sensitivity.group_key`) to write at 8 bits as well, e.g. those
    `quantize.onnx_sensitivity` measured as the most sensitive."""
    from quantize.onnx_sensitivity import group_key

    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    head_weight = _head_weight(model)
    n_layers = 1 + max((_layer_of(n.name) or 0) for n in graph.node)
    extended_inputs: dict[str, str] = {}  # activation -> [activation, its offset columns], made once per activation
    summers: dict[int, str] = {}  # K -> `block_summer(K)`, one initializer per width
    new_nodes, new_inits = [], []

    def extended(activation: str, k: int) -> str:
        if k not in summers:
            summers[k] = f"/wls/offset_summer_{k}"
            new_inits.append(numpy_helper.from_array(block_summer(k, block_size), summers[k]))
        if activation not in extended_inputs:
            cols, out = f"{activation}/wls_offset_columns", f"{activation}/wls_extended"
            new_nodes.append(helper.make_node("MatMul", [activation, summers[k]], [cols], name=cols))
            new_nodes.append(helper.make_node("Concat", [activation, cols], [out], name=out, axis=-1))
            extended_inputs[activation] = out
        return extended_inputs[activation]

    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        w = numpy_helper.to_array(weight) if weight is not None else None
        if w is None or w.ndim != 2 or w.shape[0] % block_size:
            new_nodes.append(node)
            continue
        k, n = w.shape
        is_head = node.name == HEAD
        bits = head_bits if is_head else 4
        layer = _layer_of(node.name)
        if mixed and layer is not None and more_bits(layer, n_layers) and \
                any(part in node.name for part in ("/qkv_proj/", "/v_proj/", "/down_proj/")):
            bits = 8
        if eight_bit and not is_head and group_key(node.name) in eight_bit:
            bits = 8
        if bits == 8:
            fit = rtn_symmetric(w, block_size, 8)
        else:
            imp = importance.for_node(node.name) if importance is not None else None
            fit = fit_matrix(w, block_size, imp if imp is not None and imp.shape == (k,) else None)
        base = f"{node.name}_Q{bits}"
        attrs = dict(K=k, N=n, bits=bits, block_size=block_size, accuracy_level=accuracy_level)
        inputs = [node.input[0], f"{weight.name}_Q{bits}G{block_size}", f"{weight.name}_scale"]
        q, scale = fit.q, fit.scale
        if bits == 4 and np.any(fit.minimum + 8 * fit.scale):  # not symmetric: the minimum needs its offset rows
            rows = with_offset_rows(fit, block_size)
            q, scale = rows.q, rows.scale
            attrs["K"] = k + rows.extra_blocks * block_size
            inputs[0] = extended(node.input[0], k)
            inputs.append(f"{weight.name}_zero_point")
            zero = np.pad(rows.zero, ((0, 0), (0, rows.zero.shape[1] % 2)))  # two 4-bit zero points a byte
            new_inits.append(numpy_helper.from_array(_pack(zero, 4).reshape(-1), inputs[3]))
        new_inits.append(numpy_helper.from_array(_pack(q, bits), inputs[1]))
        new_inits.append(numpy_helper.from_array(scale.reshape(-1), inputs[2]))
        new_nodes.append(helper.make_node("MatMulNBits", inputs, list(node.output), name=base,
                                          domain="com.microsoft", **attrs))
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    if head_weight is not None and head_bits == 8:
        _share_embedding(model, head_weight)
    _drop_unused_initializers(model)
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = dst_dir / "model.onnx"
    onnx.save(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=1024)
    os.chmod(dst_dir / "model.onnx.data", 0o644)
    return out
