"""The native reference: llama.cpp's own llama-bench, built from the installed libllama's source and flags."""

from __future__ import annotations

import pytest

from bench.native import native_reference
from ondevice.errors import InvalidInput
from tests.native import link_built_tools


@pytest.fixture(scope="module")
def tools(isolated_store):
    return link_built_tools(isolated_store)


def test_native_tools_are_built_with_the_installed_wheels_flags(tools):
    from importlib.metadata import version

    from quantize.native_tools import build_flags

    assert tools.version == version("llama_cpp_python")
    assert tools.cmake_args == build_flags()[0]
    assert all(tools.tool(name).stat().st_mode & 0o111 for name in ("llama-bench", "llama-quantize",
                                                                      "llama-imatrix"))


def test_llama_bench_measures_generation_on_the_same_file_and_threads(tools, smollm2_path):
    result = native_reference(smollm2_path, threads=1, n_gen=8, n_prompt=16, repetitions=1)
    assert result.tg_ts > 1 and result.pp_ts > 1
    assert result.threads == 1 and result.n_gen == 8 and result.flash_attn == "auto"
    assert str(smollm2_path) in result.command and result.build.startswith(tools.version)


def test_llama_bench_refuses_a_missing_file_before_building_anything(tmp_path):
    with pytest.raises(InvalidInput, match="needs a GGUF file"):
        native_reference(tmp_path / "none.gguf", threads=1)


def test_llama_bench_refuses_nothing_to_measure(smollm2_path):
    with pytest.raises(InvalidInput, match="n_gen or n_prompt"):
        native_reference(smollm2_path, threads=1, n_gen=0, n_prompt=0)


def test_public_and_llama_bench_are_compared_interleaved_round_by_round(tools, smollm2_path):
    from bench.native import compare_native, native_table
    from bench.runner import BenchConfig, bench_model

    config = BenchConfig(n_prompt=16, n_gen=8, repetitions=1, threads=1, n_ctx=256)
    results = bench_model(str(smollm2_path), config)
    rows = compare_native(results, repetitions=2, config=config)
    assert [r.test for r in rows] == ["pp16", "tg8"]
    for r in rows:
        assert r.rounds == 2 and len(r.public_samples) == len(r.native_samples) == 2
        per_round = sorted(a / b for a, b in zip(r.public_samples, r.native_samples))
        assert r.ratio_min == pytest.approx(per_round[0], rel=1e-3)
        assert r.ratio_max == pytest.approx(per_round[-1], rel=1e-3)
        assert r.ratio_min <= r.ratio <= r.ratio_max and r.flash_attn == "auto"
    assert "| 2 |" in native_table(rows) and "per-round range" in native_table(rows)
