"""The bandwidth anchor: STREAM-style kernels at pinned thread counts with a spread, cached per machine with a date.

No speed limits here (the machine is shared): only that the measurement has the shape it claims, that the cache
returns the same figure until asked to measure again, and that an efficiency above 100% is called out.
"""

from __future__ import annotations

import json
import os

import pytest

from ondevice.machine import bandwidth
from ondevice.machine.bandwidth import anchor_note, machine_bandwidth, measure_bandwidth, thread_counts
from ondevice.machine.cpu import detect_cpu
from ondevice.errors import InvalidInput


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A store of its own, so the cache starts empty whatever other tests measured."""
    monkeypatch.setenv("ONDEVICE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module", autouse=True)
def quick():
    """On a busy machine passes go on for up to 2 s per kernel and thread count; 0.2 s is enough for these tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bandwidth, "MAX_SECONDS", 0.2)
        yield


@pytest.fixture(scope="module")
def small(quick):
    """One quick measurement on a 64 MiB buffer (below the default size, which only makes it faster)."""
    return measure_bandwidth(passes=3, buffer_mb=64)


def test_every_kernel_runs_at_1_the_physical_cores_and_all_cpus(small):
    cpu = detect_cpu()
    counts = sorted({1, cpu.physical_cores, cpu.logical_cores})
    assert thread_counts() == counts
    assert [(r.kernel, r.threads) for r in small.runs] == [(k, n) for k in ("read", "triad") for n in counts]
    for run in small.runs:
        assert 0 < run.min_gbps <= run.median_gbps <= run.max_gbps
        assert run.passes >= 3 and 0 <= run.undisturbed <= run.passes and 0 <= run.spread_pct < 100
        assert run.pinned == hasattr(os, "sched_setaffinity")


def test_the_anchor_is_the_best_read_pass_at_the_physical_cores(small):
    read = {r.threads: r for r in small.runs if r.kernel == "read"}
    assert small.threads == detect_cpu().physical_cores
    assert small.gbps == read[small.threads].max_gbps
    assert small.read_gbps(1) == read[1].max_gbps
    assert small.read_gbps(10_000) == read[max(read)].max_gbps  # more threads than measured: the largest count
    assert small.buffer_mb == 64 and small.measured_at.endswith("+00:00") and len(small.fingerprint) == 16


def test_bad_settings_are_one_clear_error():
    with pytest.raises(InvalidInput, match="passes"):
        measure_bandwidth(passes=1)
    with pytest.raises(InvalidInput, match="kernels"):
        measure_bandwidth(kernels=("copy",), buffer_mb=64)
    with pytest.raises(InvalidInput, match="thread counts"):
        measure_bandwidth(threads=[0], buffer_mb=64)


def test_machine_bandwidth_is_cached_per_machine_until_refreshed(fresh_home, monkeypatch):
    calls = []
    real = bandwidth.measure_bandwidth

    def counted(**kw):
        calls.append(kw)
        report = real(passes=3, buffer_mb=64)
        report.busy = False  # the cache's behaviour, not this shared machine's load, is under test
        return report

    monkeypatch.setattr(bandwidth, "measure_bandwidth", counted)
    first = machine_bandwidth()
    assert not first.cached and len(calls) == 1
    again = machine_bandwidth()
    assert again.cached and len(calls) == 1
    assert (again.gbps, again.measured_at, again.runs) == (first.gbps, first.measured_at, first.runs)
    data = json.loads(bandwidth.cache_path().read_text())
    assert list(data["machines"]) == [first.fingerprint]
    fresh = machine_bandwidth(refresh=True)
    assert not fresh.cached and len(calls) == 2
    assert machine_bandwidth().measured_at == fresh.measured_at  # the new one replaced the old one


def test_a_corrupt_cache_is_measured_again(fresh_home, monkeypatch):
    monkeypatch.setattr(bandwidth, "measure_bandwidth", lambda **kw: measure_bandwidth(passes=3, buffer_mb=64))
    bandwidth.cache_path().parent.mkdir(parents=True, exist_ok=True)
    bandwidth.cache_path().write_text("{not json")
    assert machine_bandwidth().cached is False
    assert machine_bandwidth().cached is True


def test_a_busy_measurement_says_so_and_is_replaced_once_the_machine_is_quiet(fresh_home, monkeypatch):
    def busy_then_quiet(**kw):
        report = measure_bandwidth(passes=3, buffer_mb=64)
        report.busy, report.load_average = True, 9.5
        return report

    monkeypatch.setattr(bandwidth, "measure_bandwidth", busy_then_quiet)
    first = machine_bandwidth()
    assert "busy (load average 9.5;" in first.note and "passes undisturbed" in first.note
    monkeypatch.setattr(bandwidth, "_load_average", lambda: 0.0)
    assert machine_bandwidth().cached is False  # quiet now: measured again rather than trusting the busy figure


def test_efficiency_above_100_percent_blames_the_anchor():
    assert anchor_note(0.95, 30.0) == "" and anchor_note(None, 30.0) == ""
    note = anchor_note(1.07, 34.4)
    assert "107%" in note and "anchor is wrong" in note and "doctor --bandwidth" in note



def test_a_pass_the_scheduler_interrupted_is_not_counted(monkeypatch):
    """A pass whose thread was off its CPU (its CPU clock ran < 90% of the wall time) is left out of min/median/max."""
    from ondevice.machine.bandwidth import _timed_passes

    calls = []

    def run(i, k):
        calls.append(k)
        if len(calls) % 2:  # every other pass sleeps: wall time without CPU time, as when another job runs
            import time
            time.sleep(0.01)
        else:
            sum(range(20000))

    timed, _ = _timed_passes(run, 1, 3, [0], passes=6)
    assert len(timed) >= 6
    # calls 1, 3, 5, ... sleep; the first two are warm-ups, so timed passes 0, 2, 4 slept
    assert not any(timed[j].undisturbed for j in (0, 2, 4))
    assert calls[:5] == [0, 1, 2, 0, 1]  # each pass reads the next window
