"""Bench output files: a llama-bench style markdown table, report.md, report.json and PNG plots."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from bench.runner import BenchResult

if TYPE_CHECKING:
    from bench.suite import BenchReport

CSV_FIELDS = ["model_filename", "model_type", "model_size", "model_n_params", "backend", "n_threads", "n_ctx",
              "n_prompt", "n_gen", "test", "avg_ts", "stddev_ts", "ttft_ms", "load_ms", "peak_rss_bytes",
              "run_peak_rss_bytes",
              "bits_per_weight", "quant", "reference_ts", "reference_ratio"]


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.2f} MiB"


def markdown_table(results: list[BenchResult]) -> str:
    """The llama-bench table, plus TTFT, peak RSS and (with --reference) the ratio to the bare loop."""
    show_ref = any(r.reference_ratio for r in results)
    head = ["model", "size", "params", "backend", "threads", "test", "t/s", "ttft ms", "load ms", "peak RSS", "run RSS"]
    head += ["ref t/s", "ratio"] if show_ref else []
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i > 3 else "---" for i in range(len(head))) + "|"]
    for r in results:
        params = f"{r.model_n_params / 1e9:.2f} B" if r.model_n_params >= 1e9 else f"{r.model_n_params / 1e6:.1f} M"
        row = [r.model_type, _size(r.model_size), params, r.backend, str(r.n_threads), r.test,
               f"{r.avg_ts:.2f} ± {r.stddev_ts:.2f}", f"{r.ttft_ms:.1f}", f"{r.load_ms:.0f}",
               _size(r.peak_rss_bytes), _size(r.run_peak_rss_bytes)]
        if show_ref:
            row += [f"{r.reference_ts:.2f}" if r.reference_ts else "", f"{r.reference_ratio:.3f}"
                    if r.reference_ratio else ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def csv_text(results: list[BenchResult]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in results:
        writer.writerow(r.__dict__)
    return out.getvalue()


def roofline_lines(report: "BenchReport") -> list[str]:
    lines = []
    for name, roof in report.rooflines.items():
        lines.append(f"- {Path(name).name}: {roof.bytes_per_token / 1e6:.1f} MB read per token, tg_max "
                     f"{roof.tg_max:.1f} tok/s at {roof.bandwidth_gbps:.1f} GB/s; measured {roof.tg_measured:.2f} "
                     f"tok/s = {100 * (roof.efficiency or 0):.0f}% of the roofline (gap {roof.gap_pct}%)")
        if roof.note:
            lines.append(f"  NOTE: {roof.note}")
    bw = report.bandwidth
    read = bw.run("read", report.config.threads) if bw is not None else None
    if read is not None:
        lines.append(f"- bandwidth: read {read.max_gbps:.1f} GB/s best (median {read.median_gbps:.1f}, min "
                     f"{read.min_gbps:.1f}) over {read.passes} passes at {read.threads} threads, "
                     f"{'cached from ' if bw.cached else 'measured '}{bw.measured_at[:10]} "
                     f"(`ondevice doctor --bandwidth` measures again)")
        if bw.note:
            lines.append(f"  NOTE: bandwidth {bw.note}")
    return lines


def targets_table(report: "BenchReport") -> str:
    t = report.targets
    lines = [f"Targets ({t.probe} {t.quant} shape probe, measured here)", "",
             "| target | measured | result | bandwidth needed |", "|---|---|---|---:|"]
    for row in t.rows:
        need = f"{row.bandwidth_needed_gbps:.0f} GB/s" if row.bandwidth_needed_gbps is not None else ""
        lines.append(f"| {row.name} | {row.measured} | {'PASS' if row.passed else 'FAIL'} | {need} |")
    lines.append("")
    lines.append(f"Device bandwidth: {t.bandwidth_gbps['device']:.1f} GB/s (needed figures assume this device's "
                 f"measured {100 * (t.roofline.efficiency or 1):.0f}% roofline efficiency)")
    if t.roofline.note:
        lines.append(f"NOTE: {t.roofline.note}")
    return "\n".join(lines)


def _plots(report: "BenchReport", folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for kind in ("tg", "pp"):
        rows = [r for r in report.results if r.test.startswith(kind)]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.5))
        labels = [f"{Path(r.model_filename).name[:40]}\n{r.quant} ({r.backend})" for r in rows]
        ax.barh(labels, [r.avg_ts for r in rows], xerr=[r.stddev_ts for r in rows], color="tab:blue")
        ax.set_xlabel("tokens/s")
        ax.set_title(f"{'token generation' if kind == 'tg' else 'prompt processing'} ({rows[0].test})")
        fig.tight_layout()
        fig.savefig(folder / f"{kind}.png", dpi=100)
        plt.close(fig)
        files.append(f"{kind}.png")
    if report.rooflines:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        roofs = list(report.rooflines.items())
        xs = [roof.bytes_per_token / 1e9 for _, roof in roofs]
        lo, hi = min(xs) * 0.5, max(xs) * 2
        grid = [lo * (hi / lo) ** (i / 50) for i in range(51)]
        ax.plot(grid, [report.bandwidth_gbps / x for x in grid], "k-",
                label=f"roofline: {report.bandwidth_gbps:.1f} GB/s / bytes per token")
        for name, roof in roofs:
            ax.plot(roof.bytes_per_token / 1e9, roof.tg_measured, "o", label=Path(name).name[:40])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("GB read per generated token")
        ax.set_ylabel("tokens/s")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "roofline.png", dpi=100)
        plt.close(fig)
        files.append("roofline.png")
    return files


def write_report(report: "BenchReport", folder: Path, title: str = "ondevice bench report",
                 preamble: str = "") -> Path:
    """Write report.md, report.json and the PNG plots into `folder`; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = _plots(report, folder)
    cfg = report.config
    md = [f"# {title}", "", preamble, "" if preamble else "",
          f"Settings: -p {cfg.n_prompt} -n {cfg.n_gen} -r {cfg.repetitions} -t {cfg.threads or 'auto'}, "
          f"KV cache {cfg.kv_type}; mean ± std over repetitions after one warm-up; random prompt tokens.", "",
          markdown_table(report.results), "", "## Roofline", "", *roofline_lines(report), ""]
    if report.targets:
        md += ["## Device targets", "", targets_table(report), ""]
    md += [f"![{p}]({p})" for p in plots]
    (folder / "report.md").write_text("\n".join(md) + "\n")
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return folder
