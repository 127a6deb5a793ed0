"""Side-by-side comparisons that a busy machine cannot bias: A, B, B, A, A, B ... in rounds, one ratio per round.

Absolute times on a shared machine drift (other jobs, clock frequency, heat), so two figures measured one after the
other compare the machine's moods as much as the two things. Measured in alternation, each round's A and B see
nearly the same machine, and the ratio A / B of one round cancels what they shared. `interleave` runs one warm-up of
each, then `rounds` rounds; the order flips every round (A B, B A, ...), so a steady drift favours neither. It
reports the median of each side and the median, min and max of the per-round ratios: the spread of the ratio, not
of the absolute figures, is what says whether A and B differ.

`bench` uses it for the public API against the bare libllama loop (in one process) and against llama.cpp's own
llama-bench (alternating processes), `bench.scenarios` for plain against lookup decoding, and the server soak
(`ondevice bench soak --versus URL`) for two servers.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Interleaved:
    """Per-round values of A and B (same rounds, same order of measurement) and what they say together."""

    a_label: str
    b_label: str
    a: list[float]                 # the metric of A, one per round
    b: list[float]
    a_results: list[Any] = field(default_factory=list, repr=False)  # what run_a returned, per round
    b_results: list[Any] = field(default_factory=list, repr=False)

    @property
    def rounds(self) -> int:
        return len(self.a)

    @property
    def ratios(self) -> list[float]:
        """A / B of each round."""
        return [x / y if y else float("nan") for x, y in zip(self.a, self.b)]

    @property
    def ratio_median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def ratio_min(self) -> float:
        return min(self.ratios)

    @property
    def ratio_max(self) -> float:
        return max(self.ratios)

    @property
    def a_median(self) -> float:
        return statistics.median(self.a)

    @property
    def b_median(self) -> float:
        return statistics.median(self.b)

    def on(self, key: Callable[[Any], float]) -> "Interleaved":
        """The same rounds, with another metric taken from what each run returned (a run that measures two
        things, e.g. pp and tg, is compared on each)."""
        return Interleaved(self.a_label, self.b_label, [key(r) for r in self.a_results],
                           [key(r) for r in self.b_results], self.a_results, self.b_results)

    def summary(self, unit: str = "") -> str:
        """One line: both medians and the ratio with its per-round range."""
        u = f" {unit}" if unit else ""
        return (f"{self.a_label} {self.a_median:.2f}{u} vs {self.b_label} {self.b_median:.2f}{u} (medians of "
                f"{self.rounds} interleaved rounds); {self.a_label} / {self.b_label} = {self.ratio_median:.3f} "
                f"(per round {self.ratio_min:.3f}-{self.ratio_max:.3f})")

    def to_dict(self) -> dict:
        return {"a_label": self.a_label, "b_label": self.b_label, "rounds": self.rounds,
                "a": [round(x, 4) for x in self.a], "b": [round(x, 4) for x in self.b],
                "a_median": round(self.a_median, 4), "b_median": round(self.b_median, 4),
                "ratios": [round(r, 4) for r in self.ratios], "ratio_median": round(self.ratio_median, 4),
                "ratio_min": round(self.ratio_min, 4), "ratio_max": round(self.ratio_max, 4)}


def interleave(run_a: Callable[[], Any], run_b: Callable[[], Any], rounds: int = 6, warmup: int = 1,
               labels: tuple[str, str] = ("A", "B"), key: Callable[[Any], float] | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> Interleaved:
    """Run `run_a` and `run_b` alternately: `warmup` untimed pair(s), then `rounds` rounds in the order A B, B A,
    A B, ... Each call returns the metric (a number; higher or lower is the caller's business) or anything `key`
    turns into one. progress(description, done, total) is called before each run."""
    from ondevice.errors import InvalidInput

    if rounds < 1 or warmup < 0:
        raise InvalidInput(f"interleaved comparisons need rounds >= 1 and warmup >= 0, got {rounds} and {warmup}")
    key = key or float
    total, done = 2 * (warmup + rounds), 0

    def step(which: str, fn: Callable[[], Any], label: str) -> Any:
        nonlocal done
        if progress:
            progress(f"{label} {which}", done, total)
        value = fn()
        done += 1
        return value

    for i in range(warmup):
        step(f"warm-up {i + 1}", run_a, labels[0])
        step(f"warm-up {i + 1}", run_b, labels[1])
    a_res, b_res = [], []
    for r in range(rounds):
        order = ((0, run_a), (1, run_b)) if r % 2 == 0 else ((1, run_b), (0, run_a))
        for side, fn in order:
            value = step(f"round {r + 1}/{rounds}", fn, labels[side])
            (a_res if side == 0 else b_res).append(value)
    if progress:
        progress("done", total, total)
    return Interleaved(labels[0], labels[1], [key(v) for v in a_res], [key(v) for v in b_res], a_res, b_res)
