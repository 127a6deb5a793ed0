"""A sweep's merged outputs: sweep.csv and sweep.json (one row per cell), pareto.png and report.md.

The plot puts every evaluated variant at (size, mean KLD) and colours it by decode tok/s, with each model's Pareto
front (`quantize.report.pareto_front`: nothing else is both smaller and closer to f16) joined. The report recommends,
for each RAM budget, the variant `quantize.recommend.recommend` picks among a model's variants: the smallest one
within the quality bound whose weights and KV cache fit.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

from bench.sweep import CellResult, SweepReport
from ondevice.files import atomic_output

MB = 1024 * 1024
COLUMNS = [f.name for f in fields(CellResult) if f.name != "settings"]


def csv_text(rows: Sequence[CellResult]) -> str:
    """The sweep table as CSV (every field but the settings, which sweep.json keeps)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return buf.getvalue()


def _fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def recommendations(rows: Sequence[CellResult], ram_gb: Sequence[float], max_kld: float | None,
                    ctx: int) -> list[tuple[str, float, str]]:
    """(model, budget GB, sentence) for each model and budget, from `quantize.recommend.recommend` on the model's
    finished variants. Needs the variant files (it reads their shapes): cells that ran on other nodes without a
    shared filesystem are left out, and said so."""
    from quantize.recommend import recommend

    out = []
    for model in dict.fromkeys(r.model for r in rows):
        here = [r for r in rows if r.model == model and r.status == "ok"]
        present = [r for r in here if r.path and Path(r.path).exists()]
        if not present:
            if here:
                out.append((model, 0.0, "variant files are not on this machine (made on other nodes): "
                                        "no recommendation"))
            continue
        variants = [{"name": r.cell, "format": r.format, "qtype": r.qtype, "path": r.path,
                     "size_bytes": r.size_bytes, "bpw": r.bpw or 0.0, "kld_mean": r.kld_mean} for r in present]
        bound = max_kld if max_kld is not None and any(r.kld_mean is not None for r in present) else None
        for budget in ram_gb:
            out.append((model, float(budget), recommend(variants, budget, bound, ctx).reason))
    return out


