"""ONNX Runtime execution providers side by side: embeddings/s (encoder) and decode tok/s (onnxruntime-genai LLM)
on each requested device, in one run, with the provider each one really ran on.

    ondevice bench providers --embed MINILM_ONNX_DIR --llm ONNX_LLM_DIR --devices cpu,openvino

A device that falls back (for example "openvino" where its plugin offers no device) is measured as what it ran
on, and its row says so, so a fallback is never reported as an accelerator's number.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

import ondevice

TEXTS = [f"Note {i}: the on-device assistant indexes documents, answers questions and runs small models."
         for i in range(64)]
PROMPT = "The three most important ideas in computer science are"


@dataclass
class ProviderRow:
    task: str  # "embed" or "decode"
    requested: str
    provider: str  # what Model.device reported
    note: str  # the fallback reason, "" when the requested provider ran it
    load_s: float
    rate: float  # embeddings/s or decode tok/s
    unit: str
    cosine_vs_first: float | None = None  # embeddings only: min cosine against the first device's vectors


def _load(model: str, device: str, threads: int, **kw):
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        m = ondevice.load(model, device=device, threads=threads, **kw)
    return m, time.perf_counter() - t0, m.device_note


def bench_embed(model: str, devices: list[str], threads: int, repeats: int) -> list[ProviderRow]:
    rows, first = [], None
    for device in devices:
        m, load_s, note = _load(model, device, threads)
        try:
            vectors = m.embed(TEXTS)  # warm-up (and the first compile of a dynamic-shape graph)
            t0 = time.perf_counter()
            for _ in range(repeats):
                m.embed(TEXTS)
            rate = len(TEXTS) * repeats / (time.perf_counter() - t0)
            first = vectors if first is None else first
            rows.append(ProviderRow("embed", device, m.device, note, round(load_s, 2), round(rate, 1), "emb/s",
                                    round(float(np.min(np.sum(first * vectors, axis=1))), 6)))
        finally:
            m.close()
    return rows


def bench_decode(model: str, devices: list[str], threads: int, n_gen: int) -> list[ProviderRow]:
    rows = []
    for device in devices:
        m, load_s, note = _load(model, device, threads, n_ctx=512)
        try:
            m.generate(PROMPT, max_tokens=4, temperature=0)  # warm-up
            m.clear_cache()  # the measured run prefills from scratch
            rate = m.generate(PROMPT, max_tokens=n_gen, temperature=0).timings.decode_tokens_per_s
            rows.append(ProviderRow("decode", device, m.device, note, round(load_s, 2), round(rate, 1), "tok/s"))
        finally:
            m.close()
    return rows


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("providers")
