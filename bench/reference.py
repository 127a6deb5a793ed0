"""The bare libllama decode loop that `bench --reference` compares the public API against.

No Python sampling and no text: one `llama_decode` of a random token per step, then `llama_synchronize`, exactly
as llama.cpp's own llama-bench measures tg. It runs through `Model.reference_decode`, on the *same* llama context as
the public API (same file, threads, context size, KV type), so the ratio isolates what the public streaming path
adds per token: the C sampler call, the piece lookup, UTF-8/stop handling and the Python generator.
"""

from __future__ import annotations

import numpy as np

from ondevice.model import Model


def reference_tg(model: Model, n_gen: int, rng: np.random.Generator) -> float:
    """Tokens/s of n_gen bare single-token decodes from an empty context (after one untimed first token).

    Raises UnsupportedOperation for a model whose backend has no bare loop (only GGUF has one)."""
    tokens = rng.integers(0, model.info.vocab_size, size=n_gen + 1, dtype=np.int32)
    return n_gen / model.reference_decode(tokens.tolist())
