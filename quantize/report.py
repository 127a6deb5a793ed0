"""Write a QuantizeReport as report.json (machine-readable), report.md (a table) and quality.png (size vs KLD)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

MB = 1024 * 1024


def _fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both size and KLD (smaller is better on both), by size."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def to_json(report) -> dict:
    """The report as plain JSON data: {"source", ..., "reference": {...}, "variants": [{name, format, ...}]}."""
    return json.loads(json.dumps(dataclasses.asdict(report), default=str))


def markdown(report) -> str:
    """A Markdown table of every variant (the reference first), with the run's settings."""
    lines = [f"# Quantisation report: {report.source}", ""]
    if report.evaluated:
        lines.append(f"Quality against **{report.reference.name}** on {report.text}: {report.eval_chunks} windows of "
                     f"{report.window} tokens, second half of each scored (as `llama-perplexity --kl-divergence`).")
    else:
        lines.append("Quality not evaluated (run with --eval).")
    if getattr(report, "imatrix", None):
        lines.append(f"GGUF variants made with an importance matrix ({report.imatrix['entries']} tensors, calibrated "
                     f"on {report.imatrix['text']}).")
    lines += ["", "| variant | format | type | size MB | bits/weight | PPL ± se | ΔPPL | mean KLD ± se | KLD p99 "
                  "| same top % | RMS Δp % | decode tok/s | made in s | status |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for v in [report.reference, *report.variants]:
        ppl = "—" if v.ppl is None else f"{v.ppl:.3f} ± {v.ppl_err or 0:.3f}"
        kld = "—" if v.kld_mean is None else f"{v.kld_mean:.5f} ± {v.kld_err or 0:.5f}"
        status = getattr(v, "status", "ok")
        if status != "ok" and v.sanity:
            status = f"**{status}**: {v.sanity.get('reason', '')}"
        lines.append(f"| {v.name} | {v.format} | {v.qtype} | {v.size_bytes / MB:.1f} | {v.bpw:.2f} | {ppl} | "
                     f"{_fmt(v.delta_ppl, 3)} | {kld} | {_fmt(v.kld_p99, 4)} | "
                     f"{_fmt(v.same_top_pct, 2)} | {_fmt(v.rms_dp_pct, 2)} | {_fmt(v.decode_tps, 1)} | "
                     f"{_fmt(v.seconds, 1)} | {status} |")
    lines += ["", "Size is the file (GGUF) or folder (ONNX) on disk; bits/weight = size × 8 / parameters. ± se: "
                  "standard error of the mean. status: every variant is checked on a short window right after it "
                  "is written; a broken one (wrong on this machine) is renamed NAME.broken and not evaluated.", ""]
    return "\n".join(lines)


def plot(report, path: Path) -> Path:
    """File size vs mean KLD, one point per evaluated variant, Pareto front joined and marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in report.variants if v.kld_mean is not None and getattr(v, "status", "ok") == "ok"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if variants:
        points = [(v.size_bytes / MB, max(v.kld_mean, 1e-6)) for v in variants]
        front = pareto_front(points)
        for i, (v, (x, y)) in enumerate(zip(variants, points)):
            on_front = i in front
            ax.scatter([x], [y], s=60 if on_front else 30, marker="o" if v.format == "gguf" else "s",
                       color="tab:red" if on_front else "tab:gray", zorder=3)
            ax.annotate(v.qtype if v.format == "gguf" else f"onnx {v.qtype}", (x, y), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
        fx, fy = zip(*sorted(points[i] for i in front))
        ax.plot(fx, fy, color="tab:red", linewidth=1, label="Pareto front (smaller and closer to f16)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "not evaluated (run with --eval)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("size on disk (MB)")
    ax.set_ylabel(f"mean KL divergence vs {report.reference.name}")
    ax.set_title(f"{report.source}: size vs quality (circles GGUF, squares ONNX)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report, out_dir: Path) -> dict[str, str]:
    """Write report.json, report.md and quality.png into out_dir; return their paths by kind."""
    out_dir = Path(out_dir)
    files = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "plot": out_dir / "quality.png"}
    report.files = {k: str(v) for k, v in files.items()}
    files["json"].write_text(json.dumps(to_json(report), indent=2))
    files["markdown"].write_text(markdown(report))
    plot(report, files["plot"])
    return report.files
