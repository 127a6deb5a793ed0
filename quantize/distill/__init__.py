"""Distillation: a smaller student from a teacher (layer-pruned init + logit KD), CPU-capable.

`distill()` (in `api`) is the entry point; `ondevice distill` is its CLI.
"""

from quantize.distill.api import DistillReport, distill

__all__ = ["DistillReport", "distill"]
