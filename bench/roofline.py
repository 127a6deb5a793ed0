"""The decode roofline: tokens/s cannot exceed memory bandwidth / bytes read per generated token.

The bandwidth is this machine's (`ondevice.machine.bandwidth.machine_bandwidth`, the same figure `doctor` shows) or a
catalog device's. Efficiency is reported as measured: a decode above 100% means the anchor is too low.

Each generated token reads every weight matrix once (the token embedding only one row, unless the output layer
reuses it) plus the KV cache up to the current depth; `ondevice.models.memory.decode_bytes_per_token` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.machine.bandwidth import anchor_note
from ondevice.models.memory import decode_bytes_per_token, weights_read_per_token  # noqa: F401 (re-exported)
from ondevice.models.model_info import ModelInfo


@dataclass
class Roofline:
    """Predicted decode ceiling for one model on this machine, and how close the measurement came."""

    bandwidth_gbps: float
    bytes_per_token: int
    tg_max: float            # tokens/s at 100% of the measured bandwidth
    tg_measured: float | None = None
    efficiency: float | None = None  # measured / tg_max, as measured: above 1 when decode beat the anchor
    gap_pct: float | None = None     # how far below the ceiling the measurement is, in % (negative: above it)
    note: str = ""                   # set when efficiency > 1: the bandwidth anchor is too low, not the decode


def bytes_per_token(info: ModelInfo, depth: int, kv_type: str = "f16") -> int:
    """Weights read per decode step plus the KV cache read at `depth` tokens of context (`ondevice.models.memory`)."""
    return decode_bytes_per_token(info, depth, kv_type)


def roofline(info: ModelInfo, bandwidth_gbps: float, depth: int, tg_measured: float | None = None,
             kv_type: str = "f16") -> Roofline:
    """The ceiling for `info` at `bandwidth_gbps`, compared with a measured tg if given. `info` carries the tensor
    table (read once per bench run), so no file is opened here."""
    per_token = bytes_per_token(info, depth, kv_type)
    tg_max = bandwidth_gbps * 1e9 / per_token if per_token else 0.0
    result = Roofline(round(bandwidth_gbps, 2), per_token, round(tg_max, 2), tg_measured)
    if tg_measured and tg_max:
        result.efficiency = round(tg_measured / tg_max, 3)
        result.gap_pct = round(100 * (1 - tg_measured / tg_max), 1)
        result.note = anchor_note(result.efficiency, bandwidth_gbps)
    return result


def bandwidth_needed_gbps(tokens_per_s: float, per_token_bytes: int, efficiency: float = 1.0) -> float:
    """Bandwidth a device needs to decode `tokens_per_s`, reaching `efficiency` of its roofline."""
    return round(tokens_per_s * per_token_bytes / 1e9 / max(efficiency, 1e-6), 1)
