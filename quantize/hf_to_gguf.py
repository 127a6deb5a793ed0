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
from quantize.gguf_arch import ArchHandler, HParams, handler_for
from quantize.gguf_vocab import copy_metadata, write_vocab
from quantize.hf_source import source_gguf
from ondevice.files import atomic_output, check_free_space

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


@dataclass
class _PlannedTensor:
    hf_name: str
    gguf_name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    shard: Path

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        block, type_size = gguf.GGML_QUANT_SIZES[self.qtype]
        return self.n_elements // block * type_size


def convert_hf_to_gguf(hf_dir: Path, out: Path, outtype: str = "f16") -> ConvertResult:
    """Convert the HF model in `hf_dir` to a GGUF file at `out` with weights in `outtype` (f32, f16 or bf16)."""
    start = time.perf_counter()
    hf_dir, out = Path(hf_dir), Path(out)
    if outtype not in OUTTYPES:
        raise InvalidInput(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    config = _read_config(hf_dir)
    handler = handler_for(config)
    hp = HParams.from_config(config)
    plan = _plan(hf_dir, handler, hp, OUTTYPES[outtype][0])
    check_free_space(out, sum(t.nbytes for t in plan) + VOCAB_ALLOWANCE_BYTES)

    with atomic_output(out) as tmp:
        writer = gguf.GGUFWriter(tmp, handler.arch_name)
        try:
            tokenizer = _write_metadata(writer, hf_dir, config, handler, hp, OUTTYPES[outtype][1])
            for t in plan:
                writer.add_tensor_info(t.gguf_name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for t, data in zip(plan, _tensor_data(plan, handler, hp)):
                writer.write_tensor_data(data)
        finally:
            writer.close()
    return ConvertResult(path=out, architecture=handler.arch_name, n_params=sum(t.n_elements for t in plan),
                         outtype=outtype, size_bytes=out.stat().st_size, seconds=time.perf_counter() - start,
                         tokenizer=tokenizer)


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


def _plan(hf_dir: Path, handler: ArchHandler, hp: HParams,
          weight_type: gguf.GGMLQuantizationType) -> list[_PlannedTensor]:
    """Name, shape and storage type of every tensor to write, from the safetensors headers alone."""
    from safetensors import safe_open

    names = handler.tensor_name_map(hp.n_layers)
    plan: list[_PlannedTensor] = []
    for shard in _shards(hf_dir):
        with safe_open(shard, framework="pt") as f:
            for name in f.keys():
                if name.endswith(handler.skip_suffixes) or (hp.tied and name == "lm_head.weight"):
                    continue  # tied output: llama.cpp reuses token_embd when output.weight is absent
                gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise InvalidModelFile(f"{hf_dir}: tensor {name!r} has no {handler.arch_name} GGUF name")
                shape = tuple(f.get_slice(name).get_shape())
                # llama.cpp keeps 1-D tensors (norms, biases) in f32: they are tiny and precision-sensitive.
                qtype = weight_type if len(shape) > 1 else gguf.GGMLQuantizationType.F32
                plan.append(_PlannedTensor(name, gguf_name, shape, qtype, shard))
    return plan


def _tensor_data(plan: list[_PlannedTensor], handler: ArchHandler, hp: HParams) -> Iterator[np.ndarray]:
    """Each planned tensor read as float32, edited for llama.cpp, converted to its storage type."""
    import torch
    from safetensors import safe_open

    with ExitStack() as stack:
        handles = {s: stack.enter_context(safe_open(s, framework="pt")) for s in {t.shard for t in plan}}
        for t in plan:
            data = handles[t.shard].get_tensor(t.hf_name).to(torch.float32).numpy()
            data = handler.edit(t.hf_name, data, hp)
            yield gguf.quants.quantize(np.ascontiguousarray(data), t.qtype)


def _write_metadata(writer: gguf.GGUFWriter, hf_dir: Path, config: dict, handler: ArchHandler, hp: HParams,
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
