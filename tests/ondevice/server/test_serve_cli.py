"""`ondevice serve` refuses a bad model name with one line and exit code 2, before starting anything."""

from __future__ import annotations

from click.testing import CliRunner

from ondevice.cli.main import cli
from ondevice.server import ServerSettings


def test_unknown_model_is_one_line_and_exit_code_2():
    result = CliRunner().invoke(cli, ["serve", "no-such-model", "--port", "0"])
    assert result.exit_code == 2
    assert "no model named 'no-such-model'" in result.output
    assert "Traceback" not in result.output


def test_unknown_embed_model_is_refused_too():
    result = CliRunner().invoke(cli, ["serve", "smollm2-135m", "--embed-model", "nope", "--port", "0"])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_defaults_are_loopback_without_cors_and_a_bounded_queue():
    settings = ServerSettings()
    assert settings.host == "127.0.0.1"
    assert settings.cors_origins == []
    assert settings.api_key is None
    assert 0 < settings.max_queue < 1000
