"""`--watch`: keep an index current while files change, with watchdog.

Events are debounced: after the first change we wait until the folder has been quiet for `debounce` seconds,
then run one incremental index pass (which re-reads only what changed, and handles renames and deletions). One pass
also runs right after the observer starts, so a change made while it was starting is not missed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ondevice.rag.indexer import IndexSummary


def watch(index, paths: Sequence[str | Path], exclude: Iterable[str] = (), debounce: float = 1.0,
          on_update: Callable[[IndexSummary], None] | None = None, stop: threading.Event | None = None) -> None:
    """Re-index `paths` into `index` whenever something under them changes, until `stop` is set (or Ctrl-C)."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    exclude = list(exclude)
    changed = threading.Event()
    stop = stop or threading.Event()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            if event.event_type in ("opened", "closed_no_write"):  # reads are not changes
                return
            name = Path(str(event.src_path)).name
            if not name.startswith(".") or name == ".gitignore":
                changed.set()

    observer = Observer()
    for path in paths:
        path = Path(path).expanduser().resolve()
        observer.schedule(Handler(), str(path if path.is_dir() else path.parent), recursive=path.is_dir())
    observer.start()
    try:
        # Changes made before the observer was watching (between the caller's last pass and now) are caught by one
        # pass here; it is reported only when it changed something.
        summary = index.add(paths, exclude=exclude)
        if on_update and (summary.added or summary.updated or summary.deleted or summary.renamed):
            on_update(summary)
        while not stop.is_set():
            if not changed.wait(timeout=0.2):
                continue
            while changed.is_set() and not stop.is_set():  # wait for a quiet moment
                changed.clear()
                time.sleep(debounce)
            summary = index.add(paths, exclude=exclude)
            if on_update:
                on_update(summary)
    finally:
        observer.stop()
        observer.join()
