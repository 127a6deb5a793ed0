"""Generation with the embedded SmolLM2 through the public API: real llama.cpp, temperature 0."""

from __future__ import annotations

import numpy as np
import pytest

import ondevice

# With the template's default system prompt, the first token is a near-tie between "L" and "The" (0.1 logit apart
# on this CPU), so kernel rounding decides it. A short system prompt gives a clear margin (1.4 logits).
QUESTION = [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"}]


def test_chat_answers_paris_at_temperature_zero(smollm2):
    result = smollm2.chat(QUESTION, max_tokens=32)
    assert "Paris" in result.text
    assert result.finish_reason in ("stop", "length")
    assert result.timings.completion_tokens == len(result.tokens) > 0


def test_streaming_yields_the_same_text_as_non_streaming(smollm2):
    whole = smollm2.chat(QUESTION, max_tokens=40)
    stream = smollm2.chat(QUESTION, max_tokens=40, stream=True)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text
    assert stream.result.text == whole.text
    assert stream.result.tokens == whole.tokens


def test_max_tokens_bounds_the_answer_and_reports_length(smollm2):
    result = smollm2.generate("Once upon a time", max_tokens=5)
    assert len(result.tokens) == 5
    assert result.finish_reason == "length"


def test_stop_string_ends_the_answer_before_it(smollm2):
    full = smollm2.generate("List the numbers: 1, 2, 3, 4,", max_tokens=20)
    assert "6" in full.text
    stopped = smollm2.generate("List the numbers: 1, 2, 3, 4,", max_tokens=20, stop=["6"])
    assert stopped.finish_reason == "stop"
    assert "6" not in stopped.text
    assert full.text.startswith(stopped.text)


def test_same_seed_same_sample_different_seed_differs(smollm2):
    a = smollm2.generate("My favourite animal is", max_tokens=24, temperature=1.0, seed=7)
    b = smollm2.generate("My favourite animal is", max_tokens=24, temperature=1.0, seed=7)
    c = smollm2.generate("My favourite animal is", max_tokens=24, temperature=1.0, seed=8)
    assert a.text == b.text
    assert a.text != c.text


def test_tokenize_detokenize_round_trip(smollm2):
    text = "Hello, world! Ünïcödé and numbers 12345."
    tokens = smollm2.tokenize(text, add_special=False)
    assert smollm2.detokenize(tokens) == text


def test_logits_match_the_greedy_choice(smollm2):
    tokens = smollm2.tokenize("The capital of France is", add_special=False)
    logits = smollm2.logits(tokens)
    assert logits.shape == (len(tokens), smollm2.info.vocab_size)
    greedy = smollm2.generate("The capital of France is", max_tokens=1)
    assert int(logits[-1].argmax()) == greedy.tokens[0]


def test_logits_from_a_later_position_are_the_same_rows(smollm2):
    tokens = smollm2.tokenize("Tooth cleaning is booked for Tuesday. When is the dentist? " * 42, add_special=False)
    every = smollm2.logits(tokens)
    assert len(tokens) > 531  # more than one decode batch of 512, so a batch with no rows wanted is crossed too
    for first in (1, 530, len(tokens) - 1):
        tail = smollm2.logits(tokens, first)
        assert tail.shape == (len(tokens) - first, smollm2.info.vocab_size)
        np.testing.assert_allclose(tail, every[first:], rtol=1e-4, atol=1e-3)
    with pytest.raises(ondevice.InvalidInput, match="first must be"):
        smollm2.logits(tokens, len(tokens))


def test_mean_logprob_is_the_mean_of_the_continuations_log_softmax(smollm2):
    prompt = smollm2.tokenize("The capital of France is", add_special=False)
    answer = smollm2.tokenize(" Paris, of course.", add_special=False)
    rows = smollm2.logits(prompt + answer)[len(prompt) - 1:-1].astype(np.float64)
    expected = np.mean([row[t] - np.log(np.exp(row - row.max()).sum()) - row.max() for row, t in zip(rows, answer)])
    assert smollm2.mean_logprob(prompt, answer) == pytest.approx(expected, abs=1e-9)
    assert smollm2.mean_logprob(prompt, answer) > smollm2.mean_logprob(prompt, smollm2.tokenize(
        " a bicycle pump.", add_special=False))
    for bad in (([], answer), (prompt, [])):
        with pytest.raises(ondevice.InvalidInput, match="mean_logprob needs"):
            smollm2.mean_logprob(*bad)


def test_prompt_longer_than_context_is_a_clear_error(smollm2):
    with pytest.raises(ondevice.ContextOverflow, match="context holds 1024"):
        smollm2.generate("word " * 3000)


def test_empty_messages_are_rejected(smollm2):
    with pytest.raises(ondevice.InvalidInput, match="messages is empty"):
        smollm2.chat([])


def test_context_manager_closes_and_closed_model_refuses_work():
    with ondevice.load("smollm2-135m", n_ctx=256) as m:
        assert m.device == "cpu"
        assert m.threads >= 1
    with pytest.raises(ondevice.InvalidInput, match="closed"):
        m.generate("hi")


def test_auto_context_is_trained_length_when_ram_allows():
    with ondevice.load("smollm2-135m") as m:
        assert m.n_ctx == 8192  # 135M model, KV for 8k tokens is ~90 MB: fits any machine that runs the suite


def test_embedding_mode_gguf_gives_normalised_vectors():
    with ondevice.load("smollm2-135m", n_ctx=256, embedding=True) as m:
        vectors = m.embed(["a cat", "a dog"])
    assert vectors.shape == (2, m.info.n_embd)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-3


def test_quantised_kv_cache_is_an_option_and_bad_combinations_are_refused():
    with ondevice.load("smollm2-135m", n_ctx=256, kv_type="q8_0") as m:
        assert m.generate("The capital of France is", max_tokens=2).text.strip().startswith("Paris")
    with pytest.raises(ondevice.InvalidInput, match="needs flash attention"):
        ondevice.load("smollm2-135m", n_ctx=256, kv_type="q4_0", flash_attn="off")
    with pytest.raises(ondevice.InvalidInput, match="kv_type must be one of"):
        ondevice.load("smollm2-135m", n_ctx=256, kv_type="q5")
    with pytest.raises(ondevice.InvalidInput, match="through RuntimeOptions.kv_type"):
        ondevice.load("smollm2-135m", n_ctx=256, extra={"type_k": 8})


def test_the_exact_f32_kv_cache_needs_no_flash_attention_and_changes_only_the_rounding():
    prompt = "The capital of France is Paris. The capital of Italy is"
    with ondevice.load("smollm2-135m", n_ctx=256, kv_type="f32") as exact, \
            ondevice.load("smollm2-135m", n_ctx=256) as f16:
        assert not exact.backend.options.flash_attention_enabled()
        tokens = exact.tokenize(prompt)
        a, b = exact.logits(tokens), f16.logits(tokens)
        assert not np.array_equal(a, b)  # the cache type reached libllama: K and V are no longer rounded to f16
        assert (a.argmax(axis=1) != b.argmax(axis=1)).sum() <= 1  # rounding, not a different model
        assert exact.generate(prompt, max_tokens=3).text == f16.generate(prompt, max_tokens=3).text
