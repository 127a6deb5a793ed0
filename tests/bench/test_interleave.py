"""The interleaved comparison: A and B alternate (A B, B A, ...), one ratio per round, medians and range."""

from __future__ import annotations

import pytest

from ondevice.errors import InvalidInput
from bench.interleave import interleave


def test_rounds_alternate_the_order_after_a_warm_up_pair():
    calls, values = [], {"a": iter([99, 10, 12, 14]), "b": iter([99, 5, 4, 7])}

    def run(name):
        def f():
            calls.append(name)
            return next(values[name])
        return f

    c = interleave(run("a"), run("b"), rounds=3, warmup=1, labels=("fast", "slow"))
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert (c.a, c.b, c.rounds) == ([10, 12, 14], [5, 4, 7], 3)
    assert c.ratios == [2.0, 3.0, 2.0]
    assert (c.ratio_median, c.ratio_min, c.ratio_max, c.a_median, c.b_median) == (2.0, 2.0, 3.0, 12, 5)
    assert "fast 12.00 tok/s vs slow 5.00 tok/s" in c.summary("tok/s") and "2.000-3.000" in c.summary()
    assert c.to_dict()["ratios"] == [2.0, 3.0, 2.0]


def test_a_second_metric_is_compared_over_the_same_rounds():
    a = iter([{"tg": 10, "pp": 100}, {"tg": 20, "pp": 300}])
    b = iter([{"tg": 5, "pp": 200}, {"tg": 10, "pp": 300}])
    c = interleave(lambda: next(a), lambda: next(b), rounds=2, warmup=0, key=lambda d: d["tg"])
    assert c.ratios == [2.0, 2.0]
    assert c.on(lambda d: d["pp"]).ratios == [0.5, 1.0]


def test_progress_counts_every_run():
    seen = []
    interleave(lambda: 1, lambda: 1, rounds=2, warmup=1, progress=lambda d, i, n: seen.append((i, n)))
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and len(seen) == 7


def test_bad_rounds_are_refused():
    with pytest.raises(InvalidInput, match="rounds"):
        interleave(lambda: 1, lambda: 1, rounds=0)
