"""The distillation report: held-out perplexities before/after, gap recovered, cost, loss curve (json + PNG)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPORT_JSON = "distill.json"
LOSS_PNG = "loss.png"


@dataclass
class HeldoutPPL:
    """Perplexity of teacher, pruned student before KD and distilled student on one held-out text."""

    tokens: int
    teacher: float
    pruned: float
    distilled: float

    @property
    def recovered(self) -> float:
        """(PPL_pruned - PPL_after) / (PPL_pruned - PPL_teacher): 1.0 = the whole pruning loss won back."""
        gap = self.pruned - self.teacher
        return (self.pruned - self.distilled) / gap if gap > 0 else float("nan")


@dataclass
class DistillReport:
    """Everything one `distill()` run measured; written to DIR/distill.json."""

    teacher: str
    student_dir: str
    teacher_params: int
    student_params: int
    teacher_layers: int
    kept_layers: list[int]
    dropped_layers: list[int]
    prune_method: str
    heldout: dict[str, HeldoutPPL]
    steps: int
    tokens_seen: int
    wall_s: float  # training loop only
    cpu_s: float  # process CPU time of the training loop (all threads)
    total_s: float  # everything: loading, pruning choice, evaluations, saving
    losses: list[tuple[int, float]]
    config: dict
    device: str
    data_source: str
    stopped_early: bool = False
    loss_png: str | None = None
    gguf: str | None = None
    prune_rounds: list[dict] = field(default_factory=list)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_seen / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        for name, ppl in self.heldout.items():
            data["heldout"][name]["recovered"] = ppl.recovered
        data["steps_per_s"] = self.steps_per_s
        data["tokens_per_s"] = self.tokens_per_s
        return data


def perplexity(model, chunks, batch: int = 4) -> float:
    """exp(mean next-token cross-entropy) of `model` on token chunks [n, seq_len]."""
    from quantize.distill.prune import mean_loss

    return math.exp(mean_loss(model, chunks, batch=batch))


def plot_losses(losses: list[tuple[int, float]], path: Path, title: str = "distillation loss") -> Path:
    """Loss per step (and a running mean) as a PNG, drawn with matplotlib's Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s, _ in losses]
    values = [v for _, v in losses]
    window = max(1, len(values) // 20)
    smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
              for i in range(len(values))]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, values, alpha=0.35, label="step loss")
    ax.plot(steps, smooth, label=f"mean of {window}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: DistillReport, out_dir: Path) -> Path:
    """Write DIR/distill.json (and the loss PNG when there are losses); return the json path."""
    out_dir = Path(out_dir)
    if report.losses:
        report.loss_png = str(plot_losses(report.losses, out_dir / LOSS_PNG))
    path = out_dir / REPORT_JSON
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return path
