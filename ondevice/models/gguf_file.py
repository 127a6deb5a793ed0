"""Read and check GGUF files in Python before the C loader sees them.

llama.cpp aborts the whole process on some malformed files; we refuse them first with one clear line. The header,
metadata and tensor table are streamed here (type tables come from the `gguf` package, llama.cpp's own) with
every length and tensor extent checked against the file size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ondevice.errors import InvalidModelFile

GGUF_MAGIC = b"GGUF"
MIN_HEADER_BYTES = 24  # magic(4) + version(4) + n_tensors(8) + n_kv(8)


@dataclass(frozen=True)
class GGUFTensor:
    """One entry of a GGUF tensor table: name, ggml type name ("Q4_K", "F32"), element count and data bytes."""

    name: str
    type: str
    n_elements: int
    nbytes: int


@dataclass
class GGUFContents:
    """What a GGUF file declares: its metadata (scalars and short arrays) and tensor table summary."""

    path: Path
    version: int
    metadata: dict[str, Any]
    n_tensors: int
    n_params: int
    tensor_types: dict[str, int] = field(default_factory=dict)  # quant type name -> tensor count
    vocab_size: int = 0
    file_size: int = 0
    tensors: list[GGUFTensor] = field(default_factory=list)  # the tensor table, in file order

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)


# GGUF value types (gguf.GGUFValueType) -> struct format of one scalar.
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                   12: "<d"}
_STRING, _ARRAY = 8, 9
SHORT_ARRAY = 64  # arrays longer than this (vocabularies, merges) are skipped, keeping only their length


class _LongArray(list):
    """Stands for a long metadata array we did not decode; len() is the real length."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"<array of {self.n}>"


class _HeaderReader:
    """Streams a GGUF header with bounds checks. Long arrays are skipped, not materialised: gguf.GGUFReader builds
    a numpy view per vocabulary entry, which peaked at 726 MiB for a 262k-token vocabulary (measured)."""

    def __init__(self, fh, size: int):
        self.fh = fh
        self.size = size

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ValueError("unexpected end of file in the header")
        return data

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def count(self, what: str) -> int:
        n = self.scalar("<Q")
        if n > self.size:
            raise ValueError(f"{what} of {n} exceeds the file size")
        return n

    def string(self) -> str:
        return self.read(self.count("string length")).decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        if self.fh.tell() + n > self.size:
            raise ValueError("value runs past the end of the file")
        self.fh.seek(n, 1)

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, n = self.scalar("<I"), self.count("array length")
            if n > SHORT_ARRAY:
                if item_type == _STRING:
                    for _ in range(n):
                        self.skip(self.count("string length"))
                elif item_type in _SCALAR_FORMATS:
                    self.skip(n * struct.calcsize(_SCALAR_FORMATS[item_type]))
                else:
                    raise ValueError(f"unsupported array item type {item_type}")
                return _LongArray(n)
            return [self.value(item_type) for _ in range(n)]
        if vtype not in _SCALAR_FORMATS:
            raise ValueError(f"unknown value type {vtype}")
        return self.scalar(_SCALAR_FORMATS[vtype])


def _parse(path: Path, size: int) -> tuple[int, dict[str, Any], list[tuple[str, int, int, int]], int]:
    """(version, metadata, [(name, ggml type, n_elements, offset)], data start) of a GGUF file."""
    with path.open("rb", buffering=1 << 20) as fh:
        r = _HeaderReader(fh, size)
        r.read(4)
        version = r.scalar("<I")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        n_tensors, n_kv = r.count("tensor count"), r.count("metadata count")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = r.value(r.scalar("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.scalar("<I")
            if n_dims > 8:
                raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
            n_elements = 1
            for _ in range(n_dims):
                n_elements *= r.scalar("<Q")
            tensors.append((name, r.scalar("<I"), n_elements, r.scalar("<Q")))
        alignment = int(metadata.get("general.alignment", 32) or 32)
        data_start = -(-fh.tell() // alignment) * alignment
    return version, metadata, tensors, data_start


def read_gguf(path: str | Path) -> GGUFContents:
    """Parse and bounds-check a GGUF file. Raises InvalidModelFile with one line on any defect."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidModelFile(f"{path}: cannot read ({exc.strerror})") from None
    if size < MIN_HEADER_BYTES:
        raise InvalidModelFile(f"{path}: too small to be a GGUF file ({size} bytes)")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise InvalidModelFile(f"{path}: not a GGUF file (bad magic {magic!r}, expected b'GGUF')")
    try:
        version, metadata, tensors, data_start = _parse(path, size)
    except (ValueError, struct.error, OverflowError) as exc:
        raise InvalidModelFile(f"{path}: corrupt or truncated GGUF ({exc})") from None
    if not tensors:
        raise InvalidModelFile(f"{path}: GGUF file declares no tensors")

    n_params = 0
    tensor_types: dict[str, int] = {}
    entries: list[GGUFTensor] = []
    for name, ggml_type, n_elements, offset in tensors:
        try:
            qtype = GGMLQuantizationType(ggml_type)
            block, block_bytes = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise InvalidModelFile(f"{path}: tensor {name!r} has unknown type {ggml_type}") from None
        nbytes = n_elements // block * block_bytes
        end = data_start + offset + nbytes
        if end > size:
            raise InvalidModelFile(
                f"{path}: truncated GGUF: tensor {name!r} ends at byte {end} but the file has {size} bytes")
        n_params += n_elements
        tensor_types[qtype.name] = tensor_types.get(qtype.name, 0) + 1
        entries.append(GGUFTensor(name, qtype.name, n_elements, nbytes))
    tokens = metadata.get("tokenizer.ggml.tokens")
    return GGUFContents(
        path=path, version=version, metadata=metadata, n_tensors=len(tensors), n_params=n_params,
        tensor_types=tensor_types, vocab_size=len(tokens) if tokens is not None else 0, file_size=size,
        tensors=entries,
    )


def file_type_name(contents: GGUFContents) -> str:
    """The quantisation type the file declares (`general.file_type`), e.g. "Q4_K_M"; else its dominant tensor type."""
    import gguf

    ft = contents.get("general.file_type")
    if ft is not None:
        try:
            return gguf.LlamaFileType(int(ft)).name.replace("MOSTLY_", "")
        except ValueError:
            pass
    if contents.tensor_types:
        return max(contents.tensor_types.items(), key=lambda kv: kv[1])[0]
    return "unknown"
