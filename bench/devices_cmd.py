"""`ondevice devices [list|info NAME]` and `ondevice predict`: parse, call bench's device library, format.

They join the `ondevice` command through the "ondevice.commands" entry points in pyproject.toml.
"""

from __future__ import annotations

import click

from ondevice.cli.common import console, ctx_option, json_option, print_json, threads_option
from ondevice.models.memory import KV_TYPES


class _DefaultListGroup(click.Group):
    """`ondevice devices` alone lists the catalog (the noun group's default verb, as in `ondevice models`)."""

    def parse_args(self, ctx, args):
        if not args or args[0].startswith("-") and args[0] not in ("-h", "--help"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group("devices", cls=_DefaultListGroup)
def devices_group():
    """The device catalog: memory bandwidth, RAM, cores, GPU/NPU, each number with its public source."""


@devices_group.command("list")
@json_option
def devices_list(as_json):
    """Every catalog device, with its aliases."""
    from bench.devices import list_devices

    devices = list_devices()
    if as_json:
        print_json([{"name": d.name, "aliases": list(d.aliases), "title": d.title, "kind": d.kind,
                     "bandwidth_gbps": d.bandwidth_gbps, "ram_gb": list(d.ram_gb),
                     "backends": sorted(d.backends)} for d in devices])
        return
    from rich.table import Table

    table = Table("name", "device", "kind", "bandwidth GB/s", "RAM GB", "backends", "aliases")
    for d in devices:
        table.add_row(d.name, d.title, d.kind, f"{d.bandwidth_gbps:g}", "/".join(f"{r:g}" for r in d.ram_gb),
                      ", ".join(sorted(d.backends)), ", ".join(d.aliases))
    console.print(table)


@devices_group.command("info")
@click.argument("name")
@json_option
def devices_info(name, as_json):
    """One device's numbers and where each comes from."""
    from dataclasses import asdict

    from bench.devices import find_device, source_of

    d = find_device(name)
    fields = ("bandwidth_gbps", "ram_gb", "cpu_cores", "gpu")
    if as_json:
        print_json({**asdict(d), "sources": {f: source_of(d, f) for f in fields}})
        return
    from rich.table import Table

    console.print(f"{d.title} ({d.name}, {d.kind}); calibrated backends: {', '.join(sorted(d.backends))}")
    table = Table("number", "value", "source")
    values = {"bandwidth_gbps": f"{d.bandwidth_gbps:g} GB/s peak", "ram_gb": "/".join(f"{r:g}" for r in d.ram_gb)
              + " GB", "cpu_cores": f"{d.cpu_cores} ({d.perf_cores} used for decode)", "gpu": d.gpu or "-"}
    for f in fields:
        table.add_row(f, values[f], source_of(d, f))
    table.add_row("npu", d.npu or "-", "")
    console.print(table)


@click.command("predict")
@click.argument("model", required=False)
@click.option("--probe", default=None, help="A model family by name (llama3.1-8b, qwen2.5-7b, ...): shapes only, "
                                            "no file needed.")
@click.option("--quant", default=None, help="GGUF type of the --probe model (default Q4_K_M): F16, Q8_0, Q6_K, "
                                            "Q5_K_M, Q4_K_M, Q4_0, Q3_K_M, Q2_K, IQ4_XS, ...")
@click.option("--device", "device", required=True, help="Catalog device name or alias (`ondevice devices list`).")
@click.option("--backend", type=click.Choice(["cpu", "gpu"]), default=None,
              help="Default: the device's GPU where calibrated, else its CPU.")
@threads_option(help="CPU threads on the device (default: its performance cores).")
@ctx_option(default=4096, help="Context length: the RAM check holds it, decode is predicted at that depth.")
@click.option("--ram", "ram_gb", type=float, default=None, help="Which RAM option of the device (default: largest).")
@click.option("--kv-type", type=click.Choice(KV_TYPES), default="f16", show_default=True)
@click.option("--bandwidth", "bandwidth_gbps", type=float, default=None,
              help="Peak memory bandwidth in GB/s, replacing the catalog's (e.g. for a laptop's actual memory).")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="KV depth decode is predicted at (default: --ctx, a full context; 64 compares with tg128).")
@json_option
def predict_command(model, probe, quant, device, backend, threads, n_ctx, ram_gb, kv_type, bandwidth_gbps, depth,
                    as_json):
    """Predict decode tok/s and RAM fit of a model on a catalog device, and the seed targets (PASS/FAIL)."""
    from bench.predict import predict

    pred = predict(model, probe, quant, device, backend, threads, n_ctx, ram_gb, kv_type, bandwidth_gbps, depth)
    if as_json:
        print_json(pred.to_dict())
    else:
        print_prediction(pred)


def print_prediction(pred) -> None:
    """A `bench.predict.Prediction` as text: RAM verdict first, then decode, then the target table.

    Public so that other commands (`bench --targets --device`, `fit --device`) print predictions the same way."""
    console.print(f"{pred.model} {pred.quant} on {pred.device_title}, {pred.backend} ({pred.calibration_class}), "
                  f"{pred.ram_gb:g} GB, context {pred.n_ctx}, decode at depth {pred.depth}")
    console.print(f"RAM: needs {pred.ram_needed_bytes / 1e9:.2f} GB of {pred.ram_usable_bytes / 1e9:.1f} GB usable: "
                  f"{pred.verdict}")
    if pred.predicted_tg_tok_s is not None:
        err = f" (held-out error of this class: median {pred.expected_error_pct}%)" if pred.expected_error_pct else ""
        console.print(f"decode: {pred.predicted_tg_tok_s:.1f} tok/s predicted = {pred.efficiency:.0%} of the "
                      f"{pred.roofline_tg_tok_s:.1f} tok/s roofline ({pred.bandwidth_gbps:g} GB/s peak, "
                      f"{pred.bytes_per_token / 1e9:.2f} GB read per token){err}")
        console.print(f"decode by context: {pred.tg_short_context_tok_s:.1f} tok/s short context (KV depth "
                      f"{pred.short_context_depth}, the tg128 convention of published tables), "
                      f"{pred.tg_full_context_tok_s:.1f} tok/s full context (depth {pred.n_ctx})")
    if pred.predicted_pp512_tok_s is not None:
        console.print(f"prefill: {pred.predicted_pp512_tok_s:.0f} tok/s predicted (pp512)")
    from rich.table import Table

    table = Table("target", "needed", "predicted", "result", "margin")
    for t in pred.targets:
        table.add_row(t.name, t.target, t.predicted, "PASS" if t.passed else "FAIL",
                      f"{t.margin_pct:+.1f}%" if t.margin_pct is not None else "")
    console.print(table)
