"""`ondevice models list|info`."""

from __future__ import annotations

import click
from rich.table import Table

from ondevice.catalog import list_models, model_info
from ondevice.cli.common import OnDeviceGroup, console, print_json


@click.group("models", cls=OnDeviceGroup, invoke_without_command=True)
@click.pass_context
def models_group(ctx):
    """Models in the store and their facts (default: list)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command)


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json):
    """Known models: alias, format, params, quant, size, path, licence."""
    entries = list_models()
    if as_json:
        print_json(entries)
        return
    table = Table("alias", "format", "params", "quant", "size MB", "licence", "path")
    for e in entries:
        table.add_row(e.name, e.format, f"{e.n_params / 1e6:.0f}M" if e.n_params else "?", e.quant,
                      f"{e.size_bytes / 1e6:.0f}" if e.size_bytes else "?", e.licence, e.path or e.error or "")
    console.print(table)


@models_group.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True)
def info_command(model, as_json):
    """Architecture, layers, heads, KV heads, context, vocab, quant and bits/weight of MODEL."""
    info = model_info(model)
    if as_json:
        print_json(info)
        return
    table = Table("field", "value", show_header=False)
    for key, value in info.to_dict().items():
        table.add_row(key, str(value))
    console.print(table)
