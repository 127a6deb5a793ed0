"""report.json / report.md / quality.png, and the recommendation rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice.errors import InvalidInput
from quantize import recommend
from quantize.report import pareto_front

GB = 1024 ** 3


def test_report_json_schema(smollm2_report):
    data = json.loads(Path(smollm2_report.files["json"]).read_text())
    assert [v["name"].rsplit("-", 1)[-1] for v in data["variants"]] == ["Q4_K_M", "Q8_0"]
    for v in data["variants"]:
        for key in ("name", "format", "path", "size_bytes", "bpw", "ppl", "kld_mean", "same_top_pct"):
            assert v[key] is not None, key
        assert v["format"] == "gguf" and Path(v["path"]).exists()
        assert v["size_bytes"] == Path(v["path"]).stat().st_size
    assert data["reference"]["qtype"] == "F16"


def test_report_markdown_and_plot(smollm2_report):
    md = Path(smollm2_report.files["markdown"]).read_text()
    assert "Q4_K_M" in md and "Q8_0" in md and "mean KLD" in md
    assert Path(smollm2_report.files["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_front():
    # (size, kld): the second point is dominated by the first (bigger and worse).
    assert pareto_front([(100, 0.05), (120, 0.06), (140, 0.004), (90, 0.2)]) == [3, 0, 2]


def test_recommend_picks_smallest_within_bound(smollm2_report):
    v = {x.qtype: x for x in smollm2_report.variants}
    loose = recommend(smollm2_report, ram_gb=8)
    assert loose.variant is v["Q4_K_M"]
    strict = recommend(smollm2_report, ram_gb=8, max_kld=(v["Q8_0"].kld_mean + v["Q4_K_M"].kld_mean) / 2)
    assert strict.variant is v["Q8_0"]
    assert "Q8_0" in strict.reason and "smallest" in strict.reason


def test_recommend_counts_kv_cache(smollm2_report):
    q4 = {x.qtype: x for x in smollm2_report.variants}["Q4_K_M"]
    # SmolLM2: 30 layers x 3 KV heads x 64 dims x 2 (K,V) x 2 bytes = 23040 bytes per token
    needed = recommend(smollm2_report, ram_gb=8, ctx=8192).needed_bytes[q4.name]
    assert needed == q4.size_bytes + 23040 * 8192


def test_recommend_refuses_when_nothing_fits(smollm2_report):
    tiny = recommend(smollm2_report, ram_gb=0.05)
    assert tiny.variant is None and "nothing fits" in tiny.reason
    strict = recommend(smollm2_report, ram_gb=8, max_kld=1e-9)
    assert strict.variant is None and "no variant is within" in strict.reason


def test_recommend_rejects_bad_budget(smollm2_report):
    with pytest.raises(InvalidInput):
        recommend(smollm2_report, ram_gb=0)


def test_recommend_reads_report_json(smollm2_report):
    data = json.loads(Path(smollm2_report.files["json"]).read_text())
    assert recommend(data, ram_gb=8).variant.name == recommend(smollm2_report, ram_gb=8).variant.name
