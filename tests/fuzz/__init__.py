"""The fuzz suite of issue 23: hostile inputs generated here, run in child processes with limits (runner.py)."""
