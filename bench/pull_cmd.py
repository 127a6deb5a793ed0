"""`ondevice pull` and `ondevice models catalog`: parse, call bench.pull / bench.model_catalog, format.

Both join `ondevice` through entry points in pyproject.toml ("ondevice.commands" and "ondevice.models_commands"),
since their predictions live in bench; the runtime only resolves the `hf:` names they leave in the store.
"""

from __future__ import annotations

import click

from ondevice.cli.common import console, err_console, json_option, print_json


@click.command("pull")
@click.argument("name")
@click.option("--quant", default=None, help="GGUF type: the file to pick in a GGUF repo, or what a safetensors repo "
                                            "is quantised to on pull (default Q4_K_M).")
@click.option("--force", is_flag=True, help="Pull even when the prediction says the model cannot fit in RAM.")
@click.option("--device", default=None, help="Predict for a catalog device (ondevice devices) instead of this machine.")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=16), default=4096, show_default=True,
              help="Context length the RAM prediction assumes.")
@json_option
def pull_command(name, quant, force, device, n_ctx, as_json):
    """Download NAME (hf:ORG/REPO[:QUANT|FILE]) from the Hugging Face Hub into the store, after predicting whether
    it fits and how fast it decodes here. Safetensors repos are converted (llama.cpp's converter) and quantised.
    Honours HF_TOKEN, HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE."""
    from bench.pull import pull

    with _LazyBar() as bar:  # drawn only once the conversion reports (huggingface_hub draws its own while downloading)
        result = pull(name, quant=quant, force=force, device=device, n_ctx=n_ctx, progress=bar,
                      say=lambda message: err_console.print(message, highlight=False, markup=False))
    if as_json:
        print_json(result)
        return
    console.print(f"pulled {result.name} -> {result.path}" + (" (converted)" if result.converted else ""),
                  highlight=False, markup=False)


class _LazyBar:
    """A ProgressBar started on its first update."""

    def __init__(self):
        self._bar = None

    def __enter__(self) -> "_LazyBar":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, description: str, done: int, total: int) -> None:
        if self._bar is None:
            from ondevice.cli.common import ProgressBar

            self._bar = ProgressBar().__enter__()
        self._bar(description, done, total)


@click.command("catalog")
@click.option("--device", default=None, help="A catalog device (ondevice devices) instead of this machine.")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=16), default=4096, show_default=True,
              help="Context length the RAM prediction assumes.")
@json_option
def catalog_command(device, n_ctx, as_json):
    """Which small model should I run here? Current small families per quant: size, RAM fit and predicted decode
    speed on this machine (or --device), best first."""
    from bench.model_catalog import SPEED_TARGET, catalog

    title, rows = catalog(device, n_ctx=n_ctx)
    if as_json:
        print_json({"device": title, "rows": rows})
        return
    from rich.table import Table

    table = Table("family", "quant", "params", "size MB", "RAM GB", "fits", "decode tok/s", "pull",
                  title=f"{title}, {n_ctx} tokens of context; best first (fits, >= {SPEED_TARGET:g} tok/s, largest)")
    for r in rows:
        table.add_row(r.family, r.quant, f"{r.n_params / 1e9:.2f} B", f"{r.size_bytes / 1e6:,.0f}",
                      f"{r.ram_needed_bytes / 1e9:.2f}", "yes" if r.fits else "no",
                      f"{r.predicted_tg_tok_s:.1f}" if r.predicted_tg_tok_s else "-", r.pull)
    console.print(table)
    best = rows[0] if rows and rows[0].fits else None
    if best:
        console.print(f"run here: {best.family} {best.quant}" + (f" ({best.pull})" if best.pull else ""),
                      highlight=False, markup=False)
