"""SamplingParams checks its values once, for every entry point (API, CLI, server); the NumPy sampler (ONNX) draws
from the same distribution as the chain spelled out with a full sort. No model needed."""

from __future__ import annotations

import numpy as np
import pytest

from ondevice import InvalidInput, SamplingParams
from ondevice.decoding.sampling import LogitsSampler


@pytest.mark.parametrize("field, value", [
    ("max_tokens", 0), ("max_tokens", 2.5), ("max_tokens", True), ("temperature", -0.1),
    ("temperature", float("nan")), ("temperature", "hot"), ("top_p", -0.1), ("top_p", 1.01), ("top_k", -1),
    ("seed", 1.5), ("stop", 5), ("stop", ["ok", 3]), ("ignore_eos", "yes"),
])
def test_bad_values_raise_invalid_input_naming_the_field(field, value):
    with pytest.raises(InvalidInput, match=field) as err:
        SamplingParams(**{field: value})
    assert err.value.param == field


def test_values_are_normalised():
    params = SamplingParams(max_tokens=4, temperature=1, top_p=1, stop="END", seed=7)
    assert params.stop == ["END"] and isinstance(params.temperature, float) and not params.greedy
    assert SamplingParams(stop=None).stop == [] and SamplingParams().greedy


def _reference_distribution(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """The chain spelled out with a full sort: top-k, then the smallest set reaching top_p, then temperature."""
    order = np.argsort(-logits, kind="stable")
    if top_k:
        order = order[:top_k]
    probs = np.exp(logits[order] - logits[order].max())
    probs /= probs.sum()
    cut = int(np.searchsorted(np.cumsum(probs), top_p)) + 1 if top_p < 1 else order.size
    kept = order[:cut]
    scaled = np.exp((logits[kept] - logits[kept].max()) / temperature)
    out = np.zeros(logits.size)
    out[kept] = scaled / scaled.sum()
    return out


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.8, 0, 1.0), (0.7, 0, 0.9), (1.3, 40, 0.95),
                                                       (1.0, 0, 0.999)])
def test_logits_sampler_draws_from_the_chains_distribution(temperature, top_k, top_p):
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.5, 3000)  # flat enough that top_p 0.999 needs far more than the first 64 tokens
    sampler = LogitsSampler(SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=11),
                            lambda: logits)
    draws = np.bincount([sampler.sample() for _ in range(20000)], minlength=logits.size) / 20000
    expected = _reference_distribution(logits, temperature, top_k, top_p)
    assert np.all(draws[expected == 0] == 0)  # nothing outside the kept set, ever
    # Total variation over the 20 likeliest tokens and the rest together (sampling noise there is about 0.01).
    top = np.argsort(-expected)[:20]
    binned = lambda dist: np.append(dist[top], 1 - dist[top].sum())  # noqa: E731
    assert 0.5 * np.abs(binned(draws) - binned(expected)).sum() < 0.03


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99, 0.9999])
def test_nucleus_keeps_the_same_set_as_a_full_sort(top_p):
    rng = np.random.default_rng(int(top_p * 1e4))
    logits = rng.normal(0, 1.0, 49152)
    ids, kept = LogitsSampler._nucleus(np.arange(logits.size), logits, top_p)
    order = np.argsort(-logits, kind="stable")
    probs = np.exp(logits[order] - logits.max())
    probs /= probs.sum()
    cut = int(np.searchsorted(np.cumsum(probs), top_p)) + 1
    assert ids.tolist() == order[:cut].tolist() and np.array_equal(kept, logits[order[:cut]])


def test_logits_sampler_is_reproducible_with_a_seed():
    logits = np.random.default_rng(0).normal(0, 2, 500)

    def draws(seed):
        sampler = LogitsSampler(SamplingParams(temperature=0.9, top_p=0.95, seed=seed), lambda: logits)
        return [sampler.sample() for _ in range(50)]

    assert draws(5) == draws(5) and draws(5) != draws(6)
