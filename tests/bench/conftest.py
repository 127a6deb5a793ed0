"""Fixtures for bench tests: a small probe file (scaled-down llama3-8b shapes) written once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_probe_spec():
    from bench.probe import PROBES, scaled

    return scaled(PROBES["llama3-8b"], name="llama3-8b-small", n_layers=2, n_embd=256, n_ff=512, n_heads=4,
                  n_kv_heads=2, head_dim=64, vocab_size=1024)


@pytest.fixture(scope="session")
def small_probe(tmp_path_factory, small_probe_spec):
    from bench.probe import write_probe

    return write_probe(small_probe_spec, "Q4_K_M", tmp_path_factory.mktemp("probe") / "small.gguf")


@pytest.fixture(scope="session")
def smollm2_bench():
    """One quick bench of the embedded model (-p 16 -n 8 -r 2, with the reference loop), shared by tests."""
    from bench.runner import BenchConfig, bench_model

    config = BenchConfig(n_prompt=16, n_gen=8, repetitions=2, threads=1, n_ctx=256, reference=True)
    return bench_model("smollm2-135m", config)
