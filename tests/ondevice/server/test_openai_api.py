"""The server through the official `openai` client: what a local app sees. Real SmolLM2, temperature 0."""

from __future__ import annotations

import json

import httpx
import numpy as np

import ondevice
from tests.ondevice.server.conftest import EMBED_MODEL, QUESTION


def test_models_lists_the_served_alias_and_the_embedder(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["smollm2-135m", EMBED_MODEL]
    assert client.models.retrieve("smollm2-135m").owned_by == "ondevice"


def test_chat_answers_paris_at_temperature_zero_with_usage(client):
    reply = client.chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0, max_tokens=32)
    assert reply.object == "chat.completion"
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 10
    assert 0 < reply.usage.completion_tokens <= 32
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_model_may_be_named_by_its_file_name(client):
    name = ondevice.resolve("smollm2-135m").path.name
    reply = client.chat.completions.create(model=name, messages=QUESTION, temperature=0, max_tokens=1)
    assert reply.model == "smollm2-135m"


def test_streamed_chat_gives_the_same_text_as_plain_chat(client):
    plain = client.chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0, max_tokens=32)
    chunks = list(client.chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0,
                                                 max_tokens=32, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_stream_on_the_wire_is_sse_ending_with_done(server):
    body = {"model": "smollm2-135m", "messages": QUESTION, "temperature": 0, "max_tokens": 8, "stream": True}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert payloads[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_completion_continues_the_prompt_and_honours_max_tokens(client):
    reply = client.completions.create(model="smollm2-135m", prompt="The capital of France is", temperature=0,
                                      max_tokens=6)
    assert "Paris" in reply.choices[0].text
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 6


def test_streamed_completion_matches_plain(client):
    kwargs = dict(model="smollm2-135m", prompt="Once upon a time", temperature=0, max_tokens=12)
    plain = client.completions.create(**kwargs)
    streamed = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kwargs) if c.choices)
    assert streamed == plain.choices[0].text


def test_stop_sequence_ends_the_answer_before_it(client):
    kwargs = dict(model="smollm2-135m", prompt="List the numbers: 1, 2, 3, 4,", temperature=0, max_tokens=20)
    full = client.completions.create(**kwargs).choices[0]
    stopped = client.completions.create(stop=["6"], **kwargs).choices[0]
    assert "6" in full.text and "6" not in stopped.text
    assert stopped.finish_reason == "stop"
    assert full.text.startswith(stopped.text)


def test_same_seed_same_sample_different_seed_differs(client):
    def sample(seed):
        return client.completions.create(model="smollm2-135m", prompt="My favourite animal is", temperature=1.0,
                                         top_p=0.95, seed=seed, max_tokens=24).choices[0].text

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_embeddings_match_the_library_and_rank_by_meaning(client):
    texts = ["a small cat", "a little kitten", "quarterly stock market report"]
    reply = client.embeddings.create(model=EMBED_MODEL, input=texts)  # the client asks for base64 by default
    vectors = np.array([d.embedding for d in reply.data], dtype=np.float32)
    floats = client.embeddings.create(model=EMBED_MODEL, input=texts, encoding_format="float")
    assert np.allclose(vectors, np.array([d.embedding for d in floats.data]), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2]
    assert reply.usage.prompt_tokens >= len(texts)
    with ondevice.load(EMBED_MODEL, embedding=True) as reference:
        assert np.allclose(vectors, reference.embed(texts), atol=1e-4)
