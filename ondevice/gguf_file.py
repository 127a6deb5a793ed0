"""Read and check GGUF files in Python before the C loader sees them.

llama.cpp aborts the whole process on some malformed files; we refuse them first with one clear line. The `gguf`
package (llama.cpp's own reader) parses the header, metadata and tensor table; we add the bounds checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ondevice.errors import InvalidModelFile

GGUF_MAGIC = b"GGUF"
MIN_HEADER_BYTES = 24  # magic(4) + version(4) + n_tensors(8) + n_kv(8)


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

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)


def _field_value(reader_field: Any) -> Any:
    """Decode one GGUFReader field into a Python value (strings, numbers, short lists)."""
    import gguf

    types = reader_field.types
    if not types:
        return None
    if types[0] == gguf.GGUFValueType.STRING:
        return bytes(reader_field.parts[reader_field.data[0]]).decode("utf-8", errors="replace")
    if types[0] == gguf.GGUFValueType.ARRAY:
        # Arrays (vocabularies, merges) can be huge: keep the length, decode only short ones.
        n = len(reader_field.data)
        if n > 64:
            return _LongArray(n)
        if len(types) > 1 and types[1] == gguf.GGUFValueType.STRING:
            return [bytes(reader_field.parts[i]).decode("utf-8", errors="replace") for i in reader_field.data]
        return [reader_field.parts[i].tolist()[0] for i in reader_field.data]
    value = reader_field.parts[reader_field.data[0]].tolist()
    return value[0] if len(value) == 1 else value


class _LongArray(list):
    """Stands for a long metadata array we did not decode; len() is the real length."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"<array of {self.n}>"


def read_gguf(path: str | Path) -> GGUFContents:
    """Parse and bounds-check a GGUF file. Raises InvalidModelFile with one line on any defect."""
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
        import gguf

        reader = gguf.GGUFReader(str(path), "r")
    except Exception as exc:  # the reader raises ValueError/IndexError/... on malformed or truncated input
        raise InvalidModelFile(f"{path}: corrupt or truncated GGUF ({type(exc).__name__}: {exc})") from None

    n_params = 0
    tensor_types: dict[str, int] = {}
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > size:
            raise InvalidModelFile(
                f"{path}: truncated GGUF: tensor {tensor.name!r} ends at byte {end} but the file has {size} bytes")
        n_params += int(tensor.n_elements)
        type_name = tensor.tensor_type.name
        tensor_types[type_name] = tensor_types.get(type_name, 0) + 1
    if not reader.tensors:
        raise InvalidModelFile(f"{path}: GGUF file declares no tensors")

    metadata: dict[str, Any] = {}
    for name, reader_field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        try:
            metadata[name] = _field_value(reader_field)
        except Exception:
            metadata[name] = None
    tokens = metadata.get("tokenizer.ggml.tokens")
    version_field = reader.fields.get("GGUF.version")
    version = int(version_field.parts[version_field.data[0]][0]) if version_field is not None else 0
    return GGUFContents(
        path=path, version=version, metadata=metadata, n_tensors=len(reader.tensors), n_params=n_params,
        tensor_types=tensor_types, vocab_size=len(tokens) if tokens is not None else 0, file_size=size,
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
