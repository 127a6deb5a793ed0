"""The soak's guard rails (`ondevice bench soak`): loopback only, rounds >= 1 with --versus; one line, exit 2."""

from __future__ import annotations

from click.testing import CliRunner

from ondevice.cli.main import cli


def _soak(*args: str):
    return CliRunner().invoke(cli, ["bench", "soak", *args])


def test_versus_refuses_a_second_server_that_is_not_on_loopback():
    result = _soak("--url", "http://127.0.0.1:8601", "--versus", "http://10.0.0.5:8608", "--seconds", "1")
    assert result.exit_code == 2 and "only targets loopback" in result.output


def test_versus_needs_at_least_one_round():
    result = _soak("--url", "http://127.0.0.1:8601", "--versus", "http://127.0.0.1:8608", "--rounds", "0")
    assert result.exit_code == 2 and "--rounds must be at least 1" in result.output
