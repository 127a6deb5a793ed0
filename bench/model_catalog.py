"""`ondevice models catalog`: which small model should I run here? Every current small family at each common quant,
with its GGUF size and, for this machine or a catalog device, the predicted RAM fit and decode speed.

Shapes are `bench.families`' rows (each from the model's published config.json) with fewer than 5 B parameters;
sizes come from llama.cpp's per-tensor quant mix (`bench.ftype`), predictions from `bench.predict`. Sorted so the
answer comes first: models that fit and reach the 10 tok/s decode target, largest first (more parameters, better
answers, while still fast enough), then those that fit but are slower, then those that do not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.families import FAMILIES

SMALL_PARAMS = 5e9
CATALOG_QUANTS = ("Q4_K_M", "Q8_0", "F16")
SPEED_TARGET = 10.0   # tok/s, bench.predict.DECODE_TARGETS[0]
# Where to get each family (`ondevice pull NAME`); repos as their publishers name them. Gated repos need HF_TOKEN.
PULL_NAMES = {
    "qwen2.5-0.5b": "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-1.5b": "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF",
    "qwen2.5-3b": "hf:Qwen/Qwen2.5-3B-Instruct-GGUF", "llama3.2-1b": "hf:meta-llama/Llama-3.2-1B-Instruct",
    "llama3.2-3b": "hf:meta-llama/Llama-3.2-3B-Instruct", "phi-3-mini": "hf:microsoft/Phi-3-mini-4k-instruct-gguf",
    "gemma2-2b": "hf:google/gemma-2-2b-it", "smollm2-135m": "smollm2-135m (embedded)",
}


@dataclass
class CatalogRow:
    """One family at one quant type on one device."""

    family: str
    quant: str
    n_params: int
    size_bytes: int
    ram_needed_bytes: int
    fits: bool
    predicted_tg_tok_s: float | None
    meets_target: bool
    pull: str


def small_families() -> list[str]:
    """Families under SMALL_PARAMS parameters, smallest first."""
    from bench.families import n_params_of

    sizes = {name: n_params_of(info) for name, info in FAMILIES.items()}
    return sorted((n for n, p in sizes.items() if p < SMALL_PARAMS), key=lambda n: sizes[n])


def catalog(device: str | None = None, quants=CATALOG_QUANTS, n_ctx: int = 4096) -> tuple[str, list[CatalogRow]]:
    """(device title, rows sorted best first) for `device` (a catalog name; None: this machine, measured)."""
    from bench.devices import find_device
    from bench.ftype import quantized_info
    from bench.predict import predict_for
    from bench.devices import this_machine

    dev = find_device(device) if device else this_machine()
    rows = []
    for name in small_families():
        for quant in quants:
            info = quantized_info(FAMILIES[name], quant)
            p = predict_for(info, dev, n_ctx=n_ctx)
            tg = p.predicted_tg_tok_s
            rows.append(CatalogRow(name, quant, info.n_params, info.size_bytes, p.ram_needed_bytes, p.fits_ram, tg,
                                   bool(tg and tg >= SPEED_TARGET), PULL_NAMES.get(name, "")))
    rows.sort(key=lambda r: (not r.fits, not r.meets_target, -r.n_params, -(r.predicted_tg_tok_s or 0)))
    return dev.title, rows
