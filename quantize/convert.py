"""`convert`: any source (HF folder, GGUF file, alias) to a GGUF file in f32, f16 or bf16 — and which converter runs.

Two converters, one choice (`converter="auto"`, the default everywhere):
- llama.cpp's own `convert_hf_to_gguf.py` (quantize.llama_convert), from the installed libllama's vendored source:
  every architecture llama.cpp runs (~270 HF architectures), the same revision as the runtime. It runs first.
- ours (quantize.hf_to_gguf, three architectures: llama, qwen2, gemma3_text) runs where it adds something measured:
  (1) a folder de-quantised from a GGUF (quantize.hf_source): ours copies that GGUF's tokenizer metadata unchanged,
  where transformers' reconstruction of the tokenizer is not faithful (docs/quantize-gguf.md);
  (2) a byte-level BPE tokenizer llama.cpp's script does not recognise ("BPE pre-tokenizer was not recognized": a
  tokenizer trained or edited by the user; tests/quantize/test_convert_choice.py shows llama.cpp's refusing one that
  ours converts with the same logits); that is decided up front with llama.cpp's own test (its check text through
  the tokenizer, hashed, against its list), and also caught if the script refuses. Anything else ours is not asked
  to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ondevice.errors import InvalidInput, OnDeviceError
from quantize.hf_source import source_gguf, to_hf_dir

CONVERTERS = ("auto", "llama.cpp", "ondevice")
_UNRECOGNISED_BPE = "BPE pre-tokenizer was not recognized"


@dataclass
class ConvertedFile:
    """A GGUF file and which converter wrote it (and why that one)."""

    path: Path
    outtype: str
    size_bytes: int
    seconds: float
    converter: str   # "llama.cpp" or "ondevice"
    reason: str = ""
    n_params: int = 0
    architecture: str = ""   # llama.cpp's architecture name (general.architecture), e.g. "qwen2"


def _ours_handles(hf_dir: Path) -> bool:
    from quantize.gguf_arch import ARCHITECTURES

    try:
        return json.loads((hf_dir / "config.json").read_text()).get("model_type") in ARCHITECTURES
    except (OSError, ValueError):
        return False


def _ours(hf_dir: Path, out: Path, outtype: str, reason: str) -> ConvertedFile:
    from quantize.hf_to_gguf import convert_hf_to_gguf

    r = convert_hf_to_gguf(hf_dir, out, outtype)
    return ConvertedFile(r.path, outtype, r.size_bytes, r.seconds, "ondevice", reason, r.n_params, r.architecture)


def convert_hf(hf_dir: str | Path, out: str | Path, outtype: str = "f16", converter: str = "auto",
               progress: Callable[[str, int, int], None] | None = None) -> ConvertedFile:
    """Convert the HF folder `hf_dir` to GGUF at `out`; `converter` "auto" (see the module docstring), "llama.cpp"
    or "ondevice". Nothing is left under `out` unless the conversion completed."""
    from quantize.llama_convert import convert_with_llama_cpp

    hf_dir, out = Path(hf_dir), Path(out)
    if converter not in CONVERTERS:
        raise InvalidInput(f"converter {converter!r} is not one of {', '.join(CONVERTERS)}")
    if converter == "ondevice":
        return _ours(hf_dir, out, outtype, "asked for")
    if converter == "auto" and _ours_handles(hf_dir):
        if source_gguf(hf_dir) is not None:
            return _ours(hf_dir, out, outtype, "de-quantised from a GGUF: its tokenizer metadata is copied unchanged")
        from quantize.llama_convert import recognises_bpe

        if recognises_bpe(hf_dir) is False:  # known before spending a child process on llama.cpp's refusal
            return _ours(hf_dir, out, outtype, "llama.cpp's converter does not recognise this BPE pre-tokenizer")
    try:
        r = convert_with_llama_cpp(hf_dir, out, outtype, progress)
    except OnDeviceError as exc:
        if converter == "auto" and _UNRECOGNISED_BPE in str(exc) and _ours_handles(hf_dir):
            return _ours(hf_dir, out, outtype, "llama.cpp's converter does not recognise this BPE pre-tokenizer")
        raise
    from ondevice.models.gguf_file import read_gguf

    contents = read_gguf(r.path)
    return ConvertedFile(r.path, outtype, r.size_bytes, r.seconds, "llama.cpp", n_params=contents.n_params,
                         architecture=contents.architecture)


def convert(source: str | Path, out: Path, outtype: str = "f16", converter: str = "auto") -> ConvertedFile:
    """Convert `source` to GGUF at `out`. A GGUF source is de-quantised to an HF folder first (cached)."""
    return convert_hf(to_hf_dir(source), Path(out), outtype, converter)
