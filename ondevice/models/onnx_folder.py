"""An onnxruntime-genai model folder checked before onnxruntime allocates anything (issue 23).

onnxruntime-genai trusts `genai_config.json`: `head_size: 1000000` makes it allocate ~22 GB until the kernel kills
the process, `num_hidden_layers: 1000000000` runs for minutes, and `context_length: 10**12` wraps to -2**31 inside
it. So every value it reads is type- and range-checked here (limits: `LIMITS`, docs/limits.md) and compared with
the real graph: the decoder's inputs and outputs are read from `model.onnx` (a few protobuf fields, skipping the
weights, no onnx package needed) and must have the names, count and static sizes the config claims.
"""

from __future__ import annotations

import json
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ondevice.errors import InvalidModelFile

# name -> (lowest, highest) accepted. Each is far above any released model and far below what overflows or
# exhausts memory (docs/limits.md).
LIMITS = {
    "context_length": (1, 1 << 20),     # 1M tokens; onnxruntime-genai's int32 sizes wrap above 2**31
    "vocab_size": (1, 1 << 21),         # 2M tokens (the largest vocabularies are ~260k)
    "num_hidden_layers": (1, 1024),
    "num_attention_heads": (1, 1024),
    "num_key_value_heads": (1, 1024),
    "head_size": (1, 1024),
    "hidden_size": (1, 1 << 17),
    "max_length": (1, 1 << 20),
}
MAX_CONFIG_BYTES = 16 << 20  # a genai_config.json or config.json is a few KB


