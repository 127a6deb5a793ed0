"""A third-party package adds a command and a backend the way quantize and bench do: through entry points.

The plugin here is a real distribution on disk (a package plus its .dist-info with entry_points.txt, what
`pip install` writes), found by importlib.metadata on PYTHONPATH in a fresh process; nothing patches the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = {
    "hello_plugin/__init__.py": '''
        """A third-party ondevice plugin: one command, one backend."""
    ''',
    "hello_plugin/cli.py": '''
        import click

        from ondevice.cli.common import json_option, print_json


        @click.command("hello")
        @click.argument("name")
        @json_option
        def hello_command(name, as_json):
            """Greets NAME (a plugin command)."""
            if as_json:
                print_json({"greeting": f"hello, {name}"})
            else:
                click.echo(f"hello, {name}")
    ''',
    "hello_plugin/broken.py": '''
        import a_dependency_that_is_not_installed  # noqa: F401
    ''',
    "hello_plugin/backend.py": '''
        import numpy as np

        from ondevice.backends import Backend


        class ByteHistogramBackend(Backend):
            """Embeds text as its normalised byte histogram: a tiny backend that needs no runtime."""

            name = "byte-histogram"
            formats = ("gguf",)

            def embed(self, texts):
                out = np.zeros((len(texts), 256), dtype=np.float32)
                for row, text in zip(out, texts):
                    data = text.encode()
                    np.add.at(row, np.frombuffer(data, dtype=np.uint8), 1.0)
                    row /= max(len(data), 1)
                return out

            def close(self):
                pass


        def register():
            from ondevice import register_backend

            register_backend("byte-histogram", "hello_plugin.backend:ByteHistogramBackend", formats=("gguf",))
    ''',
    "hello_plugin-0.1.dist-info/METADATA": '''
        Metadata-Version: 2.1
        Name: hello-plugin
        Version: 0.1
    ''',
    "hello_plugin-0.1.dist-info/entry_points.txt": '''
        [ondevice.commands]
        hello = hello_plugin.cli:hello_command
        broken = hello_plugin.broken:command

        [ondevice.backends]
        byte-histogram = hello_plugin.backend:register
    ''',
}


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    for name, text in PLUGIN.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def ondevice(env, *args):
    return subprocess.run([sys.executable, "-m", "ondevice", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_plugin_command_joins_the_ondevice_command(plugin_env):
    listing = ondevice(plugin_env, "--help")
    assert listing.returncode == 0 and "hello" in listing.stdout and "Greets NAME" in listing.stdout
    result = ondevice(plugin_env, "hello", "world", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"greeting": "hello, world"}


def test_a_plugin_command_whose_dependency_is_missing_says_so_in_one_line(plugin_env):
    result = ondevice(plugin_env, "broken", "anything")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: `ondevice broken` needs 'a_dependency_that_is_not_installed', which is "
                                     "not installed (pip install 'ondevice-toolkit[all]')")


def test_a_plugin_backend_loads_through_ondevice_load(plugin_env, smollm2_path):
    code = f"""
import json, ondevice
from ondevice.backends import backend_names
with ondevice.load({str(smollm2_path)!r}, backend="byte-histogram") as m:
    vector = m.embed("aab")[0]
print(json.dumps({{"names": backend_names(), "backend": m.backend_name, "a": float(vector[97]),
                  "b": float(vector[98]), "sum": float(vector.sum())}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=plugin_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "byte-histogram" in out["names"] and "gguf" in out["names"]
    assert out["backend"] == "byte-histogram"
    assert (round(out["a"], 4), round(out["b"], 4), round(out["sum"], 4)) == (0.6667, 0.3333, 1.0)


def test_without_the_plugin_on_the_path_there_is_no_such_command():
    result = ondevice(dict(os.environ), "hello", "world")
    assert result.returncode == 2 and "No such command 'hello'" in result.stderr


def test_two_packages_registering_one_name_is_an_error_naming_both(monkeypatch):
    from importlib.metadata import EntryPoint

    from ondevice import plugins
    from ondevice.errors import BackendUnavailable

    clash = [EntryPoint("hello", "pkg_a.cli:hello", plugins.COMMANDS_GROUP),
             EntryPoint("hello", "pkg_b.cli:hello", plugins.COMMANDS_GROUP)]
    monkeypatch.setattr(plugins, "entry_points", lambda group: clash if group == "test.clash" else [])
    plugins.plugin_entry_points.cache_clear()
    try:
        with pytest.raises(BackendUnavailable, match="pkg_a.cli:hello.*pkg_b.cli:hello"):
            plugins.plugin_entry_points("test.clash")
    finally:
        plugins.plugin_entry_points.cache_clear()
    assert set(plugins.HOOKS) >= {plugins.COMMANDS_GROUP, plugins.BACKENDS_GROUP, plugins.MATERIALIZERS_GROUP}
