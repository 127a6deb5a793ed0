"""`ondevice doctor`."""

from __future__ import annotations

import click
from rich.table import Table

from ondevice.cli.common import console, err_console, json_option, print_json
from ondevice.machine.doctor import diagnose


@click.command("doctor")
@click.option("--bandwidth", "refresh_bandwidth", is_flag=True,
              help="Measure the memory bandwidth again (run it on a quiet machine) and show every kernel and thread "
                   "count; otherwise the figure cached for this machine is shown.")
@json_option
def doctor_command(refresh_bandwidth, as_json):
    """This machine: CPU, ISA, RAM, memory bandwidth, runtimes, devices, and hazards."""
    report = diagnose(refresh_bandwidth=refresh_bandwidth, progress=lambda message: err_console.print(message))
    if as_json:
        print_json(report)
        return
    table = Table("check", "result", show_header=False)
    table.add_row("OS / Python", f"{report.os} / {report.python}")
    table.add_row("CPU", f"{report.cpu} ({report.arch}), {report.cores['physical']} physical / "
                         f"{report.cores['logical']} logical cores")
    table.add_row("ISA", " ".join(report.isa) or "-")
    table.add_row("RAM", f"{report.ram_available_gb:.1f} GB available of {report.ram_total_gb:.1f} GB")
    bw = report.bandwidth
    anchor = bw.run("read")
    passes = f"{anchor.undisturbed} undisturbed passes" if anchor and anchor.undisturbed else \
        f"{anchor.passes if anchor else 0} passes"
    table.add_row("Memory bandwidth", f"{bw.gbps:.1f} GB/s read ({bw.threads} threads, best of {passes}; "
                  f"{'cached, ' if bw.cached else ''}measured {bw.measured_at[:16].replace('T', ' ')} UTC"
                  f"{'' if refresh_bandwidth else '; --bandwidth measures again'})")
    if bw.note:
        table.add_row("  note", bw.note)
    if refresh_bandwidth:
        for run in bw.runs:
            table.add_row(f"  {run.kernel}, {run.threads} thread{'s' if run.threads > 1 else ''}",
                          f"min {run.min_gbps:.1f} / median {run.median_gbps:.1f} / max {run.max_gbps:.1f} GB/s "
                          f"over {run.undisturbed} undisturbed of {run.passes} passes "
                          f"(spread {run.spread_pct:.0f}%{', pinned' if run.pinned else ''})")
    llama = report.llama_cpp
    table.add_row("llama.cpp", f"llama-cpp-python {llama.version}, GPU offload: {'yes' if llama.gpu_offload else 'no'}"
                  if llama.installed else "not installed")
    if llama.installed:
        on = [k for k, v in llama.features.items() if v and k.isupper()]
        table.add_row("libllama features", " ".join(on))
    table.add_row("onnxruntime", f"{report.onnxruntime_version} (genai {report.onnxruntime_genai_version}); "
                                 f"providers: {', '.join(report.onnxruntime_providers)}")
    for plugin in report.onnxruntime_plugins:
        table.add_row(f"  plugin EP {plugin.name}", f"{plugin.package} {plugin.version}: " + (
            f"devices {', '.join(plugin.devices)}" if plugin.usable else plugin.note))
    table.add_row("Hazards", "\n".join(report.hazards) or "none found")
    console.print(table)
