"""Per-family parity: an HF model converted to f16 GGUF (llama.cpp's converter or ours) against transformers' own
logits on the same tokens, then every GGUF quant type made from that f16 and run, then the ONNX export where
onnxruntime-genai's builder takes the family.

The measure is llama-perplexity's: mean KL divergence of the GGUF's next-token distribution from transformers'
(float64 log-softmax, quantize.kld) and the share of positions where both pick the same top token. `docs/families.md`
is the table of these rows for tiny random models of every family (`python -m tests.family_table`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ondevice.errors import OnDeviceError

# Every type quantize.gguf_quantize accepts without an importance matrix, less the float ones.
QUANT_TYPES = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_1", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_S",
               "Q5_K_M", "Q6_K", "Q8_0", "IQ4_NL", "IQ4_XS")
KLD_LIMIT = 1e-4
# Positions where transformers' two best logits are closer than this are ties within f16 arithmetic: llama.cpp
# multiplies f16 weights by f16-rounded activations, and on these tiny models its logits differ from float32
# transformers' by up to 2.5e-3 (measured: max |difference| per position, smollm3 row). The same top-1 is required
# at every other position; the table shows both counts.
TIE_BAND = 1e-2


@dataclass
class FamilyParity:
    """One row of the family table."""

    family: str                     # transformers model_type
    architecture: str               # config.json architectures[0]
    converter: str                  # "llama.cpp" or "ondevice"
    n_tokens: int = 0
    kld_mean: float | None = None   # f16 GGUF vs transformers (float32)
    kld_max: float | None = None
    same_top_pct: float | None = None
    decisive_same_top_pct: float | None = None  # over positions whose top-2 margin exceeds TIE_BAND
    near_ties: int | None = None                # positions within TIE_BAND
    quants_run: list[str] = field(default_factory=list)
    quants_failed: dict[str, str] = field(default_factory=dict)
    onnx: str = "no"                # "yes" (exported, same top-1 as transformers), "no (reason)"
    onnx_same_top_pct: float | None = None
    error: str | None = None        # conversion or load failure
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (self.error is None and self.decisive_same_top_pct == 100.0 and self.kld_mean is not None
                and self.kld_mean < KLD_LIMIT and not self.quants_failed)


def transformers_logits(hf_dir: Path, tokens: list[int]) -> np.ndarray:
    """float32 logits of the HF model at every position of `tokens` (eager attention, no cache)."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32,
                                                              attn_implementation="eager")
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float().numpy()


