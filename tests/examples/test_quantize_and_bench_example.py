"""examples/quantize_and_bench.py runs as written (small settings): variants, quality, recommendation, bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quantize_and_bench.py"


def test_quantize_and_bench_example_small(tmp_path):
    out = tmp_path / "qb"
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(out), "--to", "gguf:Q8_0,Q4_K_M",
                           "--eval-chunks", "2", "-p", "16", "-n", "8", "-r", "1", "--no-targets"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    names = [v["name"] for v in report["variants"]]
    assert len(names) == 2
    assert all(v["kld_mean"] is not None for v in report["variants"])
    assert "recommendation for 0.25 GB" in proc.stdout
    assert "tg8" in proc.stdout and "pp16" in proc.stdout
    assert (out / "bench" / "report.md").exists()
