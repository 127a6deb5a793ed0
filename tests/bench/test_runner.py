"""The measuring machinery on the embedded model: fields, repetitions, reference ratio, schemas (no speed limits)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bench.report import CSV_FIELDS, csv_text, markdown_table
from bench.runner import BenchConfig
from ondevice.errors import InvalidInput

LLAMA_BENCH_FIELDS = {"model_filename", "model_type", "model_size", "model_n_params", "n_threads", "n_prompt",
                      "n_gen", "avg_ts", "stddev_ts", "samples_ts"}


def test_bench_reports_pp_and_tg_with_llama_bench_fields(smollm2_bench):
    from dataclasses import asdict

    pp, tg = smollm2_bench
    assert (pp.test, tg.test) == ("pp16", "tg8")
    assert (pp.n_prompt, pp.n_gen, tg.n_prompt, tg.n_gen) == (16, 0, 0, 8)
    for row in (pp, tg):
        d = asdict(row)
        assert LLAMA_BENCH_FIELDS | {"ttft_ms", "load_ms", "peak_rss_bytes", "backend"} <= d.keys()
        assert len(row.samples_ts) == 2 and all(s > 0 for s in row.samples_ts)
        assert row.stddev_ts >= 0 and row.avg_ts == pytest.approx(sum(row.samples_ts) / 2, rel=1e-3)
        assert row.peak_rss_bytes >= row.run_peak_rss_bytes > row.baseline_rss_bytes > 0
        assert row.model_size > 90e6 and row.backend == "gguf" and row.n_threads == 1 and row.n_ctx == 256


def test_reference_loop_runs_interleaved_and_gives_a_ratio(smollm2_bench):
    tg = smollm2_bench[1]
    import statistics

    assert len(tg.reference_samples_ts) == 2
    per_round = [a / b for a, b in zip(tg.samples_ts, tg.reference_samples_ts)]
    assert tg.reference_ratio == pytest.approx(statistics.median(per_round), rel=1e-3)
    assert tg.reference_ratio_range == pytest.approx([min(per_round), max(per_round)], rel=1e-3)


def test_csv_and_markdown_carry_every_result(smollm2_bench):
    rows = list(csv.DictReader(io.StringIO(csv_text(smollm2_bench))))
    assert [r["test"] for r in rows] == ["pp16", "tg8"] and list(rows[0]) == CSV_FIELDS
    table = markdown_table(smollm2_bench)
    assert table.count("\n") == 3 and "tg8" in table and "ratio" in table


def test_public_stream_ignores_eos_when_asked(smollm2):
    from ondevice import SamplingParams

    eos = smollm2.eos_token
    events = list(smollm2.stream_events([eos], SamplingParams(max_tokens=12, ignore_eos=True)))
    assert events[-1].timings.completion_tokens == 12 and events[-1].finish_reason == "length"


@pytest.mark.parametrize("kwargs", [{"repetitions": 0}, {"n_prompt": -1}, {"n_prompt": 0, "n_gen": 0},
                                    {"threads": 0}, {"n_ctx": 64, "n_prompt": 512}, {"kv_type": "q4"}])
def test_bad_bench_config_is_a_user_error(kwargs):
    with pytest.raises(InvalidInput):
        BenchConfig(**kwargs).check()


def test_roofline_and_targets_from_measured_results(smollm2_bench, small_probe):
    """evaluate_targets/roofline arithmetic on real results (the probe row is relabelled from smollm2's)."""
    from dataclasses import replace

    from bench.roofline import bandwidth_needed_gbps, roofline, weights_read_per_token
    from bench.targets import evaluate_targets
    from ondevice.models.model_info import read_info
    from ondevice.models.store import resolve

    info = read_info(resolve("smollm2-135m"))
    assert weights_read_per_token(info) > 0.9 * info.size_bytes  # tied embeddings: read in full as the output
    roof = roofline(info, 10.0, depth=4, tg_measured=50.0)
    assert roof.tg_max == pytest.approx(10e9 / roof.bytes_per_token, rel=1e-3)
    assert bandwidth_needed_gbps(10, 5 * 10**9, 0.5) == 100.0
    rows = [replace(r, model_filename=str(small_probe)) for r in smollm2_bench]
    report = evaluate_targets("llama3-8b", "Q4_K_M", rows, 20.0)
    data = json.loads(json.dumps(report.to_dict()))
    assert {"rows", "bandwidth_gbps"} <= data.keys()
    assert [r["name"] for r in data["rows"]] == ["params", "decode >= 10 tok/s", "decode >= 20 tok/s",
                                                 "RAM <= 8 GB", "RAM <= 16 GB"]
    for row in data["rows"]:
        assert {"name", "target", "measured", "pass"} <= row.keys() and isinstance(row["pass"], bool)
    assert data["rows"][0]["pass"] is True and data["rows"][3]["pass"] is True
    assert data["bandwidth_gbps"]["device"] == 20.0 and data["bandwidth_gbps"]["for_20_tok_s"] > 0
    assert data["bandwidth_gbps"]["for_10_tok_s_at_roofline"] == pytest.approx(
        10 * report.roofline.bytes_per_token / 1e9, abs=0.1)
