"""The batch-step benchmark times steady-state steps of the server's engine with N sequences decoding together.
Run as a user runs it (`ondevice bench batch-steps` in its own process: the command loads the model and opens the
engine's second context)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ondevice.cli.main import cli


def test_rows_follow_the_requested_sequence_counts():
    proc = subprocess.run([sys.executable, "-m", "ondevice", "bench", "batch-steps", "smollm2-135m", "-t", "1",
                           "--steps", "3", "--sequences", "1,3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", proc.stdout, re.M)
    assert [int(r[0]) for r in rows] == [1, 3]
    assert float(rows[0][3]) == 1.0
    for n, ms, tok_s, _ in rows:
        assert float(ms) > 0 and float(tok_s) == pytest.approx(int(n) * 1000 / float(ms), rel=0.02)


@pytest.mark.parametrize("args, option", [(["--sequences", "0,2"], "--sequences"), (["--sequences", "a"], "--sequences"),
                                          (["--sequences", ""], "--sequences"), (["--steps", "0"], "--steps")])
def test_bad_arguments_are_one_line_and_exit_code_2(args, option):
    result = CliRunner().invoke(cli, ["bench", "batch-steps", "smollm2-135m", *args])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"'{option}'" in line
