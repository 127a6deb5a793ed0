"""Writing model files safely: check free disk first, write under a temporary name, rename only when complete."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ondevice.errors import InvalidInput

# Room kept free beyond the estimate: metadata, filesystem slack, and the rest of the system.
DISK_MARGIN_BYTES = 64 * 1024 * 1024


def check_free_space(dest: Path, needed_bytes: int) -> None:
    """Raise InvalidInput when the filesystem holding `dest` has less than `needed_bytes` (+ a margin) free."""
    folder = Path(dest).parent
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes + DISK_MARGIN_BYTES:
        raise InvalidInput(f"not enough free disk for {dest}: about {needed_bytes / 1e6:.0f} MB needed, "
                           f"{free / 1e6:.0f} MB free in {folder}")


def partial_path(dest: Path) -> Path:
    """The temporary name `atomic_output` writes `dest` under (`<dest>.partial`), for writers in another process."""
    return dest.with_name(dest.name + ".partial")


@contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """Yield a temporary path next to `dest`; on success rename it to `dest`, on any failure delete it.

    An interrupted run (exception, Ctrl-C) therefore never leaves a half-written file under the final name.
    """
    dest = Path(dest)
    tmp = partial_path(dest)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"{tmp} was not written")
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(dest: Path, needed_bytes: int | None = None) -> Iterator[Path]:
    """Folder mode of `atomic_output`: yield an empty staging folder beside `dest`, publish it as `dest` on success.

    `needed_bytes` (an estimate of what will be written) is checked against free disk first. On success an older
    `dest` is replaced; on any failure (exception, Ctrl-C) the staging folder is deleted, so a final folder name
    only ever holds a complete model.
    """
    import os
    import tempfile

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if needed_bytes:
        check_free_space(dest, needed_bytes)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; a model folder should be as readable as any other file
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
