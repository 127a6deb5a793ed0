"""The device-target table for the web app's "Your device" page (`ondevice serve`, then `/`).

Registered in the "ondevice.device_targets" entry-point group (pyproject.toml), so the runtime shows it without
importing bench. A prediction from shapes and the device catalog (`bench.predict`): no model file, no measuring,
milliseconds.
"""

from __future__ import annotations

from bench.devices import find_device, list_devices
from bench.predict import predict

PROBE = "llama3-8b"   # the seed target's model class: a 7-10B LLM
QUANT = "Q4_K_M"
DEFAULT_DEVICE = "apple-m2"


def device_targets(device: str | None = None) -> dict:
    """The seed targets (7-10B, decode 10 / 20 tok/s, fits 8 / 16 GB) predicted for `device` (a catalog name or
    alias; default apple-m2), with the catalog to choose from. An unknown device raises InvalidInput."""
    dev = find_device(device or DEFAULT_DEVICE)
    pred = predict(probe=PROBE, quant=QUANT, device=dev.name)
    rows = [[t.name, t.target, t.predicted, "PASS" if t.passed else "FAIL",
             f"{t.margin_pct:+.1f}%" if t.margin_pct is not None else ""] for t in pred.targets]
    decode = (f"{pred.predicted_tg_tok_s:.1f} tok/s predicted = {pred.efficiency:.0%} of the "
              f"{pred.roofline_tg_tok_s:.1f} tok/s roofline" if pred.predicted_tg_tok_s is not None else pred.verdict)
    return {
        "title": "Device targets (predicted)",
        "devices": [{"name": d.name, "title": d.title} for d in list_devices()],
        "device": dev.name,
        "columns": ["target", "needed", "predicted", "result", "margin"],
        "rows": rows,
        "note": f"{pred.model} {pred.quant} on {pred.device_title} ({pred.backend}, {pred.ram_gb:g} GB, "
                f"{pred.bandwidth_gbps:g} GB/s peak), context {pred.n_ctx}: {decode}. The same numbers as "
                f"`ondevice predict --probe {PROBE} --device {dev.name}`; measured on this machine by "
                f"`ondevice bench --targets`.",
    }
