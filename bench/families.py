"""Shapes of the model families people ship, as llama.cpp's GGUF metadata states them.

A prediction needs only shapes: every tensor's size at a quant type follows from them (`bench.ftype`), so no
model file is read. The 7-10B shape probes of `bench.probe` are members of this table under their own names;
the other rows come from each model's published config.json (HF hub: meta-llama, Qwen, microsoft, google,
mistralai), the values llama.cpp's converters copy into the GGUF header.
"""

from __future__ import annotations

from bench.probe import PROBES, _shape  # same package: the probe table's row builder
from ondevice.errors import InvalidInput
from ondevice.models.model_info import ModelInfo


# name -> shapes. The probe rows are reused, not restated, so a probe and its family can never disagree.
FAMILIES: dict[str, ModelInfo] = {
    **PROBES,
    **{s.name: s for s in (
        _shape("llama2-7b", "llama", 32, 4096, 11008, 32, 32, 128, 32000, 4096, 10000.0, 1e-5),
        _shape("llama3.1-8b", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 131072, 500000.0, 1e-5),
        _shape("llama3.2-1b", "llama", 16, 2048, 8192, 32, 8, 64, 128256, 131072, 500000.0, 1e-5,
               tied_embeddings=True),
        _shape("llama3.2-3b", "llama", 28, 3072, 8192, 24, 8, 128, 128256, 131072, 500000.0, 1e-5,
               tied_embeddings=True),
        _shape("qwen2.5-0.5b", "qwen2", 24, 896, 4864, 14, 2, 64, 151936, 32768, 1000000.0, 1e-6,
               tied_embeddings=True, qkv_bias=True),
        _shape("qwen2.5-1.5b", "qwen2", 28, 1536, 8960, 12, 2, 128, 151936, 32768, 1000000.0, 1e-6,
               tied_embeddings=True, qkv_bias=True),
        _shape("qwen2.5-3b", "qwen2", 36, 2048, 11008, 16, 2, 128, 151936, 32768, 1000000.0, 1e-6,
               tied_embeddings=True, qkv_bias=True),
        # Phi-3-mini-4k: fused QKV and gate/up projections (llama.cpp tensors attn_qkv, ffn_up of 2 x n_ff).
        _shape("phi-3-mini", "phi3", 32, 3072, 8192, 32, 32, 96, 32064, 4096, 10000.0, 1e-5),
        _shape("gemma2-2b", "gemma2", 26, 2304, 9216, 8, 4, 256, 256000, 8192, 10000.0, 1e-6,
               tied_embeddings=True, sliding_window=4096,
               arch_config={"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}),
        # The embedded SmolLM2-135M-Instruct (its GGUF header): a calibration point measured on this project's CI.
        _shape("smollm2-135m", "llama", 30, 576, 1536, 9, 3, 64, 49152, 8192, 100000.0, 1e-5, tied_embeddings=True),
    )},
}

# Other spellings people type (HF repo names, Ollama tags) -> family name.
ALIASES: dict[str, str] = {
    "llama-2-7b": "llama2-7b", "llama2:7b": "llama2-7b",
    "llama3-8b-instruct": "llama3-8b", "llama3:8b": "llama3-8b",
    "llama-3.1-8b": "llama3.1-8b", "llama3.1:8b": "llama3.1-8b",
    "llama-3.2-1b": "llama3.2-1b", "llama3.2:1b": "llama3.2-1b",
    "llama-3.2-3b": "llama3.2-3b", "llama3.2:3b": "llama3.2-3b",
    "qwen2.5:0.5b": "qwen2.5-0.5b", "qwen2.5:1.5b": "qwen2.5-1.5b", "qwen2.5:3b": "qwen2.5-3b",
    "qwen2.5:7b": "qwen2.5-7b", "phi3": "phi-3-mini", "phi3:mini": "phi-3-mini", "phi-3-mini-4k": "phi-3-mini",
    "gemma2:2b": "gemma2-2b", "gemma-2-2b": "gemma2-2b", "gemma2:9b": "gemma2-9b", "gemma-2-9b": "gemma2-9b",
    "mistral:7b": "mistral-7b", "mistral-7b-v0.3": "mistral-7b",
}


def family(name: str) -> ModelInfo:
    """The shapes of a family by name or alias (case-insensitive), or InvalidInput naming close names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in FAMILIES:
        return FAMILIES[key]
    import difflib

    close = difflib.get_close_matches(key, list(FAMILIES) + list(ALIASES), n=4, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise InvalidInput(f"unknown model family {name!r}{hint} (choose one of: {', '.join(sorted(FAMILIES))})")


def n_params_of(spec: ModelInfo) -> int:
    """Parameter count from shapes (matrices, norms and biases), e.g. Llama-3-8B: 8,030,261,248."""
    from bench.ftype import tensor_shapes

    return sum(t.n_elements for t in tensor_shapes(spec))
