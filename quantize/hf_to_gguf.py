"""Hugging Face folder -> GGUF (f32, f16, bf16), written with the `gguf` package.

Tensor names come from gguf's TensorNameMap; architecture specifics (rope permutation, norm offsets, hparam keys)
from quantize.gguf_arch; the tokenizer from quantize.gguf_vocab. Tensors are streamed: every tensor's size is
declared from the safetensors headers first, then each is read, edited, converted and written in turn, so memory
stays near one tensor rather than the whole model.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import gguf
import numpy as np

from ondevice.errors import InvalidInput, InvalidModelFile
from ondevice.models.model_info import ModelInfo, hf_config_info
from quantize.gguf_arch import ArchHandler, handler_for
from quantize.gguf_vocab import copy_metadata, write_vocab
from quantize.gguf_writer import TensorPlan, write_gguf
from quantize.hf_source import source_gguf

OUTTYPES: dict[str, tuple[gguf.GGMLQuantizationType, gguf.LlamaFileType]] = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
}
# Descriptive keys worth keeping from a source GGUF (name, licence, ...); never its file type or architecture.
GENERAL_KEYS = ("general.name", "general.basename", "general.finetune", "general.size_label",
                "general.organization", "general.license", "general.languages")
VOCAB_ALLOWANCE_BYTES = 32 * 1024 * 1024  # tokens + merges + template of a large vocabulary


@dataclass
class ConvertResult:
    """A written GGUF file and what went into it."""

    path: Path
    architecture: str  # llama.cpp architecture name, e.g. "llama", "qwen2", "gemma3"
    n_params: int
    outtype: str
    size_bytes: int
    seconds: float
    tokenizer: str = ""  # where the vocabulary came from


@dataclass(frozen=True)
class _Source:
    """Where a planned tensor's data comes from: its HF name and safetensors shard."""

    hf_name: str
    shard: Path


def convert_hf_to_gguf(hf_dir: Path, out: Path, outtype: str = "f16") -> ConvertResult:
    """Convert the HF model in `hf_dir` to a GGUF file at `out` with weights in `outtype` (f32, f16 or bf16)."""
    start = time.perf_counter()
    hf_dir, out = Path(hf_dir), Path(out)
    if outtype not in OUTTYPES:
        raise InvalidInput(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    config = _read_config(hf_dir)
    handler = handler_for(config)
    hp = _hparams(hf_dir, config)
    plan, sources = _plan(hf_dir, handler, hp, OUTTYPES[outtype][0].name)
    tokenizer = ""

    def add_metadata(writer: gguf.GGUFWriter) -> None:
        nonlocal tokenizer
        tokenizer = _write_metadata(writer, hf_dir, config, handler, hp, OUTTYPES[outtype][1])

    write_gguf(out, handler.arch_name, plan, add_metadata, _tensor_data(sources, plan, handler, hp),
               extra_bytes=VOCAB_ALLOWANCE_BYTES)
    return ConvertResult(path=out, architecture=handler.arch_name, n_params=sum(t.n_elements for t in plan),
                         outtype=outtype, size_bytes=out.stat().st_size, seconds=time.perf_counter() - start,
                         tokenizer=tokenizer)


def _hparams(hf_dir: Path, config: dict) -> ModelInfo:
    """The config's shapes; a config missing one the GGUF header needs is refused with one line."""
    hp = hf_config_info(config, hf_dir.name, str(hf_dir))
    missing = [key for key, value in (("num_hidden_layers", hp.n_layers), ("hidden_size", hp.n_embd),
                                      ("intermediate_size", hp.n_ff), ("num_attention_heads", hp.n_heads),
                                      ("vocab_size", hp.vocab_size)) if not value]
    if missing:
        raise InvalidModelFile(f"{hf_dir / 'config.json'}: missing {', '.join(missing)}")
    return hp


def _read_config(hf_dir: Path) -> dict:
    try:
        return json.loads((hf_dir / "config.json").read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{hf_dir}: not a Hugging Face model folder (no config.json)") from None
    except json.JSONDecodeError as exc:
        raise InvalidModelFile(f"{hf_dir / 'config.json'}: invalid JSON ({exc})") from None


def _shards(hf_dir: Path) -> list[Path]:
    shards = sorted(hf_dir.glob("*.safetensors"))
    if not shards:
        raise InvalidInput(f"{hf_dir}: no .safetensors weights (PyTorch .bin checkpoints are not read; re-save "
                           f"with safe_serialization=True)")
    return shards


def _plan(hf_dir: Path, handler: ArchHandler, hp: ModelInfo,
          weight_type: str) -> tuple[list[TensorPlan], list[_Source]]:
    """Name, shape and storage type of every tensor to write (and where its data is), from the safetensors headers
    alone."""
    from safetensors import safe_open

    names = handler.tensor_name_map(hp.n_layers)
    plan: list[TensorPlan] = []
    sources: list[_Source] = []
    for shard in _shards(hf_dir):
        with safe_open(shard, framework="pt") as f:
            for name in f.keys():
                if name.endswith(handler.skip_suffixes) or (hp.tied_embeddings and name == "lm_head.weight"):
                    continue  # tied output: llama.cpp reuses token_embd when output.weight is absent
                gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise InvalidModelFile(f"{hf_dir}: tensor {name!r} has no {handler.arch_name} GGUF name")
                shape = tuple(f.get_slice(name).get_shape())
                # llama.cpp keeps 1-D tensors (norms, biases) in f32: they are tiny and precision-sensitive.
                qtype = weight_type if len(shape) > 1 else "F32"
                plan.append(TensorPlan(gguf_name, shape[::-1], qtype))  # ggml order: row length first
                sources.append(_Source(name, shard))
    return plan, sources


def _tensor_data(sources: list[_Source], plan: list[TensorPlan], handler: ArchHandler,
                 hp: ModelInfo) -> Iterator[np.ndarray]:
    """Each planned tensor read as float32, edited for llama.cpp, converted to its storage type."""
    import torch
    from safetensors import safe_open

    with ExitStack() as stack:
        handles = {s: stack.enter_context(safe_open(s, framework="pt")) for s in {src.shard for src in sources}}
        for src, t in zip(sources, plan):
            data = handles[src.shard].get_tensor(src.hf_name).to(torch.float32).numpy()
            data = handler.edit(src.hf_name, data, hp)
            yield gguf.quants.quantize(np.ascontiguousarray(data), t.qtype)


def _write_metadata(writer: gguf.GGUFWriter, hf_dir: Path, config: dict, handler: ArchHandler, hp: ModelInfo,
                    file_type: gguf.LlamaFileType) -> str:
    origin = source_gguf(hf_dir)
    if origin is not None:
        copy_metadata(origin, writer, lambda key: key in GENERAL_KEYS)
    else:
        writer.add_name(str(config.get("_name_or_path") or hf_dir.name))
    handler.write_hparams(writer, hp)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    return write_vocab(writer, hf_dir, hp.vocab_size)
