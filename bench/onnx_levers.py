"""Decode-speed levers of an ONNX LLM folder, measured side by side in one process (docs/quantize-quality.md, "Speed").

Two probes, both without ondevice's decode loop, so they show what onnxruntime and onnxruntime-genai do alone:

- `genai`: each VARIANT is `LABEL|FOLDER[|SESSION_OPTIONS_JSON[|MAX_LENGTH[|py or cpp]]]`, loaded once; every round
  runs each variant's 128-token greedy decode once, in a shuffled order (the model loaded first tends to be slower:
  compare rounds, not load order). SESSION_OPTIONS_JSON is merged into genai_config.json's decoder session_options
  (intra_op_num_threads defaults to --threads; `null` removes it, leaving onnxruntime-genai's own choice);
  MAX_LENGTH (the KV buffers' length) defaults to 4096 capped at the trained context; `py`
  samples with `get_logits` + NumPy argmax as ondevice does, `cpp` with genai's `generate_next_token`.
- `ort`: one decode step of FOLDER/model.onnx in a plain `onnxruntime.InferenceSession` (past of 64 tokens, median
  of 200), once per `KEY=VALUE` session config entry set given (e.g. `session.intra_op.allow_spinning=0`).

    ondevice bench onnx-levers genai "default|ONNX_FOLDER" "1 thread|ONNX_FOLDER|{\\"intra_op_num_threads\\":1}" --rounds 8
    ondevice bench onnx-levers ort ONNX_FOLDER "" session.intra_op.allow_spinning=0
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np


def genai_decode_rates(variants: list[str], rounds: int = 8, n_tokens: int = 128, threads: int = 2,
                       seed: int = 0) -> dict[str, list[float]]:
    """tok/s per round for each variant (see the module docstring for the variant syntax)."""
    import onnxruntime_genai as og

    loaded = []
    for spec in variants:
        label, folder, *rest = spec.split("|")
        options = {"intra_op_num_threads": threads, **(json.loads(rest[0]) if rest and rest[0] else {})}
        options = {k: v for k, v in options.items() if v is not None}
        config = og.Config(folder)
        config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        trained = json.loads((Path(folder) / "genai_config.json").read_text())["model"]["context_length"]
        max_length = int(rest[1]) if len(rest) > 1 and rest[1] else min(4096, trained)  # ondevice's bench ctx
        loaded.append((label, og.Model(config), max_length, rest[2] if len(rest) > 2 else "py"))

    def decode(model, max_length: int, mode: str) -> float:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=max_length, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(np.array([1], np.int32))
        t0 = time.perf_counter()
        for _ in range(n_tokens):
            if mode == "cpp":
                generator.generate_next_token()
            else:
                token = int(np.asarray(generator.get_logits()).reshape(-1).argmax())
                generator.append_tokens(np.array([token], np.int32))
        return n_tokens / (time.perf_counter() - t0)

    rates: dict[str, list[float]] = {label: [] for label, *_ in loaded}
    rng = random.Random(seed)
    for round_ in range(rounds + 1):  # round 0 warms up
        order = loaded[:]
        rng.shuffle(order)
        for label, model, max_length, mode in order:
            rate = decode(model, max_length, mode)
            if round_:
                rates[label].append(rate)
    return rates


def ort_step_ms(model_path: str | Path, config_entries: dict[str, str], threads: int = 2, past: int = 64,
                steps: int = 200) -> float:
    """Median ms of one decode step (1 new token after `past`) of a builder-made LLM graph in plain onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    for key, value in config_entries.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"input_ids": np.array([[5]], np.int64), "attention_mask": np.ones((1, past + 1), np.int64)}
    for arg in session.get_inputs():
        if arg.name.startswith("past_key_values."):  # [batch, kv_heads, past, head_size]
            feeds[arg.name] = rng.random((1, arg.shape[1], past, arg.shape[3]), dtype=np.float32)
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    for out in session.get_outputs():
        binding.bind_output(out.name)
    times = []
    for i in range(steps + 20):
        t0 = time.perf_counter()
        session.run_with_iobinding(binding)
        if i >= 20:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("onnx-levers")
