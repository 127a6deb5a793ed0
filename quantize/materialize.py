"""Make a Hugging Face folder runnable: `ondevice.load` calls `to_runnable` for models in the "hf" format.

Decoder LLMs become an f16 GGUF (quantize.convert.convert_hf: llama.cpp's converter, ours where it adds something)
and encoders (BERT-like) an int8 ONNX folder (the ONNX exporter);
both are cached in the store under the folder's content key, so the conversion happens once per model version.
"""

from __future__ import annotations

import json
from pathlib import Path

from ondevice.errors import InvalidInput, OnDeviceError
from ondevice.models.store import content_key, store_dir
from quantize.gguf_arch import ARCHITECTURES

# Encoder model types the ONNX encoder backend runs (sentence embeddings, classifiers).
ENCODER_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra", "deberta-v2",
                           "camembert", "albert", "modernbert", "nomic_bert"})


def to_runnable(path: Path) -> Path:
    """A runnable model for the HF folder `path`: a cached GGUF (LLMs) or ONNX encoder folder (encoders)."""
    path = Path(path)
    try:
        model_type = str(json.loads((path / "config.json").read_text()).get("model_type", "unknown"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: unreadable config.json ({exc})") from None
    key = content_key(path)
    if model_type in ENCODER_TYPES:
        return _to_onnx_encoder(path, store_dir() / "converted" / f"{path.name}-{key}-onnx-int8")
    return _to_gguf(path, store_dir() / "converted" / f"{path.name}-{key}-f16.gguf", model_type)


def _to_gguf(hf_dir: Path, target: Path, model_type: str) -> Path:
    if target.exists():
        return target
    from quantize.convert import convert_hf
    from quantize.llama_convert import hf_architecture, supported_architectures

    try:
        arch = hf_architecture(hf_dir)
    except OnDeviceError:
        arch = model_type
    if arch not in supported_architectures() and model_type not in ARCHITECTURES:
        raise InvalidInput(f"{hf_dir}: model type {model_type!r} ({arch}) cannot be run: llama.cpp's converter "
                           f"does not take {arch!r} and ours takes {', '.join(sorted(ARCHITECTURES))}; encoders: "
                           f"{', '.join(sorted(ENCODER_TYPES))}")
    convert_hf(hf_dir, target, "f16")  # writes <target>.partial, renames when complete
    return target


def _to_onnx_encoder(hf_dir: Path, target: Path) -> Path:
    if target.exists():
        return target
    try:
        from quantize.onnx_export import export_encoder
    except ImportError as exc:
        raise OnDeviceError(f"{hf_dir}: running an encoder from an HF folder needs quantize.onnx_export, which "
                            f"is not available ({exc})") from None
    return Path(export_encoder(hf_dir, target, quant="int8"))  # it stages in a temp folder and renames
