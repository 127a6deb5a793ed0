"""What one decode step costs with N sequences in it: the ceiling of batched serving on this machine.

    ondevice bench batch-steps smollm2-135m --threads 2 --sequences 1,2,4,8

`ondevice serve --parallel N` decodes one token of every active request in one `llama_decode`. Whether that pays
depends on how a step's time grows with the number of sequences in it: if 8 tokens cost little more than 1 (one
pass over the weights, memory-bound), 8 clients get close to 8x the tokens; if they cost 4x (compute-bound
kernels), batching can give at most ~2x. This measures exactly that on `BatchEngine` (the server's engine), in one
process with nothing else in it: N requests decode together (`ignore_eos`, greedy) and the steady-state steps are
timed after every prompt has been evaluated.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import ondevice
from ondevice import SamplingParams
from ondevice.backends.llama_batch import BatchEngine, Job


@dataclass
class StepCost:
    sequences: int
    ms_per_step: float
    tokens_per_s: float
    cost_vs_one: float  # ms per step / the one-sequence ms per step


def measure(model: ondevice.Model, sequences: list[int], steps: int = 30) -> list[StepCost]:
    """Steady-state ms per step with n sequences decoding together, for each n (median of `steps` steps)."""
    out: list[StepCost] = []
    for n in sequences:
        engine = BatchEngine(model.backend, n, slot_ctx=steps + 64)
        try:
            params = SamplingParams(max_tokens=steps + 8, ignore_eos=True)
            jobs = [engine.submit(Job(engine.check_prompt(f"{k}, {k + 1}, {k + 2},"), params, lambda e: None))
                    for k in range(n)]
            while any(job.todo or job.pending is None for job in jobs):  # prompts evaluated, every job decoding
                engine.step()
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                engine.step()
                times.append((time.perf_counter() - t0) * 1000)
        finally:
            engine.close()
        ms = statistics.median(times)
        base = out[0].ms_per_step if out else ms
        out.append(StepCost(n, round(ms, 2), round(n * 1000 / ms, 1), round(ms / base, 2)))
    return out


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("batch-steps")
