"""Root of the `ondevice` command: a click group with one subcommand (or noun group) per module.

The runtime's own commands are listed here; the tools built on the runtime (`quantize`, `eval`, `distill` from the
quantize package, `bench`, `fit`, `demo` from the bench package) and any third-party package join through the
"ondevice.commands" entry-point group (see ondevice/plugins.py), so this package imports neither of them.
Commands are imported lazily, by name, so `ondevice run` never pays for importing torch or FastAPI.
"""

from __future__ import annotations

import importlib

import click

from ondevice import __version__
from ondevice.cli.common import OnDeviceGroup
from ondevice.plugins import command_entry_point, command_names

# The runtime's commands: name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "run": "ondevice.cli.generate:run_command",
    "chat": "ondevice.cli.generate:chat_command",
    "models": "ondevice.cli.models:models_group",
    "doctor": "ondevice.cli.doctor:doctor_command",
    "rag": "ondevice.cli.rag_cmd:rag_group",
    "serve": "ondevice.cli.serve_cmd:serve_command",
    "ui": "ondevice.cli.ui_cmd:ui_command",
}


class LazyGroup(OnDeviceGroup):
    """Imports a command's module only when that command runs (or help lists it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(command_names()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            ep = command_entry_point(name)
            if ep is None:
                return None
            target = f"{ep.module}:{ep.attr}"
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # The command's package is not in this install, or a dependency of it is missing: either way the
            # command stays listed and says, in one line, what to install.
            return _missing_dependency_command(name, exc.name or module_name)
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
