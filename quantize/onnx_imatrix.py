"""Per-input-channel importance of every linear layer from a calibration text, for `onnx:int4-wls-imx`.

This is llama.cpp's importance matrix (`llama-imatrix`, quantize/imatrix.py for GGUF) made for the ONNX path: for
each weight matrix, the mean squared activation of each of its input channels over a calibration text. The
least-squares block fit (`quantize.onnx_wls.fit_matrix`) then weights each value's rounding error by how large the
activations it multiplies are, as llama.cpp's Q4_K does with an imatrix, so the error lands where it matters least.

Why torch forward hooks on the Hugging Face model, not llama-imatrix: the ONNX export starts from the HF folder
(the builder reads it), so the activations are taken from the same weights in the same process, with no native tool
to build. The mean of x² only needs each linear layer's input, which a forward hook sees.

Calibration text: the built-in one of `quantize.imatrix` (the standard library's module docstrings), which is not the
pydoc text `quantize.evaluate` scores on, so quality is measured on held-out text; or the user's own file/folder.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ONNX builder names of fused MatMuls -> the Hugging Face projection whose input they read (q, k and v read the same
# input, as do gate and up, so one importance vector serves the fused matrix).
_FUSED = {"qkv": "q", "gate_up": "gate"}


@dataclass
class ActivationImportance:
    """Mean squared input activation per channel of each linear layer, keyed by `matmul_key`."""

    values: dict[tuple[int | None, str], np.ndarray]
    text: str          # what it was calibrated on
    n_tokens: int
    seconds: float

    def for_node(self, name: str) -> np.ndarray | None:
        """The importance vector ([K]) for an ONNX MatMul node name (or an HF module name); None if unknown."""
        key = matmul_key(name)
        return None if key is None else self.values.get(key)


_CACHE: dict[tuple, ActivationImportance] = {}


def matmul_key(name: str) -> tuple[int | None, str] | None:
    """"/model/layers.3/attn/qkv_proj/MatMul" and "model.layers.3.self_attn.q_proj" -> (3, "q"); "/lm_head/MatMul"
    and "lm_head" -> (None, "lm_head"); None for names that are neither."""
    parts = re.split(r"[./]", name)
    layer = next((int(parts[i + 1]) for i, p in enumerate(parts[:-1]) if p == "layers" and parts[i + 1].isdigit()),
                 None)
    if "lm_head" in parts:
        return None, "lm_head"
    proj = next((p[: -len("_proj")] for p in parts if p.endswith("_proj")), None)
    if proj is None:
        return None
    return layer, _FUSED.get(proj, proj)


def load_calibration(hf_dir: str | Path, calibration: str | Path | None, ctx: int, chunks: int,
                     threads: int | None = None):
    """(the HF model in fp32, eval mode; up to `chunks` windows of `ctx` calibration tokens [n, ctx]; the text's
    description). None: the built-in calibration text of `quantize.imatrix`."""
    import torch
    import transformers

    from quantize.distill.data import token_chunks
    from quantize.imatrix import calibration_text

    body, described = calibration_text(calibration)
    if threads:
        torch.set_num_threads(threads)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    model.eval()
    return model, token_chunks(tokenizer, [body], ctx, max_tokens=ctx * chunks), described


def gather_importance(hf_dir: str | Path, calibration: str | Path | None = None, ctx: int = 512, chunks: int = 32,
                      threads: int | None = None) -> ActivationImportance:
    """Run the HF model over up to `chunks` windows of `ctx` tokens of the calibration text (None: built-in) and
    return every linear layer's mean squared input per channel. Cached per process (several variants, one pass)."""
    key = (str(Path(hf_dir).resolve()), str(calibration), ctx, chunks)
    if key in _CACHE:
        return _CACHE[key]
    import torch

    t0 = time.perf_counter()
    model, windows, described = load_calibration(hf_dir, calibration, ctx, chunks, threads)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1])
            sums[name] = sums.get(name, 0) + (x * x).sum(0)
            counts[name] = counts.get(name, 0) + x.shape[0]
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and matmul_key(n) is not None]
    try:
        with torch.inference_mode():
            for window in windows:
                model(window[None])
    finally:
        for handle in handles:
            handle.remove()
    values = {matmul_key(n): (sums[n] / counts[n]).numpy().astype(np.float32) for n in sums}
    result = ActivationImportance(values, described, int(windows.numel()), time.perf_counter() - t0)
    _CACHE[key] = result
    return result
