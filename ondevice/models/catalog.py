"""What models are available: the embedded aliases plus anything saved in the model store."""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.errors import OnDeviceError
from ondevice.models.model_info import ModelInfo, read_info
from ondevice.models.store import ALIASES, detect_format, models_dir, resolve, ModelRef


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
    from ondevice.models.hub import pulled_names

    for name, path in pulled_names():  # models pulled from the Hugging Face Hub, by the name that loads them
        entries.append(_entry(name, "?", "see the repo", lambda p=path: resolve(p)))
    return entries


def model_info(model: str) -> ModelInfo:
    """Facts about one model, by alias or path, read from its files (the weights are not loaded)."""
    return read_info(resolve(model))


def remove_model(model: str, hf_cache: bool = True):
    """Delete a model from the store: a pulled `hf:` name (ondevice.models.hub.remove), or a file or folder under the
    store's models folder. Aliases and files elsewhere are refused (they are not the store's to delete)."""
    import shutil
    from pathlib import Path

    from ondevice.models import hub
    from ondevice.errors import InvalidInput

    if hub.is_hub_name(model):
        return hub.remove(model, hf_cache=hf_cache)
    if model in ALIASES:
        raise InvalidInput(f"{model!r} ships inside a package: uninstall the package to remove it")
    path = Path(model).expanduser().absolute()
    root = models_dir().resolve()
    if not path.exists() or root not in path.resolve().parents:
        raise InvalidInput(f"{model}: not a model in the store ({root}); only pulled hf: names and files under "
                           f"it are removed")
    removed = hub.Removed(model, [str(path)], hub._size(path))
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return removed
