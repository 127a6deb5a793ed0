"""The server reuses prefixes across requests: a conversation that continues after another request ran still finds
its history in a prefix slot. Counters are in /health; OpenAI content parts are read as the core reads them."""

from __future__ import annotations

import openai
import pytest

from tests.ondevice.server.conftest import start_server, stop_server

SYSTEM = {"role": "system", "content": "You are a geography teacher. Answer in one short sentence, and always "
                                        "name the country you are talking about."}


def ask(client, messages, n=12):
    return client.chat.completions.create(model="smollm2-135m", messages=messages, temperature=0, max_tokens=n)


@pytest.fixture(scope="module")
def single_stream():
    """A server decoding one request at a time (--parallel 1): its prefix slots are state snapshots of the one
    context (with --parallel N the batch engine's per-sequence slots do this job)."""
    s = start_server("--parallel", "1")
    yield s
    stop_server(s)


def test_a_conversation_resumes_from_a_prefix_slot_after_another_request(single_stream):
    server, client = single_stream, single_stream.client()
    conversation = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
    first = ask(client, conversation).choices[0].message.content
    before = server.wait_idle()["prefix_cache"]
    ask(client, [{"role": "user", "content": "Write one word about dogs."}], n=4)  # replaces the live context
    conversation += [{"role": "assistant", "content": first}, {"role": "user", "content": "And of Spain?"}]
    second = ask(client, conversation)
    after = server.wait_idle()["prefix_cache"]
    assert after["restored"] > before["restored"]  # the conversation came back from a slot
    assert after["hits"] >= before["hits"] + 1
    assert after["used"] >= 1 and 0 < after["bytes"] <= after["max_bytes"]
    assert second.usage.prompt_tokens > 0 and second.choices[0].message.content


def test_image_content_parts_are_a_clear_400(client):
    parts = [{"type": "text", "text": "What is in this picture?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with pytest.raises(openai.BadRequestError, match="image_url"):
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": parts}])


def test_text_content_parts_are_joined(client):
    parts = [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]
    as_parts = ask(client, [SYSTEM, {"role": "user", "content": parts}]).choices[0].message.content
    as_text = ask(client, [SYSTEM, {"role": "user", "content": "What is the capital of France?"}])
    assert as_parts == as_text.choices[0].message.content
