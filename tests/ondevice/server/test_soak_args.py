"""The soak script's guard rails for the interleaved two-server mode (`--versus`): loopback only, rounds >= 1."""

from __future__ import annotations

from bench.soak import main


def test_versus_refuses_a_second_server_that_is_not_on_loopback(capsys):
    assert main(["--url", "http://127.0.0.1:8601", "--versus", "http://10.0.0.5:8608", "--seconds", "1"]) == 2
    assert "only targets loopback" in capsys.readouterr().err


def test_versus_needs_at_least_one_round(capsys):
    assert main(["--url", "http://127.0.0.1:8601", "--versus", "http://127.0.0.1:8608", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err
