"""Root of the `ondevice` command: a click group with one subcommand (or noun group) per module.

Commands are imported lazily, by name, so `ondevice run` never pays for importing torch or FastAPI.
"""

from __future__ import annotations

import importlib

import click

from ondevice import __version__
from ondevice.cli.common import OnDeviceGroup

# command name -> "module:attribute" of its click command. A new command is one line here.
COMMANDS: dict[str, str] = {
    "run": "ondevice.cli.generate:run_command",
    "chat": "ondevice.cli.generate:chat_command",
    "models": "ondevice.cli.models:models_group",
    "doctor": "ondevice.cli.doctor:doctor_command",
    "quantize": "ondevice.cli.quantize_cmd:quantize_command",
    "eval": "ondevice.cli.quantize_cmd:eval_command",
    "distill": "ondevice.cli.distill_cmd:distill_command",
    "bench": "ondevice.cli.bench_cmd:bench_command",
    "fit": "ondevice.cli.bench_cmd:fit_command",
    "rag": "ondevice.cli.rag_cmd:rag_group",
    "serve": "ondevice.cli.serve_cmd:serve_command",
    "demo": "ondevice.cli.demo_cmd:demo_command",
}


class LazyGroup(OnDeviceGroup):
    """Imports a command's module only when that command runs (or help lists it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not built in this install
                return None
            return _missing_dependency_command(name, exc.name)
        return getattr(module, attr)


def _missing_dependency_command(name: str, missing: str) -> click.Command:
    """Stands in for a command whose optional dependency is not installed: says which, exits 2."""

    def fail(**_):
        from ondevice.errors import BackendUnavailable

        raise BackendUnavailable(f"`ondevice {name}` needs {missing!r}, which is not installed "
                                 f"(pip install 'ondevice-toolkit[all]')")

    return click.Command(name, callback=fail, help=f"(unavailable: needs {missing})",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ondevice")
def cli():
    """Run, quantise, benchmark and serve small language models on this device, offline."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
