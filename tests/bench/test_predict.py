"""Device predictions: llama.cpp's tensor types per quant, the calibrated speed model, RAM before speed, the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bench.calibrate import calibration_report, fitted, load_points
from bench.families import FAMILIES, family, n_params_of
from bench.ftype import assign_types, quantized_info
from bench.predict import predict, predict_for
from ondevice.cli.main import cli

GIB = 2**30
REQUIRED_QUANTS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS")


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


# Sizes of real files as llama-bench printed them: Llama-2-7B (llama.cpp PR #2891), Llama-3-8B (PR #6936),
# Llama-3.2-3B Q4_K_M (1.87 GiB) and Llama-3.2-1B Q4_0 (727.75 MiB) in public llama-bench tables.
@pytest.mark.parametrize("name,quant,gib", [
    ("llama2-7b", "F16", 12.55), ("llama2-7b", "Q8_0", 6.67), ("llama2-7b", "Q6_K", 5.15),
    ("llama2-7b", "Q4_K_M", 3.80), ("llama2-7b", "Q4_0", 3.56), ("llama3-8b", "Q4_K_M", 4.58),
    ("llama3-8b", "Q8_0", 7.95), ("llama3.2-3b", "Q4_K_M", 1.87), ("llama3.2-1b", "Q4_0", 727.75 / 1024),
])
def test_sizes_match_published_gguf_files(name, quant, gib):
    assert quantized_info(family(name), quant).size_bytes / GIB == pytest.approx(gib, rel=0.006)


def test_parameter_counts_from_shapes():
    assert n_params_of(family("llama3-8b")) == 8_030_261_248
    assert n_params_of(family("llama2-7b")) == 6_738_415_616


def test_q4_k_m_gives_output_q6_k_and_more_bits_to_some_attn_v_and_ffn_down():
    types = {t.name: t.type for t in assign_types(family("llama3-8b"), "Q4_K_M")}
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    assert types["blk.0.attn_v.weight"] == "Q6_K" and types["blk.5.attn_v.weight"] == "Q4_K"
    assert types["blk.31.ffn_down.weight"] == "Q6_K" and types["blk.10.ffn_down.weight"] == "Q4_K"
    assert types["blk.7.attn_q.weight"] == "Q4_K" and types["blk.0.attn_norm.weight"] == "F32"


def test_rows_not_a_multiple_of_256_fall_back_to_legacy_types():
    types = {t.name: t.type for t in assign_types(family("qwen2.5-0.5b"), "Q4_K_M")}  # n_embd 896
    assert types["token_embd.weight"] == "Q8_0"    # tied output head
    assert types["blk.3.attn_q.weight"] == "Q5_0"  # Q4_K -> Q5_0
    assert types["blk.3.ffn_down.weight"] in ("Q4_K", "Q6_K")  # rows of 4864 = 19 x 256 keep k-quants


@pytest.mark.parametrize("quant", REQUIRED_QUANTS)
def test_every_family_predicts_at_every_required_quant(quant):
    for name in FAMILIES:
        p = predict(probe=name, quant=quant, device="apple-m4-max", n_ctx=1024)
        assert p.fits_ram and p.predicted_tg_tok_s > 0 and p.size_bytes > 0


def test_fewer_bits_read_fewer_bytes_and_decode_faster():
    sizes = [quantized_info(family("llama3.1-8b"), q).size_bytes for q in ("F16", "Q8_0", "Q4_K_M", "Q2_K")]
    assert sizes == sorted(sizes, reverse=True)
    q8 = predict(probe="llama3.1-8b", quant="Q8_0", device="apple-m2-max")
    q4 = predict(probe="llama3.1-8b", quant="Q4_K_M", device="apple-m2-max")
    assert q4.predicted_tg_tok_s > q8.predicted_tg_tok_s


def test_more_bandwidth_faster_and_more_threads_faster_until_the_bus_limits():
    assert predict(probe="llama3-8b", device="apple-m4-max").predicted_tg_tok_s > \
        predict(probe="llama3-8b", device="apple-m4").predicted_tg_tok_s
    one = predict(probe="llama3-8b", device="13900k", threads=1).predicted_tg_tok_s
    two = predict(probe="llama3-8b", device="13900k", threads=2).predicted_tg_tok_s
    eight = predict(probe="llama3-8b", device="13900k", threads=8).predicted_tg_tok_s
    sixteen = predict(probe="llama3-8b", device="13900k", threads=16).predicted_tg_tok_s
    assert one < two < eight == sixteen  # past a few threads the memory bus is the limit


def test_bandwidth_override_scales_the_prediction():
    catalog = predict(probe="llama3-8b", device="hx370")
    faster = predict(probe="llama3-8b", device="hx370", bandwidth_gbps=2 * catalog.bandwidth_gbps)
    assert faster.bandwidth_gbps == 2 * catalog.bandwidth_gbps
    assert faster.roofline_tg_tok_s == pytest.approx(2 * catalog.roofline_tg_tok_s, rel=1e-3)


def test_deeper_context_reads_more_kv_and_is_slower():
    short = predict(probe="llama3-8b", device="apple-m3", n_ctx=256)
    long = predict(probe="llama3-8b", device="apple-m3", n_ctx=8192)
    assert long.bytes_per_token - short.bytes_per_token == (8192 - 256) * 128 * 1024  # f16 KV: 128 KiB/token
    assert long.predicted_tg_tok_s < short.predicted_tg_tok_s


def test_both_depths_are_given_labelled_short_for_published_tables_and_full_for_the_targets():
    p = predict(probe="llama3.1-8b", quant="Q4_K_M", device="m2", n_ctx=4096)
    assert p.short_context_depth == 64 and p.depth == 4096
    assert p.tg_full_context_tok_s == p.predicted_tg_tok_s  # the default depth is the full context
    at_64 = predict(probe="llama3.1-8b", quant="Q4_K_M", device="m2", n_ctx=4096, depth=64)
    assert p.tg_short_context_tok_s == at_64.predicted_tg_tok_s > p.tg_full_context_tok_s
    assert at_64.tg_full_context_tok_s == p.tg_full_context_tok_s  # both figures whatever --depth says
    small = predict(probe="llama3.1-8b", quant="Q4_K_M", device="m2", n_ctx=32)
    assert small.short_context_depth == 32  # never deeper than the context


def test_this_machine_is_a_device_with_its_measured_bandwidth(isolated_store, monkeypatch):
    from ondevice.machine import bandwidth
    fake = bandwidth.BandwidthReport(12.5, 2, "2026-12-07T13:00:00+00:00", "test machine", "0" * 16, 512, True, 1.0)
    monkeypatch.setattr(bandwidth, "machine_bandwidth", lambda refresh=False: fake)
    p = predict(probe="llama3-8b", quant="Q4_K_M", device="this")
    assert p.device == "this" and p.backend == "cpu" and p.bandwidth_gbps == 12.5
    assert p.predicted_tg_tok_s < p.roofline_tg_tok_s


def test_ram_is_checked_before_speed():
    p = predict(probe="llama3.1-8b", quant="Q4_K_M", device="raspberry-pi-5", ram_gb=4)
    assert not p.fits_ram and p.predicted_tg_tok_s is None and p.verdict == "does not fit in 4 GB"
    decode = [t for t in p.targets if t.name.startswith("decode")]
    assert decode and all(not t.passed and t.predicted == "does not fit in 4 GB" for t in decode)
    assert predict(probe="llama3.1-8b", quant="Q4_K_M", device="raspberry-pi-5", ram_gb=8).fits_ram


def test_targets_have_pass_and_margin():
    p = predict(probe="llama3.1-8b", quant="Q4_K_M", device="apple-m4-max", n_ctx=1024)
    rows = {t.name: t for t in p.targets}
    assert rows["params"].passed
    tg = p.predicted_tg_tok_s
    assert rows["decode >= 20 tok/s"].passed == (tg >= 20)
    assert rows["decode >= 20 tok/s"].margin_pct == pytest.approx(100 * (tg / 20 - 1), abs=0.1)
    assert rows["fits 16 GB"].passed


def test_a_published_point_is_reproduced():
    """#4167: Apple M2 (10-core GPU), Llama-2-7B Q4_0, tg128 = 21.91 tok/s."""
    info = quantized_info(family("llama2-7b"), "Q4_0")
    p = predict_for(info, "apple-m2", n_ctx=4096, depth=64)  # tg128: mean depth 64
    assert p.depth == 64 and p.predicted_tg_tok_s == pytest.approx(21.91, rel=0.10)


