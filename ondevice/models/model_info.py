"""What a model is, read from its files without loading it: GGUF metadata, HF config.json or genai_config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from ondevice.errors import InvalidModelFile
from ondevice.models.gguf_file import file_type_name, read_gguf
from ondevice.models.onnx_folder import MAX_CONFIG_BYTES, check_genai_folder, read_json_object
from ondevice.models.store import ModelRef


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
    tensor_bytes: dict[str, int] | None = None  # GGUF tensor name -> bytes of its data (GGUF only)
    rope_theta: float = 0.0            # rotary base frequency; 0 when unknown
    norm_eps: float = 0.0              # RMSNorm epsilon; 0 when unknown
    qkv_bias: bool = False             # Q, K and V projections have biases (Qwen2)
    # Architecture-specific settings by their Hugging Face config names (the whole text config for an HF folder;
    # soft-capping values for a GGUF file or a shape table). Converters and probe writers read them.
    arch_config: dict = field(default_factory=dict)

    # Large or raw fields left out of to_dict() (the human-readable summary); dataclasses.asdict keeps them.
    _BULKY: ClassVar[tuple[str, ...]] = ("tensor_types", "tensor_bytes", "arch_config")

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        """KV cache size per token of context: K and V, every layer, every KV head (f16 by default).

        For other cache types use `ondevice.models.memory.kv_bytes`, which knows their bytes per element."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_element

    def to_dict(self) -> dict:
        """The scalar facts (per-tensor tables and raw config left out), for tables and summaries."""
        return {k: v for k, v in asdict(self).items() if k not in self._BULKY}

    @classmethod
    def from_shapes(cls, name: str, architecture: str, *, n_layers: int, n_embd: int, n_ff: int, n_heads: int,
                    n_kv_heads: int, head_dim: int, vocab_size: int, context_length: int, **facts) -> "ModelInfo":
        """A ModelInfo from shapes alone, with no file (model-family tables, shape probes).

        Size, parameter count and quant stay 0/"" until someone plans its tensors (`bench.probe.probe_info` fills
        them for a GGUF quant type). Other fields (rope_theta, norm_eps, tied_embeddings, sliding_window,
        qkv_bias, arch_config, ...) pass through `facts`.
        """
        base = dict(path="", format="gguf", quant="", n_params=0, size_bytes=0, bits_per_weight=0.0,
                    has_chat_template=False)
        base.update(facts)
        return cls(name=name, architecture=architecture, n_layers=n_layers, n_embd=n_embd, n_ff=n_ff,
                   n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, vocab_size=vocab_size,
                   context_length=context_length, **base)


def _dir_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _bpw(size: int, params: int) -> float:
    return round(size * 8 / params, 3) if params else 0.0


# GGUF keys (after the "<arch>." prefix) kept in ModelInfo.arch_config; llama.cpp uses the HF config names for them.
_GGUF_ARCH_KEYS = ("attn_logit_softcapping", "final_logit_softcapping")


def _first(value: Any) -> int:
    """A per-layer array (some architectures vary n_ff by layer) reduced to its largest value; scalars as is."""
    if isinstance(value, list):
        return int(max(value)) if value else 0
    return int(value or 0)


