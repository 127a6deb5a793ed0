"""What a model is, read from its files without loading it: GGUF metadata, HF config.json or genai_config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ondevice.errors import InvalidModelFile
from ondevice.gguf_file import file_type_name, read_gguf
from ondevice.store import ModelRef


@dataclass
class ModelInfo:
    """Shape and size facts of a model (the numbers `fit`, `bench` and auto-config need)."""

    name: str
    path: str
    format: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_embd: int
    context_length: int
    vocab_size: int
    quant: str
    n_params: int
    size_bytes: int
    bits_per_weight: float
    has_chat_template: bool
    licence: str | None = None
    n_ff: int = 0                      # feed-forward (MLP) width; 0 when unknown
    sliding_window: int = 0            # attention window of sliding-window layers; 0 = none
    tied_embeddings: bool = False      # output head shares the token-embedding matrix
    tensor_types: dict[str, str] | None = None  # GGUF tensor name -> ggml type name (GGUF only)

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        """KV cache size per token of context: K and V, every layer, every KV head (f16 by default)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_element

    def to_dict(self) -> dict:
        return asdict(self)


def _dir_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _bpw(size: int, params: int) -> float:
    return round(size * 8 / params, 3) if params else 0.0


def _from_gguf(ref: ModelRef) -> ModelInfo:
    g = read_gguf(ref.path)
    n_heads = int(g.arch_value("attention.head_count", 0) or 0)
    n_embd = int(g.arch_value("embedding_length", 0) or 0)
    head_dim = int(g.arch_value("attention.key_length", 0) or (n_embd // n_heads if n_heads else 0))
    return ModelInfo(
        name=ref.name, path=str(ref.path), format="gguf", architecture=g.architecture,
        n_layers=int(g.arch_value("block_count", 0) or 0), n_heads=n_heads,
        n_kv_heads=int(g.arch_value("attention.head_count_kv", n_heads) or n_heads), head_dim=head_dim,
        n_embd=n_embd, context_length=int(g.arch_value("context_length", 0) or 0), vocab_size=g.vocab_size,
        quant=file_type_name(g), n_params=g.n_params, size_bytes=g.file_size,
        bits_per_weight=_bpw(g.file_size, g.n_params),
        has_chat_template=bool(g.get("tokenizer.chat_template")), licence=ref.licence,
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidModelFile(f"{path}: unreadable JSON ({exc})") from None


def _hf_params(folder: Path) -> int:
    """Count parameters from safetensors headers (no weights are read)."""
    import struct

    total = 0
    for st in folder.glob("*.safetensors"):
        with st.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, meta in header.items():
            if key != "__metadata__":
                count = 1
                for dim in meta["shape"]:
                    count *= dim
                total += count
    return total


def _from_config(ref: ModelRef, config: dict, fmt: str, quant: str, folder: Path) -> ModelInfo:
    text = config.get("text_config", config)
    n_heads = int(text.get("num_attention_heads", 0))
    n_embd = int(text.get("hidden_size", 0))
    size = _dir_size(folder)
    params = _hf_params(folder)
    tok_cfg = folder / "tokenizer_config.json"
    has_template = tok_cfg.exists() and "chat_template" in _read_json(tok_cfg)
    return ModelInfo(
        name=ref.name, path=str(ref.path), format=fmt, architecture=str(text.get("model_type", "unknown")),
        n_layers=int(text.get("num_hidden_layers", 0)), n_heads=n_heads,
        n_kv_heads=int(text.get("num_key_value_heads", n_heads) or n_heads),
        head_dim=int(text.get("head_dim") or (n_embd // n_heads if n_heads else 0)), n_embd=n_embd,
        context_length=int(text.get("max_position_embeddings", 0)), vocab_size=int(text.get("vocab_size", 0)),
        quant=quant, n_params=params, size_bytes=size, bits_per_weight=_bpw(size, params),
        has_chat_template=has_template or (folder / "chat_template.jinja").exists(), licence=ref.licence,
    )


def _from_hf(ref: ModelRef) -> ModelInfo:
    config = _read_json(ref.path / "config.json")
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32").replace("bfloat", "bf").replace("float", "f")
    return _from_config(ref, config, "hf", dtype, ref.path)


def _onnx_quant(folder: Path) -> str:
    meta = folder / "ondevice_onnx.json"  # written by quantize's ONNX export
    if meta.exists():
        return str(_read_json(meta).get("quant", "unknown"))
    return "unknown"


def _from_onnx_genai(ref: ModelRef) -> ModelInfo:
    genai = _read_json(ref.path / "genai_config.json")["model"]
    decoder = genai.get("decoder", {})
    config = _read_json(ref.path / "config.json") if (ref.path / "config.json").exists() else {}
    info = _from_config(ref, config, "onnx-genai", _onnx_quant(ref.path), ref.path)
    info.n_layers = int(decoder.get("num_hidden_layers", info.n_layers))
    info.n_heads = int(decoder.get("num_attention_heads", info.n_heads))
    info.n_kv_heads = int(decoder.get("num_key_value_heads", info.n_kv_heads))
    info.head_dim = int(decoder.get("head_size", info.head_dim))
    info.n_embd = int(decoder.get("hidden_size", info.n_embd))
    info.context_length = int(genai.get("context_length", info.context_length))
    info.vocab_size = int(genai.get("vocab_size", info.vocab_size))
    info.n_params = info.n_params or _onnx_params(ref.path)
    info.bits_per_weight = _bpw(info.size_bytes, info.n_params)
    return info


def _onnx_params(folder: Path) -> int:
    meta = folder / "ondevice_onnx.json"
    return int(_read_json(meta).get("n_params", 0)) if meta.exists() else 0


def _from_onnx_encoder(ref: ModelRef) -> ModelInfo:
    folder = ref.path if ref.path.is_dir() else ref.path.parent
    config = _read_json(folder / "config.json") if (folder / "config.json").exists() else {}
    info = _from_config(ref, config, "onnx-encoder", _onnx_quant(folder), folder)
    info.n_params = info.n_params or _onnx_params(folder)
    info.bits_per_weight = _bpw(info.size_bytes, info.n_params)
    return info


INFO_READERS: dict[str, Callable[[ModelRef], ModelInfo]] = {
    "gguf": _from_gguf,
    "hf": _from_hf,
    "onnx-genai": _from_onnx_genai,
    "onnx-encoder": _from_onnx_encoder,
}


def read_info(ref: ModelRef) -> ModelInfo:
    """Model facts for any supported format, without loading the weights."""
    return INFO_READERS[ref.format](ref)
