"""quantize: make models small (convert, quantise, distil) and measure what each step costs in quality.

Public API (imported lazily, so `import quantize` stays cheap):
    convert(source, out, outtype="f16")              -> ConvertResult      any source -> f32/f16/bf16 GGUF
    quantize(source, targets, out_dir, evaluate=...) -> QuantizeReport     GGUF/ONNX variants + report files
    evaluate(model, ref, text=None, window=512)      -> QualityResult      PPL and KLD against a reference
    recommend(report, ram_gb, max_kld=None, ctx=...) -> Recommendation     smallest variant that fits

Commands: `ondevice quantize`, `eval`, `distill` (quantize/cli.py) join the `ondevice` command through the
"ondevice.commands" entry points in pyproject.toml, and `quantize.materialize:to_runnable` is the "hf"
materialiser (HF folders run after a one-time conversion). The runtime imports nothing from this package.
"""

from __future__ import annotations

import importlib
import sys
import types

# public name -> module that defines it. Three share their name with a submodule (quantize/convert.py, ...).
_EXPORTS = {
    "convert": "quantize.convert",
    "quantize": "quantize.pipeline",
    "evaluate": "quantize.evaluate",
    "recommend": "quantize.recommend",
}

__all__ = list(_EXPORTS)


class _Package(types.ModuleType):
    """Keeps `quantize.convert` / `quantize.evaluate` the functions after their submodules are imported.

    Importing `quantize.evaluate` makes Python set the package attribute `evaluate` to the submodule; this drops
    that assignment so the attribute keeps resolving (lazily, via __getattr__) to the function. The submodules stay
    reachable with `from quantize.evaluate import ...` (sys.modules).
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quantize' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


sys.modules[__name__].__class__ = _Package
