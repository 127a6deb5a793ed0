"""Root of the `ondevice` command: a click group with one subcommand (or noun group) per module."""

from __future__ import annotations

import click

from ondevice import __version__
from ondevice.cli.common import OnDeviceGroup
from ondevice.cli.doctor import doctor_command
from ondevice.cli.generate import chat_command, run_command
from ondevice.cli.models import models_group


@click.group(cls=OnDeviceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ondevice")
def cli():
    """Run, quantise, benchmark and serve small language models on this device, offline."""


for command in (run_command, chat_command, models_group, doctor_command):
    cli.add_command(command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
