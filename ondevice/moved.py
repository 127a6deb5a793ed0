"""Old module paths of the runtime, kept importable with a DeprecationWarning.

Version 0.3 moved the runtime's flat modules into sub-packages by concern (docs/ARCHITECTURE.md, section 2b):
`ondevice.sampling` is now `ondevice.decoding.sampling`, `ondevice.store` is `ondevice.models.store`, and so on.
Code written against 0.2 keeps working: `import ondevice.sampling` (or `from ondevice.store import resolve`, or the
attribute `ondevice.sampling`) gives the module at its new path, the same module object, and warns once. Modules
that left the runtime for the tool that uses them (`native_tools`, `interleave`, the soak) are not aliased: the
runtime imports no tool.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED: dict[str, str] = {
    **{f"ondevice.{m}": f"ondevice.machine.{m}"
       for m in ("cpu", "hugepages", "providers", "bandwidth", "autoconfig", "doctor")},
    **{f"ondevice.{m}": f"ondevice.models.{m}"
       for m in ("store", "hub", "catalog", "gguf_file", "onnx_folder", "model_info", "memory", "chat_template")},
    **{f"ondevice.{m}": f"ondevice.decoding.{m}"
       for m in ("sampling", "structured", "schema_check", "tools", "tool_formats", "speculative", "request",
                 "messages")},
    **{f"ondevice.{m}": f"ondevice.backends.{m}" for m in ("remote", "options")},
    **{f"ondevice.{m}": f"ondevice.routing.{m}" for m in ("router", "privacy")},
}


def _warn(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} moved to {new} in ondevice 0.3; import it from there", DeprecationWarning,
                  stacklevel=stacklevel)


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path (one module object, not a copy)."""

    def __init__(self) -> None:
        self._specs: dict[str, object] = {}  # new path -> the module's own spec

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        _warn(spec.name, MOVED[spec.name])
        module = importlib.import_module(MOVED[spec.name])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # Already executed at its new path; the import system has just stamped the old path's spec on it: give it
        # back its own, so that reloads and pickles keep using the new path.
        module.__spec__ = self._specs[module.__name__]


def install() -> None:
    """Put the alias finder on `sys.meta_path` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())


def module_attribute(name: str):
    """`ondevice.<name>` for a moved module name (the package's `__getattr__`), else AttributeError."""
    new = MOVED.get(f"ondevice.{name}")
    if new is None:
        raise AttributeError(f"module 'ondevice' has no attribute {name!r}")
    _warn(f"ondevice.{name}", new, stacklevel=4)  # the caller of ondevice.__getattr__
    return importlib.import_module(new)