def markdown(report: SweepReport, recs: list[tuple[str, float, str]], max_kld: float | None, ctx: int,
             plot_name: str) -> str:
    """The report: settings, the table, failures, the plot and one recommendation per model and RAM budget."""
    c = report.config
    lines = [f"# Sweep: {len(report.rows)} cells on the {report.engine} engine", "",
             f"{len(report.ran)} cells run now, {len(report.skipped)} reused from earlier runs, "
             f"{len(report.failed)} failed; {report.seconds:.0f} s wall.", ""]
    quality = (f"mean KLD and PPL against the f16 of the same weights, {c.chunks} windows of {c.window} tokens of "
               f"the pydoc text" if c.evaluate else "not evaluated (run with --eval)")
    speed = f"bench -p {c.n_prompt} -n {c.n_gen} -r {c.repetitions}" if c.bench else "not benched (run with --bench)"
    lines.append(f"Quality: {quality}. Speed: {speed}, threads {c.threads or 'default'}.")
    lines += ["", "| cell | size MB | bits/weight | PPL | ΔPPL | mean KLD | KLD p99 | same top % | pp tok/s | "
                  "tg tok/s | peak RSS MB | cell s | host |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report.rows:
        if r.status != "ok":
            continue
        lines.append(f"| {r.cell} | {r.size_bytes / MB:.1f} | {_fmt(r.bpw, 2)} | {_fmt(r.ppl, 3)} | "
                     f"{_fmt(r.delta_ppl, 3)} | {_fmt(r.kld_mean, 5)} | {_fmt(r.kld_p99, 4)} | "
                     f"{_fmt(r.same_top_pct, 2)} | {_fmt(r.pp_tok_s, 1)} | {_fmt(r.tg_tok_s, 1)} | "
                     f"{_fmt(r.peak_rss_bytes / MB if r.peak_rss_bytes else None, 0)} | {_fmt(r.seconds, 0)} | "
                     f"{r.host or ''} |")
    if report.failed:
        lines += ["", "## Failed cells", ""]
        lines += [f"- {r.cell} ({r.attempts} attempts): {r.error}" for r in report.failed]
    lines += ["", f"![size vs KLD vs tok/s]({plot_name})", "", "## Recommendation per RAM budget", "",
              f"Weights + KV cache at {ctx} tokens must fit" + (f", mean KLD <= {max_kld}" if max_kld is not None
                                                                 else "") + ".", ""]
    lines += [f"- **{model}**, {budget:g} GB: {reason}" if budget else f"- **{model}**: {reason}"
              for model, budget, reason in recs]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[CellResult], path: Path) -> Path:
    """Size vs mean KLD (log), colour = decode tok/s, each model's Pareto front joined; without quality numbers,
    size vs tok/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quantize.report import pareto_front

    ok = [r for r in rows if r.status == "ok"]
    quality = [r for r in ok if r.kld_mean is not None]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    if quality:
        speeds = [r.tg_tok_s for r in quality if r.tg_tok_s is not None]
        scatter = None
        for marker, model in zip("osD^v<>p*h", dict.fromkeys(r.model for r in quality)):
            mine = [r for r in quality if r.model == model]
            xs = [r.size_bytes / MB for r in mine]
            ys = [max(r.kld_mean, 1e-6) for r in mine]
            colours = [r.tg_tok_s if r.tg_tok_s is not None else float("nan") for r in mine]
            scatter = ax.scatter(xs, ys, c=colours if speeds else "tab:blue", cmap="viridis", marker=marker, s=60,
                                 vmin=min(speeds) if speeds else None, vmax=max(speeds) if speeds else None,
                                 edgecolors="black", linewidths=0.5, zorder=3, label=model)
            for r, x, y in zip(mine, xs, ys):
                ax.annotate(r.qtype, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
            front = pareto_front(list(zip(xs, ys)))
            fx, fy = zip(*sorted((xs[i], ys[i]) for i in front))
            ax.plot(fx, fy, color="tab:red", linewidth=1, zorder=2)
        if speeds and scatter is not None:
            fig.colorbar(scatter, ax=ax, label="decode tok/s")
        ax.set_yscale("log")
        ax.set_ylabel("mean KL divergence vs f16 (red: Pareto front)")
        ax.legend(fontsize=8)
    elif ok and any(r.tg_tok_s is not None for r in ok):
        for r in ok:
            if r.tg_tok_s is not None:
                ax.scatter([r.size_bytes / MB], [r.tg_tok_s], color="tab:blue", zorder=3)
                ax.annotate(r.cell, (r.size_bytes / MB, r.tg_tok_s), textcoords="offset points", xytext=(5, 4),
                            fontsize=7)
        ax.set_ylabel("decode tok/s")
    else:
        ax.text(0.5, 0.5, "no quality or speed numbers (run with --eval and/or --bench)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("size on disk (MB)")
    ax.set_title("sweep: size vs quality vs decode speed", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_report(report: SweepReport, out_dir: Path, ram_gb: Sequence[float] = (2, 4, 8, 16),
                 max_kld: float | None = None, ctx: int = 2048) -> dict[str, str]:
    """Write sweep.csv, sweep.json, pareto.png and report.md into out_dir (each atomically); return their paths.
    Parquet is not written: it would need pyarrow, and the CSV and JSON carry the same table."""
    out_dir = Path(out_dir)
    files = {"csv": out_dir / "sweep.csv", "json": out_dir / "sweep.json", "plot": out_dir / "pareto.png",
             "markdown": out_dir / "report.md"}
    report.files = {k: str(v) for k, v in files.items()}
    recs = recommendations(report.rows, ram_gb, max_kld, ctx)
    with atomic_output(files["csv"]) as tmp:
        tmp.write_text(csv_text(report.rows))
    plot(report.rows, files["plot"])
    with atomic_output(files["markdown"]) as tmp:
        tmp.write_text(markdown(report, recs, max_kld, ctx, files["plot"].name))
    data = report.to_dict()
    data["recommendations"] = [{"model": m, "ram_gb": b, "reason": s} for m, b, s in recs]
    with atomic_output(files["json"]) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return report.files
