"""What models are available: the embedded aliases plus anything saved in the model store."""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.errors import OnDeviceError
from ondevice.model_info import ModelInfo, read_info
from ondevice.store import ALIASES, detect_format, models_dir, resolve, ModelRef


@dataclass
class ModelEntry:
    """One row of `ondevice models list`."""

    name: str
    format: str
    task: str
    n_params: int
    quant: str
    size_bytes: int
    licence: str
    path: str
    error: str | None = None


def _entry(name: str, task: str, licence: str, ref_factory) -> ModelEntry:
    try:
        ref: ModelRef = ref_factory()
        info = read_info(ref)
        return ModelEntry(name, info.format, task, info.n_params, info.quant, info.size_bytes, licence, info.path)
    except OnDeviceError as exc:
        return ModelEntry(name, "?", task, 0, "?", 0, licence, "", error=str(exc))


def list_models() -> list[ModelEntry]:
    """Every alias (with its facts, or the reason it is unavailable), then models saved under the store."""
    entries = [_entry(a.name, a.task, a.licence, lambda a=a: resolve(a.name)) for a in ALIASES.values()]
    alias_paths = {e.path for e in entries}
    for path in sorted(models_dir().iterdir()):
        if str(path.resolve()) in alias_paths or path.name.endswith(".partial"):
            continue
        try:
            detect_format(path)
        except (OnDeviceError, OSError):
            continue
        entries.append(_entry(str(path), "?", "see source model", lambda p=path: resolve(p)))
    return entries


def model_info(model: str) -> ModelInfo:
    """Facts about one model, by alias or path, read from its files (the weights are not loaded)."""
    return read_info(resolve(model))