def _from_gguf(ref: ModelRef) -> ModelInfo:
    g = read_gguf(ref.path)
    n_heads = _first(g.arch_value("attention.head_count", 0))
    n_embd = int(g.arch_value("embedding_length", 0) or 0)
    head_dim = int(g.arch_value("attention.key_length", 0) or (n_embd // n_heads if n_heads else 0))
    types = {t.name: t.type for t in g.tensors}
    return ModelInfo(
        name=ref.name, path=str(ref.path), format="gguf", architecture=g.architecture,
        n_layers=int(g.arch_value("block_count", 0) or 0), n_heads=n_heads,
        n_kv_heads=_first(g.arch_value("attention.head_count_kv", n_heads)) or n_heads, head_dim=head_dim,
        n_embd=n_embd, context_length=int(g.arch_value("context_length", 0) or 0), vocab_size=g.vocab_size,
        quant=file_type_name(g), n_params=g.n_params, size_bytes=g.file_size,
        bits_per_weight=_bpw(g.file_size, g.n_params),
        has_chat_template=bool(g.get("tokenizer.chat_template")), licence=ref.licence,
        n_ff=_first(g.arch_value("feed_forward_length", 0)),
        sliding_window=int(g.arch_value("attention.sliding_window", 0) or 0),
        tied_embeddings="output.weight" not in types, tensor_types=types,
        tensor_bytes={t.name: t.nbytes for t in g.tensors},
        rope_theta=float(g.arch_value("rope.freq_base", 0.0) or 0.0),
        norm_eps=float(g.arch_value("attention.layer_norm_rms_epsilon", 0.0) or 0.0),
        qkv_bias="blk.0.attn_q.bias" in types,
        arch_config={k: g.arch_value(k) for k in _GGUF_ARCH_KEYS if g.arch_value(k) is not None},
    )


def _read_json(path: Path) -> dict:
    return read_json_object(path)


def _hf_params(folder: Path) -> int:
    """Count parameters from safetensors headers (no weights are read); a header that is not a safetensors one is
    an InvalidModelFile naming the file."""
    import struct

    total = 0
    for st in folder.glob("*.safetensors"):
        try:
            with st.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > MAX_CONFIG_BYTES:
                    raise ValueError(f"a header of {n} bytes")
                header = json.loads(fh.read(n))
            for key, meta in header.items():
                if key != "__metadata__":
                    count = 1
                    for dim in meta["shape"]:
                        if type(dim) is not int or dim < 0:
                            raise ValueError(f"tensor {key!r} has shape {meta['shape']!r}")
                        count *= dim
                    total += count
        except (OSError, struct.error, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise InvalidModelFile(f"{st}: not a readable safetensors file ({str(exc)[:120]})") from None
    return total


def _number(config: dict, key: str, default: Any, where: str, kind: type = int) -> Any:
    """config[key] as `kind` (int or float), `default` when absent or null; a wrong type is an InvalidModelFile."""
    value = config.get(key)
    if value is None:
        return default
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok or value < 0 and kind is int:
        raise InvalidModelFile(f"{where}: {key!r} must be a {'number' if kind is float else 'whole number'} "
                               f"(>= 0), got {json.dumps(value)[:40]}")
    return kind(value)


def hf_config_info(config: dict, name: str = "", path: str = "") -> ModelInfo:
    """The shape facts of a Hugging Face config.json (its `text_config` for multimodal ones), with no file read.

    Sizes and the parameter count stay 0 (`read_info` on the folder fills them from the safetensors headers).
    Defaults for absent keys are those of the transformers llama config (rope base 10000, RMSNorm eps 1e-6).
    """
    where = f"{path or name} config.json"
    if not isinstance(config, dict):
        raise InvalidModelFile(f"{where} must hold a JSON object")
    text = config.get("text_config") or config
    if not isinstance(text, dict):
        raise InvalidModelFile(f"{where}: 'text_config' must be an object")
    n_heads = _number(text, "num_attention_heads", 0, where)
    n_embd = _number(text, "hidden_size", 0, where)
    head_dim = _number(text, "head_dim", 0, where) or (n_embd // n_heads if n_heads else 0)
    sliding = _number(text, "sliding_window", 0, where) if text.get("use_sliding_window", True) else 0
    return ModelInfo.from_shapes(
        name, str(text.get("model_type", "unknown")), path=path, format="hf",
        n_layers=_number(text, "num_hidden_layers", 0, where), n_embd=n_embd,
        n_ff=_number(text, "intermediate_size", 0, where),
        n_heads=n_heads, n_kv_heads=_number(text, "num_key_value_heads", 0, where) or n_heads,
        head_dim=head_dim, vocab_size=_number(text, "vocab_size", 0, where),
        context_length=_number(text, "max_position_embeddings", 0, where),
        # Qwen2 configs name a window but switch it off with use_sliding_window
        sliding_window=sliding,
        tied_embeddings=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        rope_theta=_number(text, "rope_theta", 10000.0, where, float),
        norm_eps=_number(text, "rms_norm_eps", 1e-6, where, float),
        qkv_bias=bool(text.get("attention_bias", False)) or text.get("model_type") == "qwen2", arch_config=text,
    )


def _from_config(ref: ModelRef, config: dict, fmt: str, quant: str, folder: Path) -> ModelInfo:
    info = hf_config_info(config, ref.name, str(ref.path))
    size = _dir_size(folder)
    params = _hf_params(folder)
    tok_cfg = folder / "tokenizer_config.json"
    has_template = tok_cfg.exists() and "chat_template" in _read_json(tok_cfg)
    info.format, info.quant, info.n_params, info.size_bytes = fmt, quant, params, size
    info.bits_per_weight = _bpw(size, params)
    info.has_chat_template = has_template or (folder / "chat_template.jinja").exists()
    info.licence = ref.licence
    return info


def _from_hf(ref: ModelRef) -> ModelInfo:
    config = _read_json(ref.path / "config.json")
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32").replace("bfloat", "bf").replace("float", "f")
    return _from_config(ref, config, "hf", dtype, ref.path)


def _onnx_meta(folder: Path) -> dict:
    """ondevice_onnx.json (written by quantize's ONNX export): {"quant": str, "n_params": int}, checked."""
    meta = folder / "ondevice_onnx.json"
    if not meta.exists():
        return {"quant": "unknown", "n_params": 0}
    data = _read_json(meta)
    quant = data.get("quant", "unknown")
    if not isinstance(quant, str):
        raise InvalidModelFile(f"{meta}: 'quant' must be a string")
    return {"quant": quant, "n_params": _number(data, "n_params", 0, str(meta))}


def _onnx_quant(folder: Path) -> str:
    return _onnx_meta(folder)["quant"]


def _from_onnx_genai(ref: ModelRef) -> ModelInfo:
    genai = check_genai_folder(ref.path)  # every value in range and consistent with model.onnx (issue 23)
    config = _read_json(ref.path / "config.json") if (ref.path / "config.json").exists() else {}
    info = _from_config(ref, config, "onnx-genai", _onnx_quant(ref.path), ref.path)
    info.n_layers, info.n_heads, info.n_kv_heads = genai.n_layers, genai.n_heads, genai.n_kv_heads
    info.head_dim, info.n_embd = genai.head_size, genai.hidden_size
    info.context_length, info.vocab_size = genai.context_length, genai.vocab_size
    info.n_params = info.n_params or _onnx_params(ref.path)
    info.bits_per_weight = _bpw(info.size_bytes, info.n_params)
    return info


def _onnx_params(folder: Path) -> int:
    return _onnx_meta(folder)["n_params"]


def _from_onnx_encoder(ref: ModelRef) -> ModelInfo:
    folder = ref.path if ref.path.is_dir() else ref.path.parent
    config = _read_json(folder / "config.json") if (folder / "config.json").exists() else {}
    info = _from_config(ref, config, "onnx-encoder", _onnx_quant(folder), folder)
    info.n_params = info.n_params or _onnx_params(folder)
    info.bits_per_weight = _bpw(info.size_bytes, info.n_params)
    return info


def _from_remote(ref: ModelRef) -> ModelInfo:
    """What we know of a remote model without asking it: its name. Shapes and sizes are the server's business."""
    return ModelInfo(name=ref.name, path=ref.location, format="remote", architecture="remote", n_layers=0,
                     n_heads=0, n_kv_heads=0, head_dim=0, n_embd=0, context_length=0, vocab_size=0, quant="remote",
                     n_params=0, size_bytes=0, bits_per_weight=0.0, has_chat_template=True)


INFO_READERS: dict[str, Callable[[ModelRef], ModelInfo]] = {
    "gguf": _from_gguf,
    "hf": _from_hf,
    "onnx-genai": _from_onnx_genai,
    "onnx-encoder": _from_onnx_encoder,
    "remote": _from_remote,
}


def read_info(ref: ModelRef) -> ModelInfo:
    """Model facts for any supported format, without loading the weights."""
    return INFO_READERS[ref.format](ref)
