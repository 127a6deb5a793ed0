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
    """The bare question "What is the capital of France?" is a coin toss for this model: the embedded Q4_1 GGUF
    itself (int8 activations, as onnx:int4's accuracy_level 4) answers "L'Étoile, la Cité, ...", its f16 widening
    "Paris"; with "Answer in one sentence." every one of them says Paris."""
    question = "What is the capital of France? Answer in one sentence."
    out = smollm2_onnx_int4.chat([{"role": "user", "content": question}], max_tokens=24)
    assert "Paris" in out.text
    assert "<|endoftext|>" not in out.text and "Ġ" not in out.text


def test_next_token_agrees_with_gguf_more_often_than_chance(smollm2_onnx_int4, smollm2_f16_gguf):
    """Greedy continuations of int4 and Q8_0 drift apart within a few tokens on this 135M model (measured: first
    divergence at token 0-10 of 16 on four prompts), so compare the argmax at every position of a fixed text with
    the f16 GGUF's instead. Measured on this text: 47% agreement with a former int4 (RTN, head in 4 bits); the
    default is now wls (test_onnx_wls.py holds it to >= 90%). The bound catches a broken export or a shifted
    vocabulary (agreement near 0), not a quality target."""
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


def test_rtn_stays_selectable_by_name(tiny_llama_hf, tmp_path):
    """onnx:int4-rtn (the former default) still exports symmetric MatMulNBits (no zero points) that load and answer
    the same on two loads."""
    import json

    import onnx

    import ondevice
    from quantize.onnx_export import export_onnx_llm, parse_llm_type

    quant, options = parse_llm_type("int4-rtn")
    folder = export_onnx_llm(tiny_llama_hf, tmp_path / "tiny-rtn", quant, **options).path
    assert json.loads((folder / "ondevice_onnx.json").read_text())["algorithm"] == "rtn"
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    nbits = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert nbits and all(len(n.input) == 3 for n in nbits)
    tokens = []
    for _ in range(2):
        with ondevice.load(folder, n_ctx=64) as model:
            tokens.append(model.generate("hello", max_tokens=6, temperature=0.0).tokens)
    assert tokens[0] == tokens[1] and len(tokens[0]) == 6
