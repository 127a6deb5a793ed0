"""Subprocess helpers for tests that interrupt a child with SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """`preexec_fn` for a child the test will SIGINT: a shell starts background jobs with SIGINT ignored, and a
    Python child inherits that and never raises KeyboardInterrupt (so `make test &` would fail these tests).
    The default disposition lets the child's Python install its own Ctrl-C handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
