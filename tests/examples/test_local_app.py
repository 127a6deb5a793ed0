"""examples/local_app.py runs as written: streams answers, keeps history, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.signals import interruptible

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local_app.py"


def test_answers_two_questions_with_history():
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--max-tokens", "32"], text=True, capture_output=True,
                          input="What is the capital of France?\nWhat is the capital of Germany?\n", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout
    assert "Berlin" in proc.stdout
    assert "[2 exchanges]" in proc.stderr


def test_ctrl_c_stops_the_current_answer_and_the_app_exits_cleanly():
    proc = subprocess.Popen([sys.executable, "-u", str(EXAMPLE), "--max-tokens", "2000"], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=interruptible)
    proc.stdin.write("Write a very long story about a dragon who learns to code.\n")
    proc.stdin.flush()
    seen = ""
    deadline = time.time() + 120
    while "assistant> " not in seen or len(seen.split("assistant> ", 1)[1]) < 20:
        assert time.time() < deadline, "no streamed output"
        seen += os.read(proc.stdout.fileno(), 64).decode(errors="replace")
    proc.send_signal(signal.SIGINT)
    proc.stdin.close()
    proc.wait(timeout=60)
    rest, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0, err
    assert "[stopped]" in seen + rest
    assert "Traceback" not in err