def test_prefill_only_where_calibrated():
    """#4167: M2 (10-core GPU) Llama-2-7B Q4_0 pp512 = 179.57 tok/s; CPUs and other GPUs get no prefill number."""
    info = quantized_info(family("llama2-7b"), "Q4_0")
    assert predict_for(info, "apple-m2", n_ctx=512).predicted_pp512_tok_s == pytest.approx(179.57, rel=0.10)
    assert predict_for(info, "apple-m2", backend="cpu").predicted_pp512_tok_s is None
    assert predict_for(info, "amd-ryzen-ai-max-395").predicted_pp512_tok_s is None


def test_calibration_holds_out_points_and_meets_the_15_percent_goal():
    points = load_points()
    assert sum(p.split == "holdout" for p in points) >= 20 and sum(p.split == "fit" for p in points) >= 50
    report = calibration_report()
    assert report.holdout_median_abs_err_pct <= 15.0
    for name in ("metal", "cpu", "vulkan-igpu"):
        params = fitted(name)
        assert 0.3 <= params.efficiency <= 1.0 and params.n_fit >= 2


def test_predicting_a_family_writes_no_probe_file(isolated_store):
    before = set(isolated_store.rglob("*"))
    predict(probe="gemma2-9b", quant="Q4_K_M", device="amd-ryzen-ai-max-395")
    assert set(isolated_store.rglob("*")) == before


