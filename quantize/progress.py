"""A progress bar with an ETA for long evaluations, drawn on stderr (and only when stderr is a terminal)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def window_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a `progress(done, total)` callback that draws "label ━━━━ 7/20 0:00:41 eta 0:01:12".

    A no-op when disabled or when stderr is not a terminal (logs and CI output stay clean).
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)