def read_json_object(path: Path, what: str | None = None) -> dict:
    """A JSON object from `path`, or InvalidModelFile saying which file and what is wrong with it (missing, not
    a regular file, too big, not UTF-8, not JSON, not an object)."""
    what = what or path.name
    try:
        if not path.is_file():
            raise InvalidModelFile(f"{path.parent}: no {what} (or it is not a regular file)")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InvalidModelFile(f"{path}: {path.stat().st_size >> 20} MiB, too big for a {what}")
        value = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise InvalidModelFile(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InvalidModelFile(f"{path}: {what} is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidModelFile(f"{path}: {what} is not JSON ({str(exc)[:120]})") from None
    if not isinstance(value, dict):
        raise InvalidModelFile(f"{path}: {what} must hold a JSON object, not a {type(value).__name__}")
    return value


def int_field(mapping: dict, key: str, where: str, default: Any = None, low: int | None = None,
              high: int | None = None) -> Any:
    """mapping[key] as an int within [low, high] (LIMITS[key] when not given); `default` when absent (a default of
    None with the key absent is an error)."""
    if key not in mapping or mapping[key] is None and default is not None:
        if default is None:
            raise InvalidModelFile(f"{where}: no {key!r}")
        return default
    value = mapping[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidModelFile(f"{where}: {key!r} must be an integer, got {json.dumps(value)[:40]}")
    lo, hi = LIMITS.get(key, (None, None))
    lo, hi = low if low is not None else lo, high if high is not None else hi
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidModelFile(f"{where}: {key} {value} is outside {lo}..{hi} (ondevice's limit, docs/limits.md)")
    return value


def _dict_field(mapping: dict, key: str, where: str, required: bool = True) -> dict:
    value = mapping.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InvalidModelFile(f"{where}: {key!r} must be an object" + ("" if key in mapping else " (missing)"))
    return value


def _str_field(mapping: dict, key: str, where: str, default: str | None = None) -> str:
    value = mapping.get(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidModelFile(f"{where}: {key!r} must be a non-empty string")
    return value


@dataclass(frozen=True)
class GenaiConfig:
    """The checked facts of a genai_config.json."""

    context_length: int
    vocab_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_size: int
    hidden_size: int
    eos_ids: frozenset[int]
    filename: str


def check_genai_folder(folder: Path, graph: bool = True) -> GenaiConfig:
    """Check `folder`'s genai_config.json (types, ranges, consistency) and, with `graph`, that its decoder graph
    has the inputs and outputs the config names, one past key/value pair per layer, of the sizes it claims."""
    folder = Path(folder)
    path = folder / "genai_config.json"
    config = read_json_object(path, "genai_config.json")
    where = str(path)
    model = _dict_field(config, "model", where)
    decoder = _dict_field(model, "decoder", f"{where} model")
    d_where = f"{where} model.decoder"
    context = int_field(model, "context_length", f"{where} model")
    vocab = int_field(model, "vocab_size", f"{where} model")
    layers = int_field(decoder, "num_hidden_layers", d_where)
    heads = int_field(decoder, "num_attention_heads", d_where)
    kv_heads = int_field(decoder, "num_key_value_heads", d_where, default=heads)
    head_size = int_field(decoder, "head_size", d_where)
    hidden = int_field(decoder, "hidden_size", d_where)
    if kv_heads > heads or heads % kv_heads:
        raise InvalidModelFile(f"{d_where}: num_key_value_heads {kv_heads} must divide num_attention_heads {heads}")
    search = _dict_field(config, "search", where, required=False)
    if "max_length" in search:
        int_field(search, "max_length", f"{where} search", high=context)
    eos = model.get("eos_token_id", [])
    eos_list = eos if isinstance(eos, list) else [eos]
    for key in ("bos_token_id", "pad_token_id"):
        if key in model:
            int_field(model, key, f"{where} model", low=-1, high=vocab - 1)
    if not all(type(e) is int and 0 <= e < vocab for e in eos_list):
        raise InvalidModelFile(f"{where} model: eos_token_id must be token ids below vocab_size {vocab}, got "
                               f"{json.dumps(eos)[:60]}")
    if "pipeline" in decoder:  # several graphs (vision/speech models): their files are named per stage
        graph = False
    filename = _str_field(decoder, "filename", d_where, "model.onnx")
    try:  # a name too long for the filesystem, or with a NUL, is an OSError/ValueError here, not a file
        onnx = (folder / filename).resolve()
        inside = folder.resolve() in onnx.parents and (not graph or onnx.is_file())
    except (OSError, ValueError):
        inside = False
    if not inside:
        raise InvalidModelFile(f"{d_where}: filename {filename[:80]!r} is not a file in {folder}")
    inputs = _dict_field(decoder, "inputs", d_where, required=False)
    outputs = _dict_field(decoder, "outputs", d_where, required=False)
    for section, names in (("inputs", inputs), ("outputs", outputs)):
        for key, value in names.items():
            if not isinstance(value, str):
                raise InvalidModelFile(f"{d_where}.{section}: {key!r} must be a string")
    if graph:
        _check_graph(onnx, inputs, outputs, layers, kv_heads, head_size, vocab, d_where)
    return GenaiConfig(context, vocab, layers, heads, kv_heads, head_size, hidden, frozenset(eos_list), filename)


def _check_graph(onnx: Path, inputs: dict, outputs: dict, layers: int, kv_heads: int, head_size: int,
                 vocab: int, where: str) -> None:
    try:
        graph_in, graph_out = graph_io(onnx)
    except (OSError, ValueError) as exc:
        raise InvalidModelFile(f"{onnx}: not a readable ONNX model ({exc})") from None
    input_ids = inputs.get("input_ids", "input_ids")
    if input_ids not in graph_in:
        raise InvalidModelFile(f"{where}: input {input_ids!r} is not an input of {onnx.name} (its inputs: "
                               f"{', '.join(sorted(graph_in)[:8])})")
    if "attention_mask" in inputs and inputs["attention_mask"] not in graph_in:
        raise InvalidModelFile(f"{where}: input {inputs['attention_mask']!r} is not an input of {onnx.name}")
    for kind in ("key", "value"):
        pattern = inputs.get(f"past_{kind}_names", f"past_key_values.%d.{kind}")
        if "%d" not in pattern:
            raise InvalidModelFile(f"{where}: past_{kind}_names {pattern!r} has no %d")
        prefix, _, suffix = pattern.partition("%d")
        present = [n for n in graph_in if n.startswith(prefix) and n.endswith(suffix)
                   and n[len(prefix):len(n) - len(suffix)].isdigit()]
        if len(present) != layers:
            raise InvalidModelFile(f"{where}: num_hidden_layers is {layers} but {onnx.name} has {len(present)} "
                                   f"{pattern!r} inputs")
        for i in range(layers):
            name = pattern.replace("%d", str(i))
            dims = graph_in.get(name)
            if dims is None:
                raise InvalidModelFile(f"{where}: {onnx.name} has no input {name!r}")
            if len(dims) == 4 and isinstance(dims[1], int) and dims[1] != kv_heads:
                raise InvalidModelFile(f"{where}: num_key_value_heads is {kv_heads} but {name} has {dims[1]} heads")
            if len(dims) == 4 and isinstance(dims[3], int) and dims[3] != head_size:
                raise InvalidModelFile(f"{where}: head_size is {head_size} but {name} has {dims[3]}")
    logits = outputs.get("logits", "logits")
    if logits not in graph_out:
        raise InvalidModelFile(f"{where}: output {logits!r} is not an output of {onnx.name}")
    dims = graph_out[logits]
    if dims and isinstance(dims[-1], int) and dims[-1] != vocab:
        raise InvalidModelFile(f"{where}: vocab_size is {vocab} but {onnx.name}'s {logits} has {dims[-1]} entries")


# --- a minimal reader of an ONNX file's graph inputs and outputs (protobuf wire format) ----------------------------
def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int = 0, end: int | None = None):
    """(field number, wire type, value or (start, end) of a length-delimited field) of one message."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError("a field runs past the end")
            yield number, wire, (pos, pos + n)
            pos += n
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
    if pos != end:
        raise ValueError("a field runs past the end")


def _value_info(buf, span) -> tuple[str, list]:
    name, dims = "", []
    for number, wire, value in _fields(buf, *span):
        if number == 1 and wire == 2:  # ValueInfoProto.name
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == 2 and wire == 2:  # .type -> TypeProto.tensor_type -> .shape -> dims
            for n2, w2, tensor in _fields(buf, *value):
                if n2 == 1 and w2 == 2:
                    for n3, w3, shape in _fields(buf, *tensor):
                        if n3 == 2 and w3 == 2:
                            for n4, w4, dim in _fields(buf, *shape):
                                if n4 == 1 and w4 == 2:
                                    size: int | str = "?"
                                    for n5, w5, v in _fields(buf, *dim):
                                        size = v if n5 == 1 and w5 == 0 else size
                                    dims.append(size)
    return name, dims


def graph_io(path: Path) -> tuple[dict[str, list], dict[str, list]]:
    """({input name: dims}, {output name: dims}) of an ONNX model's main graph; a dim is an int when static, else
    "?". Weights (inline or external) are skipped, not read."""
    with open(path, "rb") as fh:
        if fh.seek(0, 2) == 0:
            raise ValueError("empty file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            inputs: dict[str, list] = {}
            outputs: dict[str, list] = {}
            graphs = [span for number, wire, span in _fields(buf) if number == 7 and wire == 2]
            if not graphs:
                raise ValueError("no graph")
            for number, wire, span in _fields(buf, *graphs[0]):
                if number in (11, 12) and wire == 2:  # GraphProto.input / .output
                    name, dims = _value_info(buf, span)
                    (inputs if number == 11 else outputs)[name] = dims
            return inputs, outputs
