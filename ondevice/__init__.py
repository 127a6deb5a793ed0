"""ondevice: run small language models on the device in your hands, offline.

    import ondevice
    with ondevice.load("smollm2-135m") as m:
        print(m.chat([{"role": "user", "content": "What is the capital of France?"}]).text)

Heavy runtimes are imported only when a model of their format is loaded.
"""

from __future__ import annotations

import os

# Nothing in ondevice may download weights at run time; transformers and the HF hub must stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ondevice.backends import Generation, SamplingParams, StreamEvent, Timings, register_backend  # noqa: E402
from ondevice.errors import (  # noqa: E402
    BackendUnavailable, ContextOverflow, RemoteUnavailable, InvalidInput, InvalidModelFile, ModelNotFound, OnDeviceError,
    UnsupportedOperation,
)
from ondevice.model import Model, TextStream, load  # noqa: E402
from ondevice.models.model_info import ModelInfo  # noqa: E402
from ondevice.backends.options import RuntimeOptions  # noqa: E402
from ondevice.decoding.request import Request, build_request  # noqa: E402
from ondevice.session import Chat  # noqa: E402
from ondevice.routing.router import RoutedGeneration, Router  # noqa: E402
from ondevice.models.store import ALIASES, DEFAULT_EMBED_MODEL, DEFAULT_MODEL, resolve  # noqa: E402
import ondevice.models.hub  # noqa: E402,F401  (registers the hf: model name scheme)
from ondevice import moved  # noqa: E402

moved.install()  # 0.2 module paths (ondevice.decoding.sampling, ondevice.models.store, ...) still import, with a warning

__version__ = "0.1.0"

__all__ = [
    "Router", "RoutedGeneration", "RemoteUnavailable",
    "load", "Model", "Chat", "TextStream", "Generation", "SamplingParams", "StreamEvent", "Timings", "ModelInfo",
    "RuntimeOptions", "Request", "build_request", "register_backend", "resolve", "ALIASES", "DEFAULT_MODEL", "DEFAULT_EMBED_MODEL",
    "OnDeviceError", "ModelNotFound", "InvalidModelFile", "ContextOverflow", "UnsupportedOperation",
    "BackendUnavailable", "InvalidInput", "__version__",
]


def __getattr__(name: str):
    """`ondevice.decoding.sampling` and the other 0.2 module names: the module at its new path, with a DeprecationWarning."""
    return moved.module_attribute(name)
