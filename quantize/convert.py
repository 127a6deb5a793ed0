"""`convert`: any source (HF folder, GGUF file, alias) to a GGUF file in f32, f16 or bf16."""

from __future__ import annotations

from pathlib import Path

from quantize.hf_source import to_hf_dir
from quantize.hf_to_gguf import ConvertResult, convert_hf_to_gguf


def convert(source: str | Path, out: Path, outtype: str = "f16") -> ConvertResult:
    """Convert `source` to GGUF at `out`. A GGUF source is de-quantised to an HF folder first (cached)."""
    return convert_hf_to_gguf(to_hf_dir(source), Path(out), outtype)
