"""examples/local_agent.py: the embedded model calls real tools (a calculator, a RAG search of the sample notes)
through constrained tool calls, gets their results back as tool messages, and answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_agent_calls_the_calculator_and_the_notes_search(isolated_store):
    env = dict(os.environ, ONDEVICE_HOME=str(isolated_store), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "local_agent.py"), "--max-tokens", "16"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "indexed 6 files" in out
    # temperature 0: the model writes the expression, the tool computes it exactly
    assert '-> calculator({"expression": "45 + 17"}) = 62' in out
    # the search tool is chosen for the trip question and finds the trip plan
    assert "-> search_notes(" in out and "[trip-plan.docx]" in out
    assert out.count("\nA: ") == 2 and "Traceback" not in result.stderr
