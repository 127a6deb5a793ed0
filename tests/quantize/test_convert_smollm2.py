"""The embedded SmolLM2 (Q4_1 GGUF) de-quantised and converted by our converter to f16: tokenizer and answers."""

from __future__ import annotations

import pytest

import ondevice
from ondevice.models.gguf_file import read_gguf

# Short system prompt: with the template's default one, the first token is a near-tie (tests/ondevice/test_generate.py).
QUESTION = [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"}]
TEXTS = ["Hello, world! Ünïcödé and numbers 12345.",
         "  leading spaces,\ttabs and\nnew lines; code: def f(x): return x**2  ",
         "日本語のテキスト 🙂"]


@pytest.fixture(scope="module")
def smollm2_f16(smollm2_f16_gguf):
    with ondevice.load(smollm2_f16_gguf, n_ctx=512) as model:
        yield model


def test_hf_dir_records_its_source_gguf_and_has_no_bogus_tokenizer_model(smollm2_hf_dir, smollm2_path):
    from quantize.hf_source import source_gguf

    assert source_gguf(smollm2_hf_dir) == smollm2_path
    assert not (smollm2_hf_dir / "tokenizer.model").exists()


def test_converted_file_keeps_the_original_tokenizer_and_is_f16(smollm2_f16_gguf, smollm2_path):
    new, old = read_gguf(smollm2_f16_gguf), read_gguf(smollm2_path)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template", "tokenizer.ggml.eos_token_id"):
        assert new.get(key) == old.get(key)
    assert new.vocab_size == old.vocab_size == 49152
    assert new.get("general.file_type") == 1  # MOSTLY_F16
    assert new.n_params == old.n_params


@pytest.mark.parametrize("text", TEXTS)
def test_tokenisation_round_trips_and_matches_the_original(text, smollm2_f16, smollm2):
    tokens = smollm2_f16.tokenize(text, add_special=False)
    assert smollm2_f16.detokenize(tokens) == text
    assert tokens == smollm2.tokenize(text, add_special=False)


def test_special_tokens_in_text_are_single_control_tokens(smollm2_f16, smollm2):
    text = "<|im_start|>user\nHi<|im_end|>"
    tokens = smollm2_f16.tokenize(text, add_special=False)
    assert tokens == smollm2.tokenize(text, add_special=False)
    assert tokens[0] == 1 and tokens[-1] == 2  # <|im_start|>, <|im_end|>


def test_converted_f16_answers_paris_at_temperature_zero(smollm2_f16):
    assert "Paris" in smollm2_f16.chat(QUESTION, max_tokens=32).text
