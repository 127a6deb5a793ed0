"""Structured-output benchmark: do constrained answers parse and validate, and what does the constraint cost?

    ondevice bench structured                       # GGUF smollm2-135m and its ONNX int4 export, 50 schemas
    ondevice bench structured --onnx none --limit 10

For each backend and temperature, every schema of `bench.structured_schemas` is asked through the public
`Model.chat(..., schema=...)`; the answer is checked with the jsonschema library (Draft 2020-12, with its format
checker). Decode speed is the aggregate decode tok/s of the constrained answers next to the same prompts decoded
without a schema, in the same process, one after the other (same model, threads and machine state).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.structured_schemas import SCHEMAS


@dataclass
class Row:
    """One backend at one temperature."""

    backend: str
    temperature: float
    schemas: int = 0
    valid: int = 0
    failures: list[str] = field(default_factory=list)
    constrained_tokens: int = 0
    constrained_decode_ms: float = 0.0
    free_tokens: int = 0
    free_decode_ms: float = 0.0
    mask_tokens: int = 0
    mask_ms: float = 0.0   # the engine alone: mask + advance, replayed over the answers' tokens

    @property
    def valid_share(self) -> float:
        return self.valid / self.schemas if self.schemas else 0.0

    @property
    def constrained_tok_s(self) -> float:
        return self.constrained_tokens * 1000 / self.constrained_decode_ms if self.constrained_decode_ms else 0.0

    @property
    def free_tok_s(self) -> float:
        return self.free_tokens * 1000 / self.free_decode_ms if self.free_decode_ms else 0.0

    @property
    def mask_ms_per_token(self) -> float:
        return self.mask_ms / self.mask_tokens if self.mask_tokens else 0.0

    @property
    def slowdown(self) -> float:
        """Constrained decode time per token relative to unconstrained (0.05 = 5% slower)."""
        return self.free_tok_s / self.constrained_tok_s - 1 if self.constrained_tok_s else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "valid_share": round(self.valid_share, 4),
                "constrained_tok_s": round(self.constrained_tok_s, 1), "free_tok_s": round(self.free_tok_s, 1),
                "mask_ms_per_token": round(self.mask_ms_per_token, 4),
                "slowdown": round(self.slowdown, 4)}


def _validator(schema: dict):
    import jsonschema

    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _steps(result) -> tuple[int, float]:
    t = result.timings
    return max(t.completion_tokens - 1, 0), t.decode_ms


def replay_ms(model, schema, tokens: list[int]) -> float:
    """Milliseconds the constraint engine alone spends on `tokens` (mask a logits row, then advance), without the
    model: the per-token cost that constrained decoding adds, free of the machine's decode-speed noise."""
    import numpy as np

    from ondevice.decoding.structured import schema_grammar

    constraint = schema_grammar(schema).constraint(model.backend.vocabulary())
    row = np.zeros(model.backend.vocabulary().tokenizer.vocab_size, dtype=np.float32)
    start = time.perf_counter()
    for token in tokens:
        constraint.apply(row)
        constraint.accept(token)
    return (time.perf_counter() - start) * 1000


def run_backend(model, label: str, temperatures: list[float], schemas, max_tokens: int, free_tokens: int,
                log=print) -> list[Row]:
    rows = []
    for temperature in temperatures:
        row = Row(label, temperature)
        for i, (name, prompt, schema) in enumerate(schemas):
            messages = [{"role": "user", "content": f"{prompt} Answer in JSON."}]
            result = model.chat(messages, schema=schema, max_tokens=max_tokens, temperature=temperature, seed=i)
            row.schemas += 1
            try:
                errors = list(_validator(schema).iter_errors(json.loads(result.text)))
            except json.JSONDecodeError:
                errors = [f"not JSON ({result.finish_reason})"]
            if errors:
                row.failures.append(f"{name}: {str(errors[0])[:120]}")
            else:
                row.valid += 1
            row.mask_ms += replay_ms(model, schema, result.tokens)
            row.mask_tokens += len(result.tokens)
            steps, ms = _steps(result)
            row.constrained_tokens += steps
            row.constrained_decode_ms += ms
            free = model.chat(messages, max_tokens=free_tokens, temperature=temperature, seed=i)
            steps, ms = _steps(free)
            row.free_tokens += steps
            row.free_decode_ms += ms
        log(f"{label} T={temperature}: {row.valid}/{row.schemas} valid, constrained {row.constrained_tok_s:.1f} "
            f"tok/s vs free {row.free_tok_s:.1f} tok/s ({row.slowdown:+.1%}); engine {row.mask_ms_per_token:.3f} "
            f"ms/token")
        for failure in row.failures:
            log(f"  invalid: {failure}")
        rows.append(row)
    return rows


def _onnx_folder(spec: str, workdir: Path) -> str | None:
    if spec == "none":
        return None
    if spec != "auto":
        return spec
    from quantize.hf_source import to_hf_dir
    from quantize.onnx_export import export_onnx_llm

    return str(export_onnx_llm(to_hf_dir("smollm2-135m"), workdir / "smollm2-int4", "int4").path)


def run_structured(gguf: str = "smollm2-135m", onnx: str = "auto", temperatures: list[float] = (0.0, 0.8),
                   limit: int = len(SCHEMAS), max_tokens: int = 256, free_tokens: int = 64,
                   threads: int | None = None, log=print) -> list[Row]:
    """Every schema of the first `limit`, on the GGUF model and the ONNX one (each a name, path or "none"; ONNX
    "auto" exports smollm2-135m to int4 first), at each temperature: one `Row` per backend and temperature."""
    import ondevice

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, spec in (("gguf", gguf), ("onnx", _onnx_folder(onnx, Path(tmp)))):
            if spec in (None, "none"):
                continue
            with ondevice.load(spec, n_ctx=1024, threads=threads) as model:
                rows += run_backend(model, f"{label}:{model.name}", list(temperatures), SCHEMAS[:limit],
                                    max_tokens, free_tokens, log)
    return rows


def markdown(rows: list[Row]) -> str:
    lines = ["| backend | T | valid | constrained tok/s | unconstrained tok/s | slower | engine ms/token |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.backend} | {r.temperature} | {r.valid}/{r.schemas} ({r.valid_share:.0%}) | "
                     f"{r.constrained_tok_s:.1f} | {r.free_tok_s:.1f} | {r.slowdown:+.1%} | "
                     f"{r.mask_ms_per_token:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("structured")
