"""Any model source (HF folder, GGUF file, alias) as a Hugging Face folder the converters can read.

A GGUF source is de-quantised once to fp32 with transformers (`from_pretrained(..., gguf_file=...)`) and cached in
the store under `hf/<content key>`. transformers' reconstruction of the tokenizer is not faithful (see
docs/quantize-gguf.md), so the folder records which GGUF it came from (`ondevice_source.json`); the GGUF writer then
copies that file's `tokenizer.*` metadata across unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from ondevice.errors import InvalidInput
from ondevice.models.store import content_key, resolve, store_dir

SOURCE_RECORD = "ondevice_source.json"
TOKENIZER_ALLOWANCE_BYTES = 64 * 1024 * 1024  # tokenizer.json and friends of a large vocabulary


def source_gguf(hf_dir: Path) -> Path | None:
    """The GGUF file an HF folder was de-quantised from, or None for a folder that is an original HF model."""
    record = Path(hf_dir) / SOURCE_RECORD
    if not record.exists():
        return None
    path = Path(json.loads(record.read_text())["gguf"])
    return path if path.exists() else None


def to_hf_dir(source: str | Path) -> Path:
    """Return a Hugging Face folder for `source`: an HF folder as is, a GGUF file or alias de-quantised (cached)."""
    ref = resolve(source)
    if ref.format == "hf":
        return ref.path
    if ref.format != "gguf":
        raise InvalidInput(f"{source}: a {ref.format!r} model cannot be converted; give an HF folder, a GGUF file "
                           f"or an alias of one")
    target = store_dir() / "hf" / content_key(ref.path)
    if (target / "config.json").exists():
        return target
    return _dequantize(ref.path, target)


def _dequantize(gguf_path: Path, target: Path) -> Path:
    """De-quantise `gguf_path` to an fp32 HF folder at `target` (staged beside it, published when complete)."""
    import torch
    import transformers

    from ondevice.files import atomic_dir
    from ondevice.models.gguf_file import read_gguf

    needed = read_gguf(gguf_path).n_params * 4 + TOKENIZER_ALLOWANCE_BYTES  # fp32 weights + tokenizer files
    with atomic_dir(target, needed) as tmp:
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
            tokenizer = transformers.AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        except (ValueError, KeyError, NotImplementedError) as exc:
            # transformers raises these for GGUF architectures or quant types it cannot de-quantise
            raise InvalidInput(f"{gguf_path}: transformers cannot de-quantise this GGUF ({exc})") from None
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # save_pretrained copies the whole GGUF as tokenizer.model; it is not a SentencePiece model and would
        # make SentencePiece-aware readers (ours included) misread the vocabulary.
        (tmp / "tokenizer.model").unlink(missing_ok=True)
        (tmp / SOURCE_RECORD).write_text(json.dumps({"gguf": str(gguf_path.resolve())}, indent=1))
        del model
    return target
