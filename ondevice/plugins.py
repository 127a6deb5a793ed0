"""Extension points: installed packages add commands, backends and model converters through entry points.

The runtime never imports the tools built on it. `quantize` and `bench` (and any third-party package) declare what
they add in their package metadata, the way `llm` plugins do, and `ondevice` finds it by group name:

    [project.entry-points."ondevice.commands"]       # a click command, joined as `ondevice NAME`
    hello = "my_pkg.cli:hello_command"

    [project.entry-points."ondevice.backends"]       # a function that calls ondevice.register_backend(...)
    my-runtime = "my_pkg.plugin:register"

    [project.entry-points."ondevice.materializers"]  # format -> function(path) -> path of a runnable model
    hf = "my_pkg.convert:to_runnable"

    [project.entry-points."ondevice.models_commands"]  # a click command, joined as `ondevice models NAME`
    catalog = "my_pkg.cli:catalog_command"

    [project.entry-points."ondevice.rag_commands"]     # a click command, joined as `ondevice rag NAME`
    bench = "my_pkg.cli:rag_bench_command"

Only names are read at start-up (package metadata, no imports); a plugin's module is imported when it is used.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Callable

from ondevice.errors import BackendUnavailable

COMMANDS_GROUP = "ondevice.commands"
BACKENDS_GROUP = "ondevice.backends"
MATERIALIZERS_GROUP = "ondevice.materializers"
# Panels of device targets for the web app's "Your device" page: name -> function(device: str | None) -> dict
# (see `device_target_panels`). bench registers its predicted seed-target table here.
DEVICE_TARGETS_GROUP = "ondevice.device_targets"


# Every hook, with the signature of what its entry point names (the contract a plugin implements).
HOOKS: dict[str, str] = {
    COMMANDS_GROUP: "a click.Command, joined as `ondevice NAME`",
    BACKENDS_GROUP: "register() -> None, which calls ondevice.register_backend(name, 'module:Class', formats=(...))",
    MATERIALIZERS_GROUP: "to_runnable(path: pathlib.Path) -> pathlib.Path (a folder of format NAME -> a runnable model)",
    DEVICE_TARGETS_GROUP: "panel(device: str | None) -> dict (a table for the web app's device page)",
    "ondevice.models_commands": "a click.Command, joined as `ondevice models NAME`",
    "ondevice.rag_commands": "a click.Command, joined as `ondevice rag NAME`",
}


def _provider(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name if dist else 'an unknown package'} ({ep.value})"

MODELS_COMMANDS_GROUP = "ondevice.models_commands"  # click commands joined as `ondevice models NAME`
RAG_COMMANDS_GROUP = "ondevice.rag_commands"  # click commands joined as `ondevice rag NAME` (bench's `rag bench`)


@lru_cache(maxsize=None)
def plugin_entry_points(group: str) -> dict[str, EntryPoint]:
    """Entry points of `group` by name, from every installed distribution. Two packages that register one name
    are an error naming both (never one of them silently winning)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise BackendUnavailable(f"two packages register {ep.name!r} in {group}: {_provider(other)} and "
                                     f"{_provider(ep)}; uninstall one")
        found.setdefault(ep.name, ep)
    return found


def command_names() -> list[str]:
    """Names of the commands that installed packages add to `ondevice`."""
    return sorted(plugin_entry_points(COMMANDS_GROUP))


def command_entry_point(name: str) -> EntryPoint | None:
    return plugin_entry_points(COMMANDS_GROUP).get(name)


_backends_loaded = False


def load_backend_plugins() -> None:
    """Call every "ondevice.backends" registration function once, so their backends join the registry."""
    global _backends_loaded
    if _backends_loaded:
        return
    _backends_loaded = True
    for ep in plugin_entry_points(BACKENDS_GROUP).values():
        try:
            register = ep.load()
        except ImportError as exc:  # a plugin whose own dependency is missing must not break the built-ins
            import warnings

            warnings.warn(f"backend plugin {ep.name!r} ({ep.value}) not loaded: {exc}", stacklevel=2)
            continue
        register()


def materializer(fmt: str) -> Callable[[Path], Path] | None:
    """The function that turns a `fmt` model into a runnable one (None: `fmt` runs as it is)."""
    ep = plugin_entry_points(MATERIALIZERS_GROUP).get(fmt)
    if ep is None:
        return None
    try:
        return ep.load()
    except ImportError as exc:
        dist = ep.dist.name if ep.dist else ep.value.partition(".")[0]
        raise BackendUnavailable(f"running a {fmt!r} model needs {exc.name or dist}, which is not installed "
                                 f"(pip install 'ondevice-toolkit[quantize]')") from None


__all__ = ["HOOKS", "COMMANDS_GROUP", "BACKENDS_GROUP", "MATERIALIZERS_GROUP", "plugin_entry_points", "command_names",
           "command_entry_point", "load_backend_plugins", "materializer"]


def device_target_panels(device: str | None = None) -> list[dict]:
    """What installed packages say about the device targets (the web app's device page shows each panel).

    Each "ondevice.device_targets" entry point is a function `(device: str | None) -> dict` with `title`, `columns`,
    `rows` (lists of cells), optionally `devices` (catalog choices: {name, title}), `device` (the one shown) and
    `note`. A plugin that fails to import or raises an OnDeviceError gives a panel that says so instead.
    """
    from ondevice.errors import OnDeviceError

    panels = []
    for name, ep in sorted(plugin_entry_points(DEVICE_TARGETS_GROUP).items()):
        try:
            panel = dict(ep.load()(device))
        except ImportError as exc:
            panel = {"title": name, "error": f"not available: needs {exc.name or ep.value}"}
        except OnDeviceError as exc:
            panel = {"title": name, "error": str(exc)}
        panel.setdefault("source", name)
        panels.append(panel)
    return panels
