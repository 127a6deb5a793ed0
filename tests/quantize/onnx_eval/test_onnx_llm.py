"""SmolLM2 as onnx:int4 through `ondevice.load`: the tokenizer is the GGUF's (no stray `<|endoftext|>` / `Ġ`), and
the model's predictions agree with the GGUF's."""

from __future__ import annotations

import numpy as np

TEXTS = [
    "Hello world! The capital of France is Paris.",
    "def f(x):\n    return x**2  # square\n\n\ttabs  and   spaces",
    "Prices rose 12.5% in 2024; naïve café owners said “wow”.",
]


def test_text_round_trips_without_stray_pieces(smollm2_onnx_int4, smollm2):
    for text in TEXTS:
        ids = smollm2_onnx_int4.tokenize(text)
        assert ids == smollm2.tokenize(text, add_special=True), text  # same ids as llama.cpp
        decoded = smollm2_onnx_int4.detokenize(ids)
        assert decoded == text
        assert "<|endoftext|>" not in decoded and "Ġ" not in decoded


def test_generated_text_has_no_stray_pieces(smollm2_onnx_int4):
    out = smollm2_onnx_int4.chat([{"role": "user", "content": "What is the capital of France?"}], max_tokens=24)
    assert "Paris" in out.text
    assert "<|endoftext|>" not in out.text and "Ġ" not in out.text


def test_next_token_agrees_with_gguf_more_often_than_chance(smollm2_onnx_int4, smollm2_f16_gguf):
    """Greedy continuations of int4 and Q8_0 drift apart within a few tokens on this 135M model (measured: first
    divergence at token 0-10 of 16 on four prompts), so compare the argmax at every position of a fixed text with
    the f16 GGUF's instead. Measured on this text: 47% agreement with the former int4 (head in 4 bits); int4 RTN is
    a coarse quantisation of a 135M model (docs/quantize-quality.md: mean KLD 0.24 with the 8-bit head). The bound catches a broken
    export or a shifted vocabulary (agreement near 0), not a quality target."""
    import ondevice

    text = TEXTS[0] + " " + TEXTS[2] + " The river flows through the city and into the sea."
    with ondevice.load(smollm2_f16_gguf, n_ctx=512) as ref:
        ids = ref.tokenize(text, add_special=True)
        ours, theirs = smollm2_onnx_int4.logits(ids), ref.logits(ids)
    assert ours.shape == theirs.shape
    agree = np.mean(theirs.argmax(-1) == ours.argmax(-1))
    assert agree >= 0.35, agree


def test_fp32_onnx_greedy_matches_f16_gguf(smollm2_onnx_fp32, smollm2_f16_gguf):
    """Without quantisation the ONNX export and our f16 GGUF are the same model: equal greedy tokens."""
    import ondevice

    with ondevice.load(smollm2_f16_gguf, n_ctx=256) as ref:
        for prompt in ("The capital of France is", "def fibonacci(n):", "List three colors:"):
            assert smollm2_onnx_fp32.generate(prompt, max_tokens=16).tokens == \
                ref.generate(prompt, max_tokens=16).tokens, prompt
