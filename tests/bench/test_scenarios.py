"""Scenario benchmarks: shipped prompts, plain vs lookup decoding side by side, and the 8B projection's arithmetic."""

from __future__ import annotations

import json

import pytest

from bench.scenarios import (SCENARIOS, ModeRun, ScenarioResult, VerifyCost, copy_bound, load_scenario, oracle_speedup,
                             project, run_scenarios)
from ondevice.errors import InvalidInput


def test_every_scenario_ships_a_real_prompt():
    for name in SCENARIOS:
        s = load_scenario(name)
        assert s.name == name and len(s.user) > 60
    assert "sunflower-meadow-42" in load_scenario("rag").user  # the RAG example's own notes
    with pytest.raises(InvalidInput, match="unknown scenario"):
        load_scenario("poetry")


def test_rag_scenario_runs_both_modes_with_identical_greedy_output(smollm2):
    # "lookup" mode always drafts; "auto" drafts only where this machine's measured batch costs say it pays (on a
    # 2-core CI machine it may rightly draft nothing), so the drafting path is asserted in "lookup" mode.
    report = run_scenarios(smollm2, ["rag"], max_tokens=24, repetitions=2, lookup_mode="lookup")
    (result,) = report.results
    assert result.identical
    assert len(result.round_speedups) == 2 and len(result.plain.samples_tok_s) == 2  # interleaved rounds
    assert result.plain.drafted_tokens == 0 and result.lookup.drafted_tokens > 0
    assert result.plain.decode_tok_s > 0 and result.lookup.decode_tok_s > 0
    assert "| rag |" in report.markdown()
    assert json.dumps(report.to_dict())
    assert result.copy_bound >= 1.0


def test_copy_bound_counts_the_passes_an_output_needs_when_verifying_is_free():
    # Two passes find no earlier match (9 is new; then "9" has no follower yet); the third drafts [2, 3, 4] after
    # the prompt's "1", keeps all three and adds the model's own 5: six tokens in three passes.
    assert copy_bound([1, 2, 3, 4, 5], [9, 1, 2, 3, 4, 5], max_draft=3) == 2.0
    assert copy_bound([1, 2, 3], [7, 8, 9, 10]) == 1.0      # nothing to copy: one pass per token
    assert copy_bound([1, 2, 3], [1, 2, 4, 4]) == 4 / 3     # "1" drafts [2, 3, 1]: 2 kept, then the model's 4
    assert copy_bound([5], []) == 1.0


def test_the_oracle_drafts_only_where_a_batch_pays_for_itself():
    prompt, output = [1, 2, 3, 4, 5], [9, 1, 2, 3, 4, 5]   # two plain steps, then [2, 3, 4, 5] can be copied
    free = [1.0] * 8
    assert oracle_speedup(prompt, output, free) == 6 / 3      # verifying is free: as copy_bound
    linear = [float(k) for k in range(1, 9)]                  # a batch of k costs k steps: drafting never pays
    assert oracle_speedup(prompt, output, linear) == 1.0
    half = [1.0] + [0.5 * k for k in range(2, 9)]             # two plain steps, then one batch of 4 (cost 2)
    assert oracle_speedup(prompt, output, half) == pytest.approx(6 / (1 + 1 + 0.5 * 4))
    with pytest.raises(InvalidInput):
        oracle_speedup(prompt, output, [])


def test_projection_counts_decode_steps_and_verify_cost():
    run = ModeRun("auto", completion_tokens=100, decode_tok_s=1, ttft_ms=1, drafted_tokens=80, accepted_tokens=60)
    result = ScenarioResult("rag", run, run, True, "")
    cost = VerifyCost("probe", [1, 2], [0.2, 0.21], [1.0, 1.05], slope=0.05, plain_tok_s=5.0)
    row = project(result, cost)
    assert row["predicted_speedup"] == pytest.approx(100 / (40 + 0.05 * 80), rel=1e-3)
    assert row["predicted_tok_s"] == pytest.approx(5.0 * 100 / 44, rel=1e-3) and row["label"] == "prediction"


def test_bench_cli_scenario_prints_the_side_by_side_table():
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    result = CliRunner().invoke(cli, ["bench", "smollm2-135m", "--scenario", "rewrite", "-n", "16", "-r", "1"])
    assert result.exit_code == 0, result.output
    assert "| rewrite |" in result.output and "identical" in result.output
