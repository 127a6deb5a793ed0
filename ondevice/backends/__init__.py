"""Backend registry: runtimes plug in by name, and a model's format picks its default backend.

Built-ins are registered lazily (by module path) so that importing ondevice does not import every runtime.
A third-party backend calls `register_backend("name", "package.module:Class", formats=(...))`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ondevice.backends.base import Backend, Generation, StreamEvent, Timings
from ondevice.backends.text import TextBackend
from ondevice.errors import BackendUnavailable
from ondevice.decoding.sampling import SamplingParams


@dataclass(frozen=True)
class BackendEntry:
    name: str
    target: str            # "module:Class"
    formats: tuple[str, ...]
    requires: str          # the import that must succeed, for a clear "not installed" message


_REGISTRY: dict[str, BackendEntry] = {}
_DEFAULT_FOR_FORMAT: dict[str, str] = {}


def register_backend(name: str, target: str, formats: tuple[str, ...], requires: str = "") -> None:
    """Register a backend class under `name`; it becomes the default for any of `formats` not yet claimed."""
    _REGISTRY[name] = BackendEntry(name, target, formats, requires)
    for fmt in formats:
        _DEFAULT_FOR_FORMAT.setdefault(fmt, name)


def _load_plugins() -> None:
    """Backends that installed packages declare in the "ondevice.backends" entry-point group (ondevice/plugins.py)."""
    from ondevice.plugins import load_backend_plugins

    load_backend_plugins()


def backend_names() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered as `name`."""
    _load_plugins()
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
    entry = _REGISTRY[name]
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} needs {entry.requires or exc.name}, which is not installed "
                                 f"(run `make install`)") from None
    return getattr(module, class_name)


def backend_for_format(fmt: str) -> str:
    _load_plugins()
    if fmt not in _DEFAULT_FOR_FORMAT:
        raise BackendUnavailable(f"no backend runs {fmt!r} models; formats we run: {', '.join(sorted(_DEFAULT_FOR_FORMAT))}")
    return _DEFAULT_FOR_FORMAT[fmt]


register_backend("gguf", "ondevice.backends.llama_cpp_backend:LlamaCppBackend", ("gguf",), "llama-cpp-python")
register_backend("onnx-genai", "ondevice.backends.onnx_genai_backend:OnnxGenaiBackend", ("onnx-genai",),
                 "onnxruntime-genai")
register_backend("remote", "ondevice.backends.remote:RemoteBackend", ("remote",), "openai (the remote extra)")
register_backend("onnx-encoder", "ondevice.backends.onnx_encoder_backend:OnnxEncoderBackend", ("onnx-encoder",),
                 "onnxruntime and tokenizers")

__all__ = ["Backend", "TextBackend", "Generation", "SamplingParams", "StreamEvent", "Timings", "register_backend",
           "backend_class", "backend_for_format", "backend_names"]
