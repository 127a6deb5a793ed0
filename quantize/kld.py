"""Perplexity and KL-divergence statistics of a model against a reference, as `llama-perplexity --kl-divergence`.

The formulas follow llama.cpp's tools/perplexity/perplexity.cpp (`kl_divergence`, `log_softmax`,
`mean_and_uncertainty`, `covariance`, `percentile`) so the numbers are comparable with what llama.cpp users know.
One difference: llama.cpp stores the reference's log-probabilities as 16-bit integers in its logits file; here they
stay in float, which moves the results by far less than the 2% they are checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

ROWS_PER_STEP = 64        # rows of [vocab] logits converted to float64 at a time (bounds memory)
KLD_LOG_PROB_FLOOR = -16  # llama.cpp ignores reference tokens with log p <= -16 in the KLD sum


@dataclass
class QualityResult:
    """What llama-perplexity --kl-divergence prints, for one model against one reference."""

    model: str
    ref: str
    window: int              # tokens per evaluation window
    n_chunks: int
    n_tokens: int            # scored tokens (second half of every window)
    ppl: float
    ppl_err: float
    ppl_base: float
    ppl_base_err: float
    ln_ppl_ratio: float      # mean ln(PPL(Q)/PPL(base))
    ln_ppl_ratio_err: float
    ppl_ratio: float
    delta_ppl: float         # PPL(Q) - PPL(base)
    delta_ppl_err: float
    ppl_correlation: float   # Cor(ln PPL(Q), ln PPL(base))
    kld_mean: float
    kld_err: float
    kld_median: float
    kld_p99: float
    kld_p999: float
    kld_max: float
    same_top_pct: float
    same_top_err: float
    rms_dp_pct: float
    rms_dp_err: float
    seconds: float = 0.0

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return x


@dataclass
class KLDAccumulator:
    """Running sums over scored tokens (llama.cpp's `kl_divergence_result`) plus the per-token values."""

    sum_nll: float = 0.0
    sum_nll2: float = 0.0
    sum_nll_base: float = 0.0
    sum_nll_base2: float = 0.0
    sum_nll_nll_base: float = 0.0
    sum_kld: float = 0.0
    sum_kld2: float = 0.0
    sum_p_diff: float = 0.0
    sum_p_diff2: float = 0.0
    sum_p_diff4: float = 0.0
    n_same_top: int = 0
    count: int = 0
    n_chunks: int = 0
    kld_values: list[np.ndarray] = field(default_factory=list)
    p_diff_values: list[np.ndarray] = field(default_factory=list)

    def add(self, logits: np.ndarray, base_logits: np.ndarray, targets: np.ndarray) -> None:
        """Score one window: logits[i] and base_logits[i] both predict targets[i]."""
        if logits.shape != base_logits.shape:
            raise ValueError(f"logits shapes differ: {logits.shape} vs {base_logits.shape} (same vocabulary?)")
        targets = np.asarray(targets, dtype=np.int64)
        for start in range(0, len(targets), ROWS_PER_STEP):
            rows = slice(start, start + ROWS_PER_STEP)
            self._add_rows(logits[rows], base_logits[rows], targets[rows])
        self.n_chunks += 1

    def _add_rows(self, logits: np.ndarray, base_logits: np.ndarray, targets: np.ndarray) -> None:
        lq, lb = log_softmax(logits), log_softmax(base_logits)
        idx = np.arange(len(targets))
        nll, nll_base = -lq[idx, targets], -lb[idx, targets]
        p_base = np.where(lb > KLD_LOG_PROB_FLOOR, np.exp(lb), 0.0)
        kld = (p_base * (lb - lq)).sum(axis=-1)
        p_diff = np.exp(-nll) - np.exp(-nll_base)
        self.sum_nll += nll.sum()
        self.sum_nll2 += (nll * nll).sum()
        self.sum_nll_base += nll_base.sum()
        self.sum_nll_base2 += (nll_base * nll_base).sum()
        self.sum_nll_nll_base += (nll * nll_base).sum()
        self.sum_kld += kld.sum()
        self.sum_kld2 += (kld * kld).sum()
        self.sum_p_diff += p_diff.sum()
        self.sum_p_diff2 += (p_diff ** 2).sum()
        self.sum_p_diff4 += (p_diff ** 4).sum()
        self.n_same_top += int((logits.argmax(axis=-1) == base_logits.argmax(axis=-1)).sum())
        self.count += len(targets)
        self.kld_values.append(kld.astype(np.float32))
        self.p_diff_values.append(p_diff.astype(np.float32))

    def result(self, model: str, ref: str, window: int, seconds: float = 0.0) -> QualityResult:
        """The final statistics, computed as llama.cpp's kl_divergence() prints them."""
        n = self.count
        for name in ("sum_nll", "sum_nll2", "sum_nll_base", "sum_nll_base2", "sum_nll_nll_base", "sum_kld",
                     "sum_kld2", "sum_p_diff", "sum_p_diff2", "sum_p_diff4"):  # numpy scalars -> float for JSON
            setattr(self, name, float(getattr(self, name)))
        log_ppl, log_ppl_err = mean_and_uncertainty(self.sum_nll, self.sum_nll2, n)
        log_base, log_base_err = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, n)
        cov = covariance(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, n)
        ppl, ppl_base = math.exp(log_ppl), math.exp(log_base)
        ppl_err, ppl_base_err = ppl * log_ppl_err, ppl_base * log_base_err
        ratio = log_ppl - log_base
        ratio_err = math.sqrt(max(log_ppl_err ** 2 + log_base_err ** 2 - 2 * cov, 0.0))
        diff_err = math.sqrt(max(ppl_err ** 2 + ppl_base_err ** 2 - 2 * ppl * ppl_base * cov, 0.0))
        denom = log_ppl_err * log_base_err
        kld_mean, kld_err = mean_and_uncertainty(self.sum_kld, self.sum_kld2, n)
        klds = np.sort(np.concatenate(self.kld_values)) if self.kld_values else np.zeros(1, np.float32)
        mse, mse_err = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, n)
        rms = math.sqrt(mse)
        same = self.n_same_top / n if n else 0.0
        return QualityResult(
            model=model, ref=ref, window=window, n_chunks=self.n_chunks, n_tokens=n,
            ppl=ppl, ppl_err=ppl_err, ppl_base=ppl_base, ppl_base_err=ppl_base_err,
            ln_ppl_ratio=ratio, ln_ppl_ratio_err=ratio_err, ppl_ratio=math.exp(ratio),
            delta_ppl=ppl - ppl_base, delta_ppl_err=diff_err,
            ppl_correlation=cov / denom if denom > 0 else 1.0,
            kld_mean=kld_mean, kld_err=kld_err, kld_median=float(np.median(klds)),
            kld_p99=percentile(klds, 0.99), kld_p999=percentile(klds, 0.999), kld_max=float(klds[-1]),
            same_top_pct=100.0 * same, same_top_err=100.0 * math.sqrt(same * (1 - same) / (n - 1)) if n > 1 else 0.0,
            rms_dp_pct=100.0 * rms, rms_dp_err=100.0 * 0.5 / rms * mse_err if rms > 0 else 0.0,
            seconds=seconds,
        )


def mean_and_uncertainty(total: float, total2: float, count: int) -> tuple[float, float]:
    """Mean and its standard error (llama.cpp reports 0 uncertainty for 10 values or fewer)."""
    if count < 1:
        return 0.0, 0.0
    mean = total / count
    var = total2 / count - mean * mean
    return mean, math.sqrt(var / (count - 1)) if var > 0 and count > 10 else 0.0


def covariance(sum_a: float, sum_b: float, sum_ab: float, count: int) -> float:
    """Covariance of the two means (llama.cpp's `covariance`, 0 under 10 values)."""
    if count < 10:
        return 0.0
    return (sum_ab / count - (sum_a / count) * (sum_b / count)) / (count - 1)


def percentile(sorted_values: np.ndarray, fraction: float) -> float:
    """Linear-interpolated percentile of sorted values (llama.cpp's `percentile`)."""
    if fraction <= 0:
        return float(sorted_values[0])
    if fraction >= 1:
        return float(sorted_values[-1])
    p = fraction * (len(sorted_values) - 1)
    i = int(p)
    p -= i
    return float((1 - p) * sorted_values[i] + p * sorted_values[min(i + 1, len(sorted_values) - 1)])
