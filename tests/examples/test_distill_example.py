"""examples/distill_then_quantize.py runs end to end on a tiny teacher: student, Q4_K_M GGUF, decode speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distill_then_quantize.py"


def test_distill_then_quantize_on_a_tiny_teacher(tmp_path):
    from tests.quantize.distill.conftest import make_tiny_teacher

    teacher = make_tiny_teacher(tmp_path / "teacher", n_layers=4)
    data = tmp_path / "data.txt"
    from pydoc_data.topics import topics

    data.write_text(topics["if"] + topics["while"])
    out = tmp_path / "student"
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(teacher), "--out", str(out), "--keep-layers", "2",
                           "--steps", "2", "--seq-len", "32", "--batch", "2", "--eval-tokens", "128",
                           "--data", str(data), "--max-tokens", "8"],
                          text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gap recovered" in proc.stdout and "decode tok/s" in proc.stdout
    report = json.loads((out / "distill.json").read_text())
    assert report["gguf"].endswith("student-Q4_K_M.gguf") and Path(report["gguf"]).stat().st_size > 0
    import ondevice

    with ondevice.load(report["gguf"], n_ctx=128) as student:  # the quantised student runs in the GGUF runtime
        assert student.info.n_layers == 2
        assert student.detokenize(student.tokenize("hello world", add_special=False)) == "hello world"