def compare(reference: np.ndarray, got: np.ndarray) -> tuple[float, float, float, float, int]:
    """(mean KLD, max KLD, same top-1 %, same top-1 % where the reference's top-2 margin exceeds TIE_BAND, number of
    near-tie positions) of `got` against `reference` ([positions, vocab] logits)."""
    from quantize.kld import log_softmax

    ref_lp, got_lp = log_softmax(reference), log_softmax(got)
    kld = (np.exp(ref_lp) * (ref_lp - got_lp)).sum(-1)
    agree = reference.argmax(-1) == got.argmax(-1)
    top2 = np.sort(reference, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > TIE_BAND
    decisive_same = float(agree[decisive].mean() * 100) if decisive.any() else 100.0
    return float(kld.mean()), float(kld.max()), float(agree.mean() * 100), decisive_same, int((~decisive).sum())


def gguf_logits(path: Path, tokens: list[int]) -> np.ndarray:
    import ondevice

    with ondevice.load(path, n_ctx=max(64, len(tokens) + 8), threads=2) as model:
        return np.asarray(model.logits(tokens), dtype=np.float32)


def run_quants(f16: Path, tokens: list[int], out_dir: Path, types=QUANT_TYPES) -> tuple[list[str], dict[str, str]]:
    """Quantise `f16` to each type, load it and score `tokens` (finite logits); (types run, {type: failure})."""
    from quantize.gguf_quantize import quantize_gguf

    ran, failed = [], {}
    for qtype in types:
        path = out_dir / f"{f16.stem}-{qtype}.gguf"
        try:
            quantize_gguf(f16, path, qtype, threads=2, progress=False)
            logits = gguf_logits(path, tokens)
            if not np.isfinite(logits).all():
                raise OnDeviceError("non-finite logits")
            ran.append(qtype)
        except Exception as exc:  # a row of the table: keep going, say what failed
            failed[qtype] = str(exc).splitlines()[0][:200]
        finally:
            path.unlink(missing_ok=True)
    return ran, failed


def onnx_parity(hf_dir: Path, tokens: list[int], reference: np.ndarray, out_dir: Path) -> tuple[str, float | None]:
    """Export fp32 ONNX with onnxruntime-genai's builder where it takes the architecture; ("yes"/"no (why)", same-top
    % against transformers)."""
    from quantize.onnx_export import check_onnx_supported, export_onnx_llm

    try:
        check_onnx_supported(hf_dir)
    except OnDeviceError:
        return "no (builder lacks the architecture)", None
    try:
        folder = export_onnx_llm(hf_dir, out_dir / f"{hf_dir.name}-onnx", quant="fp32").path
        import onnxruntime_genai as og

        model = og.Model(str(folder))
        params = og.GeneratorParams(model)
        generator = og.Generator(model, params)
        generator.append_tokens(tokens)
        last = np.asarray(generator.get_logits()).reshape(-1)
        same = float(last.argmax() == reference[-1].argmax()) * 100
        return ("yes" if same == 100.0 else "yes (last-token top-1 differs)"), same
    except Exception as exc:  # the builder's own last line says why
        return f"no ({_last_reason(str(exc))})", None


def _last_reason(text: str) -> str:
    """The last ' | '-separated part of a builder failure (its exception line), or the first line, shortened."""
    line = text.strip().splitlines()[0] if text.strip() else "failed"
    if "builder failed:" in line:
        line = "builder: " + line.rsplit(" | ", 1)[-1].strip()
    return line[:140]


def family_parity(family: str, hf_dir: Path, f16: Path, tokens: list[int], out_dir: Path, converter: str,
                  quants=QUANT_TYPES, onnx: bool = True) -> FamilyParity:
    """The table row for one family: `f16` (already converted from `hf_dir`) against transformers, quants, ONNX."""
    start = time.perf_counter()
    config = json.loads((hf_dir / "config.json").read_text())
    row = FamilyParity(family, (config.get("architectures") or ["?"])[0], converter, n_tokens=len(tokens))
    reference = transformers_logits(hf_dir, tokens)
    try:
        got = gguf_logits(f16, tokens)
    except Exception as exc:
        row.error = f"load: {str(exc).splitlines()[0][:200]}"
        return row
    row.kld_mean, row.kld_max, row.same_top_pct, row.decisive_same_top_pct, row.near_ties = compare(reference, got)
    row.quants_run, row.quants_failed = run_quants(f16, tokens, out_dir, quants)
    if onnx:
        row.onnx, row.onnx_same_top_pct = onnx_parity(hf_dir, tokens, reference, out_dir)
    row.seconds = time.perf_counter() - start
    return row


def table(rows: list[FamilyParity]) -> str:
    """Markdown: family, converter, f16 KLD, same-top %, quant types run, ONNX."""
    lines = ["| family | HF architecture | converter | f16 mean KLD vs transformers | same top-1 % (all positions; "
             "beyond near-ties) | quant types run | ONNX (fp32, builder) |", "|---|---|---|---:|---:|---|---|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.family} | {r.architecture} | {r.converter} | fails: {r.error} | | | {r.onnx} |")
            continue
        quants = f"{len(r.quants_run)}/{len(r.quants_run) + len(r.quants_failed)}"
        if r.quants_failed:
            quants += " (failed: " + ", ".join(f"{k}: {v}" for k, v in r.quants_failed.items()) + ")"
        same = f"{r.same_top_pct:.0f}"
        if r.decisive_same_top_pct is not None and r.same_top_pct != 100.0:
            same += f"; {r.decisive_same_top_pct:.0f} beyond {r.near_ties} near-tie(s)"
        onnx = f"no ({_last_reason(r.onnx[4:-1])})" if r.onnx.startswith("no (") and "builder failed" in r.onnx \
            else r.onnx
        lines.append(f"| {r.family} | {r.architecture} | {r.converter} | {r.kld_mean:.2e} | {same} "
                     f"| {quants} | {onnx} |")
    return "\n".join(lines)
