"""The decode roofline: tokens/s cannot exceed memory bandwidth / bytes read per generated token.

Each generated token reads every weight matrix once (the token embedding only one row, unless the output layer
reuses it) plus the KV cache up to the current depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ondevice.model_info import ModelInfo


@dataclass
class Roofline:
    """Predicted decode ceiling for one model on this machine, and how close the measurement came."""

    bandwidth_gbps: float
    bytes_per_token: int
    tg_max: float            # tokens/s at 100% of the measured bandwidth
    tg_measured: float | None = None
    efficiency: float | None = None  # measured / tg_max
    gap_pct: float | None = None     # how far below the ceiling the measurement is, in %


def weights_read_per_token(info: ModelInfo) -> int:
    """Bytes of weights one decode step reads: all tensors but the embedding table (one row of it is read),
    which is read in full only when it doubles as the output layer (tied embeddings)."""
    path = Path(info.path)
    if info.format != "gguf":
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in (".onnx", ".data", ".bin")]
        return sum(p.stat().st_size for p in files) or info.size_bytes
    import gguf

    reader = gguf.GGUFReader(path)
    sizes = {t.name: int(t.n_bytes) for t in reader.tensors}
    embd = sizes.get("token_embd.weight", 0)
    tied = "output.weight" not in sizes
    return sum(sizes.values()) - (0 if tied else embd)


def bytes_per_token(info: ModelInfo, depth: int, kv_bytes_per_element: float = 2.0) -> int:
    """Weights read per decode step plus the KV cache read at `depth` tokens of context."""
    return int(weights_read_per_token(info) + info.kv_bytes_per_token(kv_bytes_per_element) * depth)


def roofline(info: ModelInfo, bandwidth_gbps: float, depth: int, tg_measured: float | None = None) -> Roofline:
    """The ceiling for `info` at `bandwidth_gbps`, compared with a measured tg if given."""
    per_token = bytes_per_token(info, depth)
    tg_max = bandwidth_gbps * 1e9 / per_token if per_token else 0.0
    result = Roofline(round(bandwidth_gbps, 2), per_token, round(tg_max, 2), tg_measured)
    if tg_measured and tg_max:
        result.efficiency = round(tg_measured / tg_max, 3)
        result.gap_pct = round(100 * (1 - tg_measured / tg_max), 1)
    return result


def bandwidth_needed_gbps(tokens_per_s: float, per_token_bytes: int, efficiency: float = 1.0) -> float:
    """Bandwidth a device needs to decode `tokens_per_s`, reaching `efficiency` of its roofline."""
    return round(tokens_per_s * per_token_bytes / 1e9 / max(efficiency, 1e-6), 1)
