"""What a quantised KV cache costs and saves: quality (KLD / same-top), memory, decode speed.

Quality uses the quantisation statistics (`quantize.evaluate.evaluate_many`, as `llama-perplexity
--kl-divergence`): the same GGUF opened once per cache configuration and scored on the standard library's pydoc
text. Two references: the exact cache (f32 elements, flash attention off: no rounding of Q, K, V or the attention
weights), against which every row is measured, and the f16 cache with flash attention (the configuration a q8_0 or
q4_0 cache replaces), against which the quantised rows are also measured. Attention reads K and V back from the
cache even inside one prompt batch, so the windows' logits carry the cache's rounding. Memory is the runtime's own
estimate of the KV cache (`ondevice.models.memory.kv_bytes`, the formula llama.cpp allocates by). Decode speed is measured
at a context depth: the prompt fills the cache to `depth` tokens, then tokens are generated one at a time.

    ondevice bench kv-cache smollm2-135m gemma3-270m --chunks 8 --threads 2
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import ondevice
from ondevice.models.memory import QUANTISED_KV_TYPES, kv_bytes
from ondevice.models.model_info import read_info
from ondevice.models.store import resolve


class _Labelled(ondevice.Model):
    """A second handle on a loaded model whose repr names its KV type: evaluate_many reuses the reference for a
    model whose str() equals the reference's, and one GGUF opened with several caches would otherwise match."""

    def __init__(self, model: ondevice.Model, label: str):
        super().__init__(model.backend)
        self._label = label

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} {self._label}>"

    def close(self) -> None:  # the original handle owns the backend
        pass


@dataclass
class KVTypeResult:
    model: str
    kv_type: str
    flash_attn: str
    kld_mean: float              # vs the exact (f32) cache
    kld_err: float
    kld_p99: float
    same_top_pct: float
    ppl: float
    ppl_base: float              # the exact cache's
    kld_vs_f16: float | None     # vs the f16 cache with flash attention (quantised rows only)
    kld_vs_f16_err: float | None
    kv_bytes_at_ctx: int         # KV cache bytes at `long_ctx`
    long_ctx: int
    decode_tok_s: dict           # context depth -> tok/s


def decode_speed(model: ondevice.Model, depth: int, n_gen: int = 32) -> float:
    """Decode tok/s after a prompt of `depth` random tokens (as llama-bench's tg at depth, -d)."""
    rng = random.Random(depth)
    vocab = model.info.vocab_size or 32000
    prompt = [rng.randrange(100, min(vocab, 30000)) for _ in range(depth)]
    params = ondevice.SamplingParams(max_tokens=n_gen, ignore_eos=True, speculative="off")
    timings = None
    for event in model.stream_events(prompt, params):
        timings = event.timings or timings
    return timings.decode_tokens_per_s


EXACT = ("f32", "off")
F16_FLASH = ("f16", "on")
CONFIGS = (EXACT, ("f16", "off"), F16_FLASH, ("q8_0", "on"), ("q4_0", "on"))


def measure(model: str, chunks: int = 8, ctx: int = 512, threads: int | None = None, long_ctx: int = 8192,
            depths: tuple[int, ...] = (512, 4096)) -> list[KVTypeResult]:
    """Quality, memory and speed of each KV cache configuration (`CONFIGS`: kv type, flash attention) of one model."""
    from quantize.evaluate import evaluate_many

    n_ctx = max(depths + (ctx,)) + 64
    loaded = {c: ondevice.load(model, n_ctx=n_ctx, threads=threads, kv_type=c[0], flash_attn=c[1],
                               speculative="off") for c in CONFIGS}
    try:
        handles = {c: _Labelled(loaded[c], f"kv={c[0]} flash={c[1]}") for c in CONFIGS}
        vs_exact = evaluate_many([handles[c] for c in CONFIGS], handles[EXACT], window=ctx, max_chunks=chunks)
        quantised = [c for c in CONFIGS if c[0] in QUANTISED_KV_TYPES]
        vs_f16 = dict(zip(quantised, evaluate_many([handles[c] for c in quantised], handles[F16_FLASH], window=ctx,
                                                   max_chunks=chunks)))
        info = read_info(resolve(model))
        out = []
        for (kv, fa), q in zip(CONFIGS, vs_exact):
            speeds = {d: round(decode_speed(loaded[(kv, fa)], d), 2) for d in depths}
            f16 = vs_f16.get((kv, fa))
            out.append(KVTypeResult(model, kv, fa, q.kld_mean, q.kld_err, q.kld_p99, q.same_top_pct, q.ppl,
                                    q.ppl_base, f16 and f16.kld_mean, f16 and f16.kld_err,
                                    kv_bytes(info, long_ctx, kv), long_ctx, speeds))
        return out
    finally:
        for m in loaded.values():
            m.close()


def markdown(results: list[KVTypeResult]) -> str:
    depths = list(results[0].decode_tok_s) if results else []
    lines = ["| model | KV type | flash attn | mean KLD vs exact (f32) cache | 99th pct | same top | PPL | "
             f"mean KLD vs f16 cache (flash on) | KV at {results[0].long_ctx if results else 0} ctx |"
             + "".join(f" decode tok/s @{d} |" for d in depths),
             "|---|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(depths)]
    for r in results:
        vs_f16 = f"{r.kld_vs_f16:.5f} ± {r.kld_vs_f16_err:.5f}" if r.kld_vs_f16 is not None else ""
        lines.append(f"| {r.model} | {r.kv_type} | {r.flash_attn} | {r.kld_mean:.5f} ± {r.kld_err:.5f} | "
                     f"{r.kld_p99:.4f} | {r.same_top_pct:.2f}% | {r.ppl:.3f} | {vs_f16} | "
                     f"{r.kv_bytes_at_ctx / 2**20:.0f} MiB |" + "".join(f" {r.decode_tok_s[d]:.1f} |" for d in depths))
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("kv-cache")
