"""PPL/KLD statistics: internally consistent, ordered the way quantisation levels must be, and equal to a literal
numpy transcription of llama-perplexity's kl_divergence() (including its 16-bit storage of reference log-probs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantize.kld import KLDAccumulator


def _by_type(report):
    return {v.qtype: v for v in report.variants}


def test_q8_0_has_lower_kld_than_q4_k_m(smollm2_report):
    v = _by_type(smollm2_report)
    assert v["Q8_0"].kld_mean < v["Q4_K_M"].kld_mean
    assert v["Q8_0"].same_top_pct > v["Q4_K_M"].same_top_pct


def test_reference_against_itself_is_exact(smollm2_report):
    ref = smollm2_report.reference.quality
    assert ref["kld_mean"] == pytest.approx(0.0, abs=1e-9)
    assert ref["kld_max"] == pytest.approx(0.0, abs=1e-6)
    assert ref["same_top_pct"] == 100.0
    assert ref["ppl"] == pytest.approx(ref["ppl_base"], rel=1e-12)
    assert ref["ln_ppl_ratio"] == pytest.approx(0.0, abs=1e-12)


def test_ppl_base_is_the_references_own_ppl(smollm2_report):
    ref_ppl = smollm2_report.reference.quality["ppl"]
    for variant in smollm2_report.variants:
        q = variant.quality
        assert q["ppl_base"] == pytest.approx(ref_ppl, rel=1e-9)
        assert math.log(q["ppl"] / q["ppl_base"]) == pytest.approx(q["ln_ppl_ratio"], rel=1e-9)
        assert q["n_tokens"] == smollm2_report.eval_chunks * (smollm2_report.window // 2 - 1)
        assert q["kld_median"] <= q["kld_p99"] <= q["kld_p999"] <= q["kld_max"]


def _llama_perplexity_kld(logits_q, logits_base, targets):
    """tools/perplexity/perplexity.cpp, transcribed: uint16 log-probs of the base, then kl_divergence()'s sums."""
    n, n_vocab = logits_base.shape
    sums = dict(nll=0.0, nll2=0.0, base=0.0, base2=0.0, kld=0.0, kld2=0.0, same=0, dp2=0.0)
    klds = []
    for i in range(n):
        lb = logits_base[i].astype(np.float32)
        max_l, min_l = lb.max(), max(lb.min(), lb.max() - 16)
        lse = np.float32(np.log(np.exp(lb - max_l, dtype=np.float32).sum(dtype=np.float64)))
        min_log_prob = min_l - max_l - lse
        scale = (max_l - min_l) / 65535.0
        q16 = np.where(lb > min_l, np.floor((lb - min_l) / scale + 0.5), 0).astype(np.uint16)
        p_log_base = scale * q16.astype(np.float32) + min_log_prob
        lq = logits_q[i].astype(np.float32)
        mq = lq.max()
        lse_q = np.float32(np.log(np.exp(lq - mq, dtype=np.float32).sum(dtype=np.float64)))
        nll = mq + lse_q - lq[targets[i]]
        nll_base = -p_log_base[targets[i]]
        keep = p_log_base > -16
        kld = float((np.exp(p_log_base[keep]) * (p_log_base[keep] - lq[keep] + mq + lse_q)).sum(dtype=np.float64))
        sums["nll"] += nll; sums["nll2"] += nll * nll; sums["base"] += nll_base; sums["base2"] += nll_base ** 2
        sums["kld"] += kld; sums["kld2"] += kld * kld
        sums["same"] += int(lq.argmax() == p_log_base.argmax())
        sums["dp2"] += float(np.exp(-nll) - np.exp(-nll_base)) ** 2
        klds.append(kld)
    return dict(ppl=math.exp(sums["nll"] / n), ppl_base=math.exp(sums["base"] / n), kld_mean=sums["kld"] / n,
                kld_median=float(np.median(klds)), same_top_pct=100.0 * sums["same"] / n,
                rms_dp_pct=100.0 * math.sqrt(sums["dp2"] / n))


def test_statistics_match_llama_perplexity_formulas():
    rng = np.random.default_rng(0)
    n, vocab = 200, 3000
    base = rng.normal(0, 2, size=(n, vocab)).astype(np.float32)  # spread < 16: no clamping in the uint16 store
    quant = base + rng.normal(0, 0.3, size=(n, vocab)).astype(np.float32)
    targets = np.where(rng.random(n) < 0.5, base.argmax(-1), rng.integers(0, vocab, n))
    acc = KLDAccumulator()
    acc.add(quant, base, targets)
    ours = acc.result("q", "base", window=2 * n)
    theirs = _llama_perplexity_kld(quant, base, targets)
    for key, value in theirs.items():
        assert getattr(ours, key) == pytest.approx(value, rel=0.02), key
