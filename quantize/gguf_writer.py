"""Write a GGUF file from a tensor plan: the one writer behind the HF converter and bench's shape probes.

A plan lists every tensor (GGUF name, ggml shape, storage type) before any data exists, so the header and tensor
table are written first and the data is then streamed one tensor at a time: memory stays near one tensor however
large the model. Free disk is checked against the plan and the file appears under its final name only when
complete (`ondevice.files.atomic_output`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import gguf
import numpy as np

from ondevice.files import atomic_output, check_free_space


@dataclass(frozen=True)
class TensorPlan:
    """One tensor to write: GGUF name, ggml shape (ne0 = row length first) and ggml type name ("Q4_K", "F32")."""

    name: str
    shape: tuple[int, ...]
    type: str

    @property
    def qtype(self) -> gguf.GGMLQuantizationType:
        return gguf.GGMLQuantizationType[self.type]

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        block, type_size = gguf.GGML_QUANT_SIZES[self.qtype]
        return self.n_elements // block * type_size


def plan_nbytes(plan: Iterable[TensorPlan]) -> int:
    """Bytes of tensor data a plan holds (the file adds metadata and alignment padding)."""
    return sum(t.nbytes for t in plan)


def write_gguf(path: Path, arch: str, plan: list[TensorPlan], add_metadata: Callable[[gguf.GGUFWriter], None],
               tensor_data: Iterable[np.ndarray], extra_bytes: int = 0) -> Path:
    """Write a GGUF of architecture `arch` at `path`: metadata from `add_metadata(writer)`, then the tensors of
    `plan` in order, their data taken one by one from `tensor_data` (arrays already in the tensor's storage type,
    e.g. uint8 quant blocks, each exactly `TensorPlan.nbytes` long).

    `extra_bytes` is what the metadata adds beyond the tensor data (a large vocabulary), for the free-disk check.
    """
    path = Path(path)
    check_free_space(path, plan_nbytes(plan) + extra_bytes)
    with atomic_output(path) as tmp:
        writer = gguf.GGUFWriter(tmp, arch)
        try:
            add_metadata(writer)
            for t in plan:  # gguf takes numpy order (rows first): the reverse of ggml's
                writer.add_tensor_info(t.name, t.shape[::-1], np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            written = 0
            for t, data in zip(plan, tensor_data):
                if data.nbytes != t.nbytes:
                    raise ValueError(f"{t.name}: {data.nbytes} bytes of data for a {t.nbytes}-byte {t.type} tensor")
                writer.write_tensor_data(data)
                written += 1
            if written != len(plan):
                raise ValueError(f"tensor data ran out after {written} of {len(plan)} tensors")
        finally:
            writer.close()
    return path
