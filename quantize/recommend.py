"""Pick the variant to ship: the smallest one within a quality bound whose weights + KV cache fit a RAM budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ondevice.errors import InvalidInput

GB = 1024 ** 3


@dataclass
class Recommendation:
    """The chosen variant (None when nothing qualifies) and one sentence saying why."""

    variant: object | None
    reason: str
    ram_gb: float
    max_kld: float | None
    ctx: int
    needed_bytes: dict[str, int]  # variant name -> weights + KV cache at ctx


def memory_needed(variant, ctx: int, kv_type: str = "f16") -> int:
    """Bytes `variant` itself holds at `ctx` tokens: weights plus its KV cache (`ondevice.models.memory`'s model terms;
    the runtime and compute buffers, the same for every variant of a model, are not part of the comparison)."""
    from ondevice.models.catalog import model_info
    from ondevice.models.memory import estimate_memory

    return estimate_memory(model_info(variant.path), ctx, kv_type).model_bytes


def _variants(report_or_variants) -> list:
    """Variants from a QuantizeReport, its report.json data, or a list (Variant objects or their dicts)."""
    import dataclasses

    from quantize.pipeline import Variant

    variants = getattr(report_or_variants, "variants", report_or_variants)
    if isinstance(variants, dict):
        variants = variants.get("variants")
    if not isinstance(variants, Sequence):
        raise InvalidInput("recommend() needs a QuantizeReport, its report.json data or a list of variants")
    names = {f.name for f in dataclasses.fields(Variant)}
    return [Variant(**{k: v for k, v in item.items() if k in names}) if isinstance(item, dict) else item
            for item in variants]


def recommend(report_or_variants, ram_gb: float, max_kld: float | None = None, ctx: int = 2048,
              kv_type: str = "f16") -> Recommendation:
    """The smallest variant with mean KLD <= max_kld (when given) that fits in ram_gb at ctx tokens of context
    with a `kv_type` KV cache."""
    if ram_gb is None or ram_gb <= 0:
        raise InvalidInput(f"ram_gb must be a positive number, got {ram_gb!r}")
    if max_kld is not None and max_kld < 0:
        raise InvalidInput(f"max_kld must be >= 0, got {max_kld}")
    # a variant that failed its sanity check on the machine that made it (quantize/sanity.py) is never chosen
    variants = [v for v in _variants(report_or_variants) if getattr(v, "status", "ok") == "ok"]
    if not variants:
        raise InvalidInput("no usable variants to choose from")
    budget = ram_gb * GB
    needed = {v.name: memory_needed(v, ctx, kv_type) for v in variants}
    if max_kld is not None and all(v.kld_mean is None for v in variants):
        raise InvalidInput("--max-kld needs quality numbers: run quantize with --eval")
    good = [v for v in variants if max_kld is None or (v.kld_mean is not None and v.kld_mean <= max_kld)]
    fits = [v for v in good if needed[v.name] <= budget]
    args = dict(ram_gb=ram_gb, max_kld=max_kld, ctx=ctx, needed_bytes=needed)
    if fits:
        best = min(fits, key=lambda v: (v.size_bytes, v.kld_mean if v.kld_mean is not None else 0.0))
        bound = f" and its mean KLD {best.kld_mean:.4f} is within {max_kld}" if max_kld is not None else ""
        others = len(fits) - 1
        return Recommendation(best, f"{best.name} is the smallest variant that fits: it needs "
                              f"{needed[best.name] / GB:.2f} GB (weights + KV cache at {ctx} tokens) of the "
                              f"{ram_gb:g} GB budget{bound}" + (f", {others} larger ones also qualify." if others
                                                                else "."), **args)
    if not good:
        closest = min((v for v in variants if v.kld_mean is not None), key=lambda v: v.kld_mean)
        return Recommendation(None, f"no variant is within mean KLD {max_kld}: the closest to the reference is "
                              f"{closest.name} at {closest.kld_mean:.4f}.", **args)
    smallest = min(good, key=lambda v: needed[v.name])
    return Recommendation(None, f"nothing fits in {ram_gb:g} GB: the smallest qualifying variant, {smallest.name}, "
                          f"needs {needed[smallest.name] / GB:.2f} GB (weights + KV cache at {ctx} tokens).", **args)
