"""Which MatMuls to keep at 8 bits, by measurement: `onnx:int4-wls-sN` (N% of the layers' weights at 8 bits).

Why: MatMulNBits has 4 and 8 bits and nothing between, so an ONNX model closes the gap to llama.cpp's Q4_K_M (which
on SmolLM2's 576-wide rows is mostly Q5_0, docs/quantize-quality.md) only by writing a share of its weights in 8 bits.
`wls_mixed` copies Q4_K_M's rule (attn_v / ffn_down of some layers). Here the choice is measured instead: each
MatMul group that the ONNX graph holds as one MatMul (q, k and v are one fused MatMul; o, gate, up, down) is
quantised alone to the 4-bit fit it would get, the model is run over a few windows of the calibration text, and
its mean KL divergence from the unquantised model is that group's sensitivity. The groups with the most KLD per
weight go to 8 bits until the share is reached.

Cost: one fit of every matrix plus one forward pass per group (7·layers of them; SmolLM2: 150 passes of 512 tokens,
minutes on two cores). The calibration text is the built-in one of `quantize.imatrix`, not the evaluation text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quantize.onnx_imatrix import load_calibration, matmul_key

if TYPE_CHECKING:
    from quantize.onnx_imatrix import ActivationImportance

Key = tuple[int | None, str]


@dataclass
class Sensitivity:
    """Mean KLD (nats/token) on the calibration windows with only one MatMul group 4-bit, and each group's size."""

    kld: dict[Key, float]
    n_weights: dict[Key, int]
    n_tokens: int
    seconds: float

    def most_sensitive(self, share: float) -> set[Key]:
        """The groups with the most KLD per weight, until they hold `share` (0..1) of all the groups' weights."""
        total, used, chosen = sum(self.n_weights.values()), 0, set()
        for key in sorted(self.kld, key=lambda k: self.kld[k] / self.n_weights[k], reverse=True):
            if used >= share * total:
                break
            chosen.add(key)
            used += self.n_weights[key]
        return chosen


_CACHE: dict[tuple, Sensitivity] = {}


def group_key(name: str) -> Key | None:
    """The group an ONNX MatMul node or HF module belongs to: `matmul_key`, with k and v in q's group (the ONNX
    builder fuses the three into one MatMul, so they go to 8 bits together)."""
    key = matmul_key(name)
    if key is None or key[0] is None:
        return None
    return (key[0], "q") if key[1] in ("k", "v") else key


def measure_sensitivity(hf_dir: str | Path, block_size: int = 32, importance: ActivationImportance | None = None,
                        calibration: str | Path | None = None, ctx: int = 256, chunks: int = 2,
                        threads: int | None = None) -> Sensitivity:
    """Measure every layer MatMul group's sensitivity to its 4-bit least-squares fit (with `importance` when given,
    as the export will fit it). Cached per process."""
    key = (str(Path(hf_dir).resolve()), block_size, id(importance), str(calibration), ctx, chunks)
    if key in _CACHE:
        return _CACHE[key]
    import torch

    from quantize.onnx_wls import fit_matrix

    t0 = time.perf_counter()
    model, windows, _ = load_calibration(hf_dir, calibration, ctx, chunks, threads)
    groups: dict[Key, list[torch.nn.Linear]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and group_key(name) is not None:
            groups.setdefault(group_key(name), []).append(module)

    def log_probs():
        with torch.inference_mode():
            return torch.log_softmax(model(windows).logits.float(), dim=-1)

    reference = log_probs()
    p_ref = reference.exp()
    kld, sizes = {}, {}
    for group, modules in groups.items():
        originals = [m.weight.data for m in modules]
        for m in modules:
            w = m.weight.data.T.numpy()  # MatMul layout [K, N]: blocks along the input
            imp = importance.for_node(_name_of(model, m)) if importance is not None else None
            m.weight.data = torch.from_numpy(fit_matrix(w, block_size, imp).dequantize().T.copy())
        kld[group] = float((p_ref * (reference - log_probs())).sum(-1).mean())
        sizes[group] = sum(o.numel() for o in originals)
        for m, original in zip(modules, originals):
            m.weight.data = original
    result = Sensitivity(kld, sizes, int(windows.numel()), time.perf_counter() - t0)
    _CACHE[key] = result
    return result


def _name_of(model, module) -> str:
    return next(n for n, m in model.named_modules() if m is module)
