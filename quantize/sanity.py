"""Is a freshly written variant usable on this machine? A short next-token comparison against the reference.

A quantised model can be broken on the CPU that made it while its file looks fine: the former `onnx:int8`
(onnxruntime's dynamic u8s8 quantisation) answered gibberish on AVX2-only CPUs (mean KLD 12.8 against the f16
reference, 0% same top token) and was still written, reported and recommended. Every variant is now scored on one
short window of held-out text right after it is written; one that fails is marked broken (and renamed so), kept
out of the recommendation, and says why. The bounds are far outside what real quantisation does to a model: on
SmolLM2-135M the lossiest GGUF type we make, Q2_K, measured mean KLD 0.40 and 69% same top token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SANITY_TOKENS = 128     # one short window: a second or two per variant
MAX_KLD = 2.0           # mean KL divergence (nats) above which a variant is broken
MIN_SAME_TOP_PCT = 25.0  # % of positions where its top token equals the reference's, below which it is broken


@dataclass
class SanityCheck:
    """The verdict on one variant: ok, or broken with the reason."""

    ok: bool
    kld_mean: float
    same_top_pct: float
    n_tokens: int
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def sanity_tokens(reference, n_tokens: int = SANITY_TOKENS) -> list[int]:
    """The window every variant is checked on: the start of the evaluation text, tokenised by the reference."""
    from quantize.evaluate import default_text

    return reference.tokenize(default_text()[: n_tokens * 8], add_special=True)[:n_tokens]


def judge(logits: np.ndarray, ref_logits: np.ndarray, tokens: list[int]) -> SanityCheck:
    """Compare a variant's logits with the reference's on `tokens` (NaN or infinite logits count as broken)."""
    from quantize.kld import KLDAccumulator

    n = len(tokens) - 1
    if logits.shape != ref_logits.shape:
        return SanityCheck(False, math.inf, 0.0, n, f"its logits have shape {logits.shape}, the reference's "
                                                    f"{ref_logits.shape}")
    if not np.isfinite(logits).all():
        return SanityCheck(False, math.inf, 0.0, n, "it produces NaN or infinite logits")
    acc = KLDAccumulator()
    acc.add(logits[:n], ref_logits[:n], tokens[1:])
    r = acc.result("variant", "reference", len(tokens))
    problems = []
    if not r.kld_mean <= MAX_KLD:
        problems.append(f"mean KLD {r.kld_mean:.2f} > {MAX_KLD}")
    if r.same_top_pct < MIN_SAME_TOP_PCT:
        problems.append(f"same top token {r.same_top_pct:.0f}% < {MIN_SAME_TOP_PCT:.0f}%")
    reason = ("its next-token predictions do not match the reference's on this machine (" + ", ".join(problems)
              + f" over {n} tokens)") if problems else ""
    return SanityCheck(not problems, float(r.kld_mean), float(r.same_top_pct), n, reason)


def check_model(path: str | Path, reference, tokens: list[int] | None = None, ref_logits: np.ndarray | None = None,
                threads: int | None = None) -> SanityCheck:
    """Load the variant at `path` and judge it against `reference` (a loaded `ondevice.Model`).

    Pass `tokens` and `ref_logits` to check several variants against one reference computation.
    A variant that cannot even be loaded or run is broken too (the reason says what failed).
    """
    import ondevice
    from ondevice.errors import OnDeviceError

    tokens = tokens if tokens is not None else sanity_tokens(reference)
    ref_logits = ref_logits if ref_logits is not None else reference.logits(tokens)
    try:
        with ondevice.load(path, n_ctx=max(256, len(tokens) + 16), threads=threads) as model:
            logits = model.logits(tokens)
    except OnDeviceError as exc:
        return SanityCheck(False, math.inf, 0.0, len(tokens) - 1, f"it does not run: {exc}")
    return judge(np.asarray(logits, dtype=np.float32), np.asarray(ref_logits, dtype=np.float32), tokens)
