"""Smoke test: examples/rag_personal_files.py indexes the sample folder, answers with citations, re-indexes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_rag_example_runs_on_the_sample_notes(isolated_store):
    env = dict(os.environ, ONDEVICE_HOME=str(isolated_store), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "rag_personal_files.py"), "--max-tokens", "24",
         "--question", "What is the car insurance policy number?", "--question", "What is the capital of Australia?"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "indexed 6 files" in out and "could not parse: none" in out
    assert "car-insurance.pdf:p. 2" in out  # the citation of the PDF page with the policy number
    assert "CX-88412" in out  # and the answer gives the number (auto answers extractively with the 135M model)
    assert "could not find anything relevant" in out
    assert "1 updated, 5 unchanged, 1 chunks re-embedded" in out
    assert "-> garden.txt" not in out and "spare key" in out
