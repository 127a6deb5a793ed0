"""The same bench runs an ONNX (onnxruntime-genai) model through the same Model API."""

from __future__ import annotations


def test_bench_measures_an_onnx_genai_model(tiny_onnx_int4_dir):
    from bench.fit import fit
    from bench.runner import BenchConfig, bench_model

    pp, tg = bench_model(str(tiny_onnx_int4_dir), BenchConfig(n_prompt=16, n_gen=8, repetitions=2, threads=1,
                                                              n_ctx=128))
    assert pp.backend == tg.backend == "onnx-genai"
    assert len(tg.samples_ts) == 2 and tg.avg_ts > 0 and pp.avg_ts > 0 and tg.ttft_ms > 0
    assert tg.peak_rss_bytes > 0 and tg.model_size > 0
    est = fit(str(tiny_onnx_int4_dir), n_ctx=128)
    assert est.kv_bytes == 2 * 2 * 2 * 16 * 128 * 4  # layers x kv_heads x head_dim x ctx x f32, K and V
