"""Conversations at app speed, on the embedded SmolLM2 (real llama.cpp): a prompt reuses the longest prefix the
context already holds, with the same greedy output as a cold start; sessions save the history and the KV cache and
resume it; bad session files are clear errors."""

from __future__ import annotations

import json
import struct

import pytest
from click.testing import CliRunner

import ondevice
from ondevice.backends.cache import MIN_FRESH_ROWS
from ondevice.errors import InvalidSession

SYSTEM = {"role": "system", "content": "You are a geography teacher. Answer in one short sentence."}
HISTORY = [SYSTEM,
           {"role": "user", "content": "What is the capital of France?"},
           {"role": "assistant", "content": "The capital of France is Paris."},
           {"role": "user", "content": "What river flows through it?"},
           {"role": "assistant", "content": "The Seine flows through Paris."},
           {"role": "user", "content": "Name a famous museum there."}]


def _cold(model, messages, **kw):
    model.clear_cache()
    result = model.chat(messages, max_tokens=16, **kw)
    assert result.timings.reused_tokens == 0
    return result


def _edit(messages, index, content):
    return [dict(m, content=content) if i == index else m for i, m in enumerate(messages)]


@pytest.mark.parametrize("variant", [
    pytest.param(_edit(HISTORY, 2, "Paris is the capital of France."), id="edit-in-the-middle"),
    pytest.param(HISTORY[:4], id="shorter-prompt"),
    pytest.param(_edit(HISTORY, 0, "You are a travel guide. Answer in one short sentence."), id="other-system"),
    pytest.param(HISTORY, id="exactly-the-cached-prompt"),
])
def test_reuse_gives_the_cold_start_answer(smollm2, variant):
    cold = _cold(smollm2, variant)
    _cold(smollm2, HISTORY)  # the context now holds HISTORY and its answer
    warm = smollm2.chat(variant, max_tokens=16)
    assert warm.tokens == cold.tokens
    assert 0 < warm.timings.reused_tokens < warm.timings.prompt_tokens  # the last token is always evaluated again
    if variant is HISTORY:  # the same prompt again: all but its last MIN_FRESH_ROWS tokens (exact_reuse)
        assert warm.timings.reused_tokens == warm.timings.prompt_tokens - MIN_FRESH_ROWS


def test_a_growing_conversation_evaluates_only_the_new_turn(smollm2):
    first = _cold(smollm2, HISTORY[:2])
    second = smollm2.chat(HISTORY[:2] + [{"role": "assistant", "content": first.text},
                                         {"role": "user", "content": "And of Italy?"}], max_tokens=8)
    # the first prompt is reused (less its last token); the first answer, written by decode steps, is evaluated again
    # as part of this prompt so that the answer is the cold start's (ondevice.backends.cache.exact_reuse)
    assert second.timings.reused_tokens == first.timings.prompt_tokens - 1


def test_logits_keep_the_cache_record_exact(smollm2):
    cold = _cold(smollm2, HISTORY)
    tokens = smollm2.tokenize(smollm2.render_chat(HISTORY))
    smollm2.logits(tokens[:20])
    after = smollm2.chat(HISTORY, max_tokens=16)
    assert after.tokens == cold.tokens
    assert after.timings.reused_tokens == 19  # the 20 evaluated positions, less the last shared one (exact_reuse)


def test_session_saves_and_resumes_without_rereading_the_history(smollm2, tmp_path):
    smollm2.clear_cache()
    chat = smollm2.session(system=SYSTEM["content"])
    chat.send("What is the capital of France?", max_tokens=12)
    chat.send("What river flows through it?", max_tokens=12)
    path = chat.save(tmp_path / "geo.session")
    uninterrupted = chat.send("Name a famous museum there.", max_tokens=12)

    smollm2.generate("An unrelated prompt fills the context.", max_tokens=4)
    resumed = ondevice.Chat.load(path, smollm2)
    assert resumed.messages == chat.messages[:-2]
    answer = resumed.send("Name a famous museum there.", max_tokens=12)
    assert answer.tokens == uninterrupted.tokens
    # the restored cache holds the history: only the new turn is evaluated
    assert answer.timings.prompt_tokens - answer.timings.reused_tokens <= 16


def test_streamed_turns_join_the_history(smollm2):
    chat = ondevice.Chat(smollm2)
    stream = chat.send("Say hello.", stream=True, max_tokens=6)
    text = "".join(stream)
    assert chat.messages[-1] == {"role": "assistant", "content": text}
    assert stream.result.text == text


@pytest.fixture(scope="module")
def saved(smollm2, tmp_path_factory):
    chat = smollm2.session()
    chat.send("Hi!", max_tokens=4)
    return chat.save(tmp_path_factory.mktemp("sessions") / "hi.session").read_bytes()


def _header_len(raw: bytes) -> int:
    return struct.unpack("<Q", raw[17:25])[0]


def _with_header(raw: bytes, **changes) -> bytes:
    n = _header_len(raw)
    header = {**json.loads(raw[25:25 + n]), **changes}
    blob = json.dumps(header).encode()
    return raw[:17] + struct.pack("<Q", len(blob)) + blob + raw[25 + n:]


@pytest.mark.parametrize("make, message", [
    (lambda raw: raw[:len(raw) - 1000], "truncated"),
    (lambda raw: raw[:30], "truncated or corrupt"),
    (lambda raw: raw[:-1] + bytes([raw[-1] ^ 0xFF]), "checksum"),
    (lambda raw: b"hello world\n" * 4, "not an ondevice session"),
    (lambda raw: _with_header(raw, model_key="0123456789abcdef", model="gemma3-270m"), "saved with gemma3-270m"),
    (lambda raw: _with_header(raw, kv_type="q8_0"), "kv_type q8_0"),
    (lambda raw: _with_header(raw, version=99), "version 99"),
])
def test_bad_session_files_are_clear_errors(smollm2, saved, tmp_path, make, message):
    path = tmp_path / "bad.session"
    path.write_bytes(make(saved))
    with pytest.raises(InvalidSession, match=message):
        ondevice.Chat.load(path, smollm2)


def test_cli_chat_session_resumes(tmp_path):
    from ondevice.cli.main import cli

    path = tmp_path / "cli.session"
    args = ["chat", "smollm2-135m", "--ctx", "512", "-n", "8", "--session", str(path)]
    first = CliRunner().invoke(cli, args, input="What is 2+2?\n\n")
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, args, input="\n")
    assert second.exit_code == 0 and "Resumed 2 messages" in second.output
    path.write_bytes(b"garbage")
    bad = CliRunner().invoke(cli, args, input="\n")
    assert bad.exit_code == 2 and "not an ondevice session file" in bad.output


def test_message_content_may_be_text_parts_but_not_images(smollm2):
    parts = [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]
    assert smollm2.chat([SYSTEM, {"role": "user", "content": parts}], max_tokens=8).tokens == \
        smollm2.chat([SYSTEM, {"role": "user", "content": "What is the capital of France?"}], max_tokens=8).tokens
    with pytest.raises(ondevice.InvalidInput, match="image_url"):
        smollm2.chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}])
