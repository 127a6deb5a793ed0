"""One bench run reads each model's facts once and carries them to the worker, the roofline and the targets."""

from __future__ import annotations


def test_a_bench_run_reads_each_model_once_and_never_reopens_the_gguf(monkeypatch):
    import gguf

    import ondevice.models.catalog
    import ondevice.models.model_info
    from bench.runner import BenchConfig
    from bench.suite import run_bench

    reads = []
    real = ondevice.models.catalog.read_info
    for module in (ondevice.models.catalog, ondevice.models.model_info):  # by name, or through the catalog
        monkeypatch.setattr(module, "read_info", lambda ref: reads.append(ref.name) or real(ref))

    def no_reader(*args, **kwargs):
        raise AssertionError("the GGUF was opened again with GGUFReader")

    monkeypatch.setattr(gguf, "GGUFReader", no_reader)
    report = run_bench(["smollm2-135m"], BenchConfig(n_prompt=8, n_gen=4, repetitions=1, threads=1, n_ctx=64))
    assert reads == ["smollm2-135m"]  # this process; the measuring process reads it once more when it loads
    (roof,) = report.rooflines.values()
    assert roof.bytes_per_token > 90e6 and roof.tg_measured == report.results[1].avg_ts
