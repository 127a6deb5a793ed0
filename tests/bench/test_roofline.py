"""The roofline reports efficiency as measured, and says when the bandwidth anchor is the thing that is wrong."""

from __future__ import annotations


def test_the_roofline_reports_efficiency_as_measured_above_100_percent():
    from bench.probe import probe_info
    from bench.roofline import roofline

    info = probe_info("llama3-8b", "Q4_K_M")
    roof = roofline(info, 34.4, depth=16, tg_measured=8.0)
    assert roof.efficiency > 1 and roof.gap_pct < 0 and "anchor is wrong" in roof.note
    assert roofline(info, 60.0, depth=16, tg_measured=8.0).note == ""
