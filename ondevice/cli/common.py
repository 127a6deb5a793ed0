"""Shared CLI pieces: error mapping, JSON printing, option bundles."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click
from rich.console import Console

from ondevice.errors import OnDeviceError

console = Console()
err_console = Console(stderr=True)


class OnDeviceGroup(click.Group):
    """A click group that turns user errors into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OnDeviceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2))


def runtime_options(func):
    """--ctx, --threads, --device: the RuntimeOptions bundle every model-taking command shares."""
    func = click.option("--device", default="auto", show_default=True,
                        help="auto, cpu, gpu, or an ONNX Runtime provider (QNN, OpenVINO, CoreML, DML).")(func)
    func = click.option("--threads", "-t", type=click.IntRange(min=1), default=None,
                        help="CPU threads (default: physical cores).")(func)
    func = click.option("--ctx", "n_ctx", type=click.IntRange(min=16), default=None,
                        help="Context length (default: trained length, capped to fit RAM).")(func)
    return func
