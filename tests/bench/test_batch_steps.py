"""The batch-step benchmark times steady-state steps of the server's engine with N sequences decoding together."""

from __future__ import annotations

import pytest

from bench.batch_steps import main, measure


def test_rows_follow_the_requested_sequence_counts(smollm2):
    rows = measure(smollm2, [1, 3], steps=3)
    assert [r.sequences for r in rows] == [1, 3]
    assert rows[0].cost_vs_one == 1.0
    for r in rows:
        assert r.ms_per_step > 0 and r.tokens_per_s == pytest.approx(r.sequences * 1000 / r.ms_per_step, rel=0.01)


@pytest.mark.parametrize("args", [["--sequences", "0,2"], ["--sequences", "a"], ["--steps", "0"]])
def test_bad_arguments_are_one_line_and_exit_code_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["smollm2-135m", *args])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: --sequences")
