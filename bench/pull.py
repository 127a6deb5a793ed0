"""`ondevice pull hf:ORG/REPO[:QUANT|FILE]`: predict, refuse what cannot fit, download, convert, name in the store.

Order: the repo's file list and config.json (ondevice.models.hub.plan, kilobytes) -> the prediction for this machine or a
catalog device (RAM fit and decode tok/s, bench.predict, from the config's shapes at the quant type) -> refuse a
model that cannot fit unless forced -> download and verify (ondevice.models.hub.download) -> a safetensors repo is
converted with llama.cpp's converter (quantize.llama_convert) and quantised (quantize.gguf_quantize) -> the store
names the GGUF (ondevice.models.hub.publish), so `ondevice run hf:ORG/REPO` finds it.

This lives in bench because the speed prediction does (bench.predict); the runtime keeps only the name resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ondevice.errors import InvalidInput, OnDeviceError
from ondevice.models.hub import PullPlan, download, plan, publish

DEFAULT_CTX = 4096
Say = Callable[[str], None]


@dataclass
class PullPrediction:
    """What the model would do here, decided before its weights are downloaded."""

    device: str
    quant: str
    ram_needed_bytes: int
    ram_usable_bytes: int
    fits: bool
    predicted_tg_tok_s: float | None = None   # None: no config.json to predict from, or it does not fit
    targets: list[dict] = field(default_factory=list)
    basis: str = ""                            # "config.json shapes" or "file size (no config.json)"


@dataclass
class PullResult:
    """A pulled model: the store name and file, what it came from, and the prediction made before."""

    name: str
    path: str
    kind: str
    revision: str
    downloaded_bytes: int
    prediction: PullPrediction | None
    converted: bool = False


def predict_plan(pull: PullPlan, device: str | None = None, n_ctx: int = DEFAULT_CTX) -> PullPrediction:
    """RAM fit and decode speed of the planned model on `device` (None: this machine), before any download."""
    from bench.devices import find_device, this_machine
    from bench.predict import predict_for

    dev = find_device(device) if device else this_machine()
    if pull.config and pull.quant not in ("?",):
        from bench.ftype import quantized_info
        from ondevice.models.model_info import hf_config_info

        try:
            info = quantized_info(hf_config_info(pull.config, pull.repo), pull.quant)
        except (OnDeviceError, KeyError, ValueError, ZeroDivisionError):
            info = None
        if info is not None and info.n_layers:
            p = predict_for(info, dev, n_ctx=n_ctx)
            return PullPrediction(dev.title, pull.quant, p.ram_needed_bytes, p.ram_usable_bytes, p.fits_ram,
                                  p.predicted_tg_tok_s, [t.to_dict() for t in p.targets], "config.json shapes")
    # No shapes: the file's size plus a runtime allowance (KV cache unknown) against the same usable share.
    from bench.predict import USABLE_RAM_FRACTION

    needed = pull.download_bytes + 256 * 1024 * 1024
    usable = int(dev.max_ram_gb * 1e9 * USABLE_RAM_FRACTION.get(dev.kind, 0.75))
    return PullPrediction(dev.title, pull.quant, needed, usable, needed <= usable, None, [],
                          "file size (no config.json)")


def _convert(pull: PullPlan, snapshot: Path, say: Say, progress=None) -> Path:
    """A safetensors snapshot -> the pull's quant type, via f16 (llama.cpp's converter), in the store."""
    from ondevice.models.hub import pulled_dir
    from quantize.gguf_quantize import quantize_gguf
    from quantize.convert import convert_hf

    folder = pulled_dir(pull.repo)
    folder.mkdir(parents=True, exist_ok=True)
    f16 = folder / f".{pull.revision[:12]}-F16.gguf"
    say(f"converting {pull.repo} to f16 GGUF")
    done = convert_hf(snapshot, f16, "f16", progress=progress)
    say(f"converted with the {done.converter} converter" + (f" ({done.reason})" if done.reason else ""))
    try:
        if pull.quant in ("F16",):
            return f16.rename(folder / f".{pull.target}.converted")
        say(f"quantising to {pull.quant}")
        out = folder / f".{pull.target}.converted"
        quantize_gguf(f16, out, pull.quant, progress=False)
        return out
    finally:
        f16.unlink(missing_ok=True)


def pull(name: str, quant: str | None = None, force: bool = False, device: str | None = None,
         n_ctx: int = DEFAULT_CTX, say: Say | None = None, progress=None) -> PullResult:
    """Pull `name` (hf:ORG/REPO[:QUANT|FILE]) into the store; see the module docstring for the steps.

    say: one-line messages (the prediction first); progress: `(description, done, total)` of the conversion."""
    say = say or (lambda message: None)
    if quant is not None:
        from quantize.gguf_quantize import check_qtype

        quant = check_qtype(quant)
    pull_plan = plan(name, quant)
    prediction = predict_plan(pull_plan, device, n_ctx)
    say(describe(pull_plan, prediction))
    if not prediction.fits and not force:
        raise InvalidInput(f"{pull_plan.name} ({pull_plan.quant}) needs about {prediction.ram_needed_bytes / 1e9:.1f} "
                           f"GB of RAM at {n_ctx} tokens of context; {prediction.device} has "
                           f"{prediction.ram_usable_bytes / 1e9:.1f} GB usable: not downloaded (--force to pull "
                           f"anyway, or pick a smaller QUANT)")
    if pull_plan.kind == "safetensors":
        _check_convertible(pull_plan)
    snapshot = download(pull_plan)
    converted = pull_plan.kind == "safetensors"
    if converted:
        source = _convert(pull_plan, snapshot, say, progress)
        target = _publish_file(pull_plan, source)
    else:
        target = publish(pull_plan, snapshot / pull_plan.files[0].name)
    return PullResult(pull_plan.name, str(target), pull_plan.kind, pull_plan.revision, pull_plan.download_bytes,
                      prediction, converted)


def _check_convertible(pull: PullPlan) -> None:
    """Refuse, before downloading, a safetensors repo neither converter takes (one line naming its architecture)."""
    from quantize.gguf_arch import ARCHITECTURES
    from quantize.llama_convert import supported_architectures

    config = pull.config or {}
    archs = config.get("architectures") or (config.get("text_config") or {}).get("architectures") or []
    arch = str(archs[0]) if archs else f"model_type {config.get('model_type')!r}"
    if arch in supported_architectures() or config.get("model_type") in ARCHITECTURES:
        return
    supported = supported_architectures()
    raise InvalidInput(f"{pull.name}: architecture {arch!r} cannot be converted: llama.cpp's convert_hf_to_gguf.py "
                       f"does not support it (nothing downloaded); supported ({len(supported)}): "
                       f"{', '.join(supported)}")


def _publish_file(pull: PullPlan, converted: Path) -> Path:
    """A converted file is the store's own: renamed into place (complete), then recorded."""
    from ondevice.models.hub import pulled_dir

    target = pulled_dir(pull.repo) / pull.target
    converted.replace(target)
    return publish(pull, target)


def describe(pull: PullPlan, p: PullPrediction) -> str:
    """One paragraph: what will be fetched and what it would do here."""
    size = f"{pull.download_bytes / 1e6:,.1f} MB"
    what = (f"{pull.files[0].name}" if pull.kind == "gguf" else
            f"{len(pull.files)} files (safetensors; converted and quantised to {pull.quant} on pull)")
    speed = f", decode about {p.predicted_tg_tok_s:g} tok/s" if p.predicted_tg_tok_s else ""
    fit = "fits" if p.fits else "does NOT fit"
    targets = "; ".join(f"{t['name']}: {'pass' if t['pass'] else 'fail'}" for t in p.targets
                        if not t["name"].startswith("params"))
    return (f"{pull.name} @ {pull.revision[:12]}: {what}, {size}. On {p.device}: needs "
            f"{p.ram_needed_bytes / 1e9:.2f} GB of {p.ram_usable_bytes / 1e9:.1f} GB usable ({fit}){speed}"
            f" [{p.basis}]" + (f". Targets: {targets}" if targets else ""))
