"""`ondevice models list|info|rm`, plus subcommands packages add ("ondevice.models_commands" entry points: bench's
`catalog`)."""

from __future__ import annotations

import click
from rich.table import Table

from ondevice.models.catalog import list_models, model_info
from ondevice.cli.common import PluginGroup, console, json_option, print_json
from ondevice.plugins import MODELS_COMMANDS_GROUP


class _ModelsGroup(PluginGroup):
    """The built-in subcommands, then those installed packages add ("ondevice.models_commands")."""

    plugin_group = MODELS_COMMANDS_GROUP


@click.group("models", cls=_ModelsGroup, invoke_without_command=True)
@click.pass_context
def models_group(ctx):
    """Models in the store and their facts (default: list)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command)


@models_group.command("list")
@json_option
def list_command(as_json):
    """Known models: alias, format, params, quant, size, licence, path."""
    entries = list_models()
    if as_json:
        print_json(entries)
        return
    console.print(models_table(entries, console.width))
    from ondevice.models.hub import disk_use

    console.print("disk: " + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in disk_use().items()), highlight=False,
                  markup=False)


MIN_PATH_WIDTH = 24  # below this a path column shows too little to be worth its room


def models_table(entries, width: int) -> Table:
    """The models as a table that fits `width` columns without cutting a name a user types.

    Names (aliases, or the store paths that stand for them) are never truncated: their column is as wide as the
    longest name (up to half the width; beyond that they fold onto a second line). The path column comes last and
    is left out, with a note, when what is left of the width is too narrow for it.
    """
    rows = [(e.name, e.format, f"{e.n_params / 1e6:.0f}M" if e.n_params else "?", e.quant,
             f"{e.size_bytes / 1e6:.0f}" if e.size_bytes else "?", e.licence) for e in entries]
    headers = ("alias", "format", "params", "quant", "size MB", "licence")
    natural = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    name_width = min(natural[0], max(len(headers[0]), width // 2))
    used = name_width + sum(natural[1:]) + 3 * len(headers) + 1  # cells plus "│ " / " " padding and borders
    with_path = width - used - 3 >= MIN_PATH_WIDTH
    table = Table(caption=None if with_path else "(too narrow for paths: see --json)")
    table.add_column(headers[0], min_width=name_width, overflow="fold")
    for header in headers[1:]:
        table.add_column(header)
    if with_path:
        table.add_column("path", overflow="fold")
    for entry, row in zip(entries, rows):
        table.add_row(*row, *((entry.path or entry.error or "",) if with_path else ()))
    return table


@models_group.command("info")
@click.argument("model")
@json_option
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


@models_group.command("rm")
@click.argument("model")
@click.option("--keep-hf-cache", is_flag=True, help="For hf: names, keep the repo's files in the Hugging Face cache.")
@json_option
def rm_command(model, keep_hf_cache, as_json):
    """Delete MODEL from the store: a pulled hf:ORG/REPO[:QUANT] (and its HF cache files), or a file or folder
    under the store's models folder. Prints what was freed and the disk the store and HF cache still use."""
    from ondevice.models.catalog import remove_model
    from ondevice.models.hub import disk_use

    removed = remove_model(model, hf_cache=not keep_hf_cache)
    use = disk_use()
    if as_json:
        print_json({"removed": removed, "disk_use_bytes": use})
        return
    for path in removed.paths:
        console.print(f"removed {path}", highlight=False, markup=False)
    console.print(f"freed {removed.freed_bytes / 1e6:,.1f} MB; now using "
                  + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in use.items()), highlight=False, markup=False)