def test_predict_a_gguf_file_uses_its_own_tensor_table():
    p = predict(model="smollm2-135m", device="raspberry-pi-5")
    assert p.quant == "Q4_1" and p.fits_ram and p.predicted_tg_tok_s > 0


def test_predict_json_has_the_documented_fields():
    result = invoke("predict", "--probe", "llama3.1-8b", "--quant", "Q4_K_M", "--device", "m2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("device", "backend", "model", "quant", "size_bytes", "bandwidth_gbps", "efficiency",
                "predicted_tg_tok_s", "fits_ram", "targets", "tg_short_context_tok_s", "tg_full_context_tok_s",
                "short_context_depth", "depth"):
        assert key in data
    assert data["tg_short_context_tok_s"] > data["tg_full_context_tok_s"] == data["predicted_tg_tok_s"]
    assert data["device"] == "apple-m2" and data["backend"] == "gpu"
    assert all("pass" in row for row in data["targets"])


@pytest.mark.parametrize("args", [
    ["predict", "--probe", "llama3.1-8b", "--device", "m9-ultra"],
    ["predict", "--probe", "llama3.1-8b", "--quant", "Q4_K_X", "--device", "m2"],
    ["predict", "--probe", "llama9-1t", "--device", "m2"],
    ["predict", "--probe", "llama3.1-8b", "--device", "snapdragon-8-gen-3", "--backend", "gpu"],
    ["predict", "smollm2-135m", "--probe", "llama3.1-8b", "--device", "m2"],
    ["predict", "--probe", "llama3.1-8b", "--device", "m2", "--ram", "12"],
    ["predict", "--device", "m2"],
    ["predict", "--probe", "llama3.1-8b", "--device", "m2", "--bandwidth", "-5"],
    ["predict", "--probe", "llama3.1-8b", "--device", "m2", "--ctx", "512", "--depth", "1024"],
])
def test_bad_input_is_one_line_and_exit_2(args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
