"""The bare libllama decode loop that `bench --reference` compares the public API against.

No Python sampling and no text: one `llama_decode` of a random token per step, then `llama_synchronize`, exactly
as llama.cpp's own llama-bench measures tg. It runs on the *same* llama context as the public API (same file,
threads, context size, flash-attention setting), so the ratio isolates what the public streaming path adds per
token: the C sampler call, the piece lookup, UTF-8/stop handling and the Python generator.
"""

from __future__ import annotations

import time

import numpy as np

from ondevice.errors import UnsupportedOperation
from ondevice.model import Model


def _llama(model: Model):
    llm = getattr(model.backend, "llama", None)
    if llm is None:
        raise UnsupportedOperation(f"{model.name}: --reference needs a GGUF model (the bare loop is libllama's)")
    return llm


def reference_tg(model: Model, n_gen: int, rng: np.random.Generator) -> float:
    """Tokens/s of n_gen bare single-token decodes from an empty context (after one untimed first token)."""
    import llama_cpp as lc

    llm = _llama(model)
    ctx = llm.ctx
    vocab = model.info.vocab_size
    tokens = rng.integers(0, vocab, size=n_gen + 1, dtype=np.int32)
    lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
    one = (lc.llama_token * 1)()

    def step(token: int) -> None:
        one[0] = int(token)
        if lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) != 0:
            raise RuntimeError("llama_decode failed in the reference loop")
        lc.llama_synchronize(ctx)

    step(tokens[0])  # the public path also starts timing after its first token (the 1-token prompt)
    t0 = time.perf_counter()
    for token in tokens[1:]:
        step(token)
    return n_gen / (time.perf_counter() - t0)
