"""Shared CLI pieces: error mapping, JSON printing, option bundles, a progress bar.

Public (no underscore) so that the packages adding commands through the "ondevice.commands" entry points
(quantize, bench, third-party plugins) declare the same options the same way.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click
from rich.console import Console

from ondevice.errors import OnDeviceError
from ondevice.backends.options import MIN_CTX

console = Console()
err_console = Console(stderr=True)


def _one_line_provider_fallbacks() -> None:
    """Print an execution provider's fallback to the CPU provider (ondevice.machine.providers) as one line on stderr."""
    import warnings

    from ondevice.machine.providers import ProviderFallback

    shown = warnings.showwarning
    if getattr(shown, "ondevice_one_line", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ProviderFallback):
            click.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show.ondevice_one_line = True
    warnings.showwarning = show


class OnDeviceGroup(click.Group):
    """A click group that turns user errors into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        _one_line_provider_fallbacks()
        try:
            return super().invoke(ctx)
        except OnDeviceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:  # a bad option value: one line too, naming the command
            prefix = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            click.echo(f"error: {prefix}{exc.format_message()}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


class PluginGroup(OnDeviceGroup):
    """A group whose subcommands are its own plus those installed packages add in the entry-point group
    `plugin_group` (imported only when used): `ondevice models catalog`, `ondevice rag bench` come from bench."""

    plugin_group = ""

    def list_commands(self, ctx):
        from ondevice.plugins import plugin_entry_points

        return sorted(set(super().list_commands(ctx)) | set(plugin_entry_points(self.plugin_group)))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        from ondevice.plugins import plugin_entry_points

        ep = plugin_entry_points(self.plugin_group).get(name)
        return ep.load() if ep is not None else None


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


# --- options shared by commands (here and in the packages that add commands: quantize, bench, plugins) ----------
# Each option means one thing in every command: --ctx is the context length a model is loaded with, --threads the
# CPU threads, --json "print the result as JSON instead of a table".

def threads_option(func=None, *, help: str = "CPU threads (default: physical cores)."):
    """-t/--threads N (N >= 1; default None: the runtime picks the physical core count)."""
    decorator = click.option("--threads", "-t", "threads", type=click.IntRange(min=1), default=None, help=help)
    return decorator(func) if func is not None else decorator


def ctx_option(func=None, *, default: int | None = None,
               help: str = "Context length (default: trained length, capped to fit RAM)."):
    """--ctx N: the context length (tokens) a model is loaded with; passed on as `n_ctx`."""
    decorator = click.option("--ctx", "n_ctx", type=click.IntRange(min=MIN_CTX), default=default,
                             show_default=default is not None, help=help)
    return decorator(func) if func is not None else decorator


def json_option(func=None, *, help: str = "Print JSON instead of a table."):
    """--json: print the command's result as JSON (passed on as `as_json`)."""
    decorator = click.option("--json", "as_json", is_flag=True, help=help)
    return decorator(func) if func is not None else decorator


def runtime_options(func):
    """--ctx, --threads, --device: the RuntimeOptions bundle every model-taking command shares."""
    func = click.option("--device", default="auto", show_default=True,
                        help="auto, cpu, gpu, or an ONNX Runtime provider (QNN, OpenVINO, CoreML, DML); "
                             "openvino:gpu / :npu / :cpu picks its device (docs/npu.md).")(func)
    func = threads_option(func)
    func = ctx_option(func)
    return func


def kv_type_option(func):
    """--kv-type: the KV cache element type (RuntimeOptions.kv_type checks the value)."""
    return click.option("--kv-type", default="f16", show_default=True, metavar="f16|q8_0|q4_0|f32",
                        help="KV cache type (GGUF): q8_0 halves its memory, q4_0 quarters it (docs/kv-cache.md).")(func)


def _logit_bias(values: tuple[str, ...]) -> dict[str, str] | None:
    """--logit-bias TOKEN=BIAS (repeatable) -> {token: bias} as text; SamplingParams checks both."""
    if not values:
        return None
    bias = {}
    for value in values:
        token, sep, amount = value.partition("=")
        if not sep:
            raise click.BadParameter(f"expected TOKEN_ID=BIAS, got {value!r}", param_hint="--logit-bias")
        try:
            bias[token.strip()] = float(amount)
        except ValueError:
            raise click.BadParameter(f"bias must be a number, got {amount!r}", param_hint="--logit-bias") from None
    return bias


# The sampling options of `run` and `chat`: plain types here, their ranges are checked once by
# ondevice.SamplingParams (through ondevice.decoding.request.build_request); a bad value is one line and exit 2.
SAMPLING_OPTIONS = (
    ("--temperature", float, "0 is greedy (deterministic)."),
    ("--top-p", float, "Nucleus sampling, in [0, 1]."),
    ("--top-k", int, "Keep the k most likely tokens (0: all)."),
    ("--min-p", float, "Drop tokens below min_p x the most likely one's probability."),
    ("--seed", int, "Seed for a reproducible sample above temperature 0."),
    ("--repeat-penalty", float, "Divide a repeated token's logit by this (1: off)."),
    ("--frequency-penalty", float, "Subtract count x this from a generated token's logit, in [-2, 2]."),
    ("--presence-penalty", float, "Subtract this from every generated token's logit, in [-2, 2]."),
)


def sampling_options(func):
    """The sampling options, gathered into one `sampling` dict argument (None values: the defaults) that the
    command forwards to Model.chat / Model.generate."""
    import functools

    names = [flag[2:].replace("-", "_") for flag, _, _ in SAMPLING_OPTIONS]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        sampling = {name: kwargs.pop(name) for name in names}
        sampling["logit_bias"] = _logit_bias(kwargs.pop("logit_bias"))
        return func(*args, sampling=sampling, **kwargs)

    wrapper = click.option("--logit-bias", multiple=True, metavar="TOKEN_ID=BIAS",
                           help="Add BIAS (-100..100) to a token's logit (repeatable).")(wrapper)
    for flag, kind, text in reversed(SAMPLING_OPTIONS):
        wrapper = click.option(flag, type=kind, default=None, help=text)(wrapper)
    return wrapper


class ProgressBar:
    """A transient rich progress bar on stderr, fed by library `(description, done, total)` progress callbacks."""

    def __init__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                  console=err_console, transient=True)
        self._task = None

    def __enter__(self) -> "ProgressBar":
        self._progress.__enter__()
        self._task = self._progress.add_task("starting", total=1)
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, description: str, done: int, total: int) -> None:
        self._progress.update(self._task, description=description, completed=done, total=total)


__all__ = ["console", "err_console", "OnDeviceGroup", "to_jsonable", "print_json", "threads_option", "ctx_option",
           "json_option", "runtime_options", "ProgressBar"]
