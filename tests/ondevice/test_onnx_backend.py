"""The ONNX backends behind the same `ondevice.load` API: an LLM through onnxruntime-genai, an encoder through
onnxruntime. The LLM is a tiny random-weight llama exported once per session (fp32, so it must match transformers
exactly at temperature 0); the encoder is the embedded all-MiniLM-L6-v2 exported to int8."""

from __future__ import annotations

import numpy as np
import pytest

import ondevice
from ondevice.errors import ContextOverflow

PROMPTS = ["The function returns", "class Foo:\n    def", "Numbers 1, 2 and 3 are"]


@pytest.fixture(scope="session")
def tiny_onnx(tiny_onnx_fp32_dir):
    model = ondevice.load(tiny_onnx_fp32_dir, n_ctx=128)
    yield model
    model.close()


def _transformers_greedy(folder, prompt_ids: list[int], n: int, eos: int) -> list[int]:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False, eos_token_id=eos,
                         pad_token_id=eos)[0, len(prompt_ids):].tolist()
    return out[:out.index(eos)] if eos in out else out


def test_onnx_llm_loads_with_genai_backend(tiny_onnx):
    assert tiny_onnx.backend_name == "onnx-genai"
    assert tiny_onnx.info.format == "onnx-genai"
    assert tiny_onnx.info.quant == "fp32"
    assert tiny_onnx.info.n_params > 0


def test_greedy_tokens_match_transformers(tiny_onnx, tiny_llama_hf):
    for prompt in PROMPTS:
        ids = tiny_onnx.tokenize(prompt)
        ours = tiny_onnx.generate(prompt, max_tokens=12).tokens
        assert ours == _transformers_greedy(tiny_llama_hf, ids, 12, eos=2), prompt


def test_streaming_equals_non_streaming(tiny_onnx):
    whole = tiny_onnx.generate(PROMPTS[0], max_tokens=16)
    stream = tiny_onnx.generate(PROMPTS[0], max_tokens=16, stream=True)
    text = "".join(stream)
    assert text == whole.text
    assert stream.result.tokens == whole.tokens


def test_tokenize_detokenize_round_trip(tiny_onnx):
    text = "def add(a, b):\n    return a + b  # sum of 2 numbers"
    assert tiny_onnx.detokenize(tiny_onnx.tokenize(text)) == text


def test_prompt_longer_than_context_is_refused(tiny_onnx):
    with pytest.raises(ContextOverflow):
        tiny_onnx.generate("word " * 400, max_tokens=4)


def test_logits_cover_every_position(tiny_onnx, tiny_llama_hf):
    import torch
    import transformers

    ids = tiny_onnx.tokenize(PROMPTS[1])
    ours = tiny_onnx.logits(ids)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_hf, dtype=torch.float32)
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-3, rtol=1e-3)


# --- encoder ------------------------------------------------------------------------------------------------------

SENTENCES = ["A man is playing a guitar.", "Someone plays an acoustic guitar on stage.",
             "The stock market fell sharply today.", "How do I bake bread at home?"]


@pytest.fixture(scope="session")
def minilm_int8(tmp_path_factory):
    from quantize.onnx_export import export_encoder

    folder = export_encoder(ondevice.resolve("minilm-l6").path, tmp_path_factory.mktemp("enc") / "minilm-int8",
                            quant="int8")
    model = ondevice.load(folder)
    yield model
    model.close()


def _reference_embeddings(texts: list[str]) -> np.ndarray:
    """sentence-transformers' recipe with plain transformers: fp32, mean pooling over the mask, L2 norm."""
    import torch
    import transformers

    path = ondevice.resolve("minilm-l6").path
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, dtype=torch.float32)
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_int8_encoder_matches_fp32_reference(minilm_int8):
    assert minilm_int8.backend_name == "onnx-encoder"
    ours = minilm_int8.embed(SENTENCES)
    ref = _reference_embeddings(SENTENCES)
    cosines = (ours * ref).sum(axis=1)
    assert cosines.min() > 0.98, cosines


def test_related_sentences_score_higher(minilm_int8):
    e = minilm_int8.embed(SENTENCES)
    related = float(e[0] @ e[1])
    assert related > float(e[0] @ e[2]) and related > float(e[0] @ e[3])


def test_prefix_reuse_gives_the_cold_start_tokens(tiny_onnx):
    base = "class Foo:\n    def bar(self):\n        return 1\n    def"
    variants = [base, base[:20], "class Baz:" + base[10:], base + " baz"]
    cold = {}
    for text in variants:
        tiny_onnx.clear_cache()
        cold[text] = tiny_onnx.generate(text, max_tokens=8)
        assert cold[text].timings.reused_tokens == 0
    for text in variants:
        tiny_onnx.generate(base, max_tokens=8)  # the generator now holds base and its answer
        warm = tiny_onnx.generate(text, max_tokens=8)
        assert warm.tokens == cold[text].tokens, text
        assert warm.timings.reused_tokens > 0 or text.startswith("class Baz"), text


def test_context_longer_than_trained_is_refused_at_load(tiny_onnx):
    with pytest.raises(ondevice.InvalidInput, match="trained context"):
        ondevice.load(tiny_onnx.ref.path, n_ctx=tiny_onnx.info.context_length * 2)


def test_chat_template_option_replaces_the_folders_own(tiny_onnx):
    own = tiny_onnx.backend.render_chat([{"role": "user", "content": "hi"}])
    plain = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    model = ondevice.load(tiny_onnx.ref.path, n_ctx=128, chat_template=plain)
    try:
        rendered = model.backend.render_chat([{"role": "user", "content": "hi"}])
    finally:
        model.close()
    assert rendered == "<user>hi<assistant>" and rendered != own
