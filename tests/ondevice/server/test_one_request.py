"""One request, one engine, seen from outside with the official `openai` client (issue: the interior's seams).

- a text answer under `tools` is the model's own text, never forced into quotes or brackets at max_tokens;
- every field that changes the answer is honoured (logit_bias, frequency/presence/repeat penalties, top_k, min_p,
  the deprecated functions/function_call) or refused with a 400 naming it;
- temperature 0 gives the same answer whatever else the server does: one at a time, in the default batched
  configuration, in a burst of 8 concurrent clients, and from a prefix-cache hit;
- a remote model's reference holds its URL as a URL, and a served model is not known by the last piece of it.
"""

from __future__ import annotations

import asyncio

import openai
import pytest

import ondevice
from tests.ondevice.server.conftest import start_server, stop_server

WEATHER = [{"role": "user", "content": "What is the weather like in London right now?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
COUNT = [{"role": "user", "content": "Count to five."}]
OTHERS = ["Name three colours.", "What is 2+2?", "Say hello in French."]
CATS = [{"role": "user", "content": "Tell me about cats in one sentence."}]


def chat(client, messages, **kwargs) -> str:
    return client.chat.completions.create(model="smollm2-135m", messages=messages, temperature=0,
                                          **kwargs).choices[0].message.content


@pytest.fixture(scope="module")
def default_server():
    """`ondevice serve` in its default configuration (--parallel auto: batched slots)."""
    s = start_server("--parallel", "auto", "--max-queue", "16")
    yield s
    stop_server(s)


def test_a_text_answer_under_tools_is_the_models_own_text(client, smollm2):
    reply = client.chat.completions.create(model="smollm2-135m", messages=WEATHER, max_tokens=16, temperature=0,
                                           tools=TOOLS, tool_choice="none")
    text = reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "length"
    # The same conversation with the tools listed, decoded with no grammar at all (the engine's plain path).
    request = ondevice.build_request(messages=WEATHER, tools=TOOLS, tool_choice="none", max_tokens=16,
                                             backend=smollm2.backend)
    free = smollm2.generate(smollm2.render_chat(request.messages), max_tokens=16).text
    assert text == free
    assert not text.rstrip().endswith(('""', '"}', '"]'))


def test_tools_with_tool_choice_auto_answer_in_text_without_a_forced_tail(client):
    reply = client.chat.completions.create(model="smollm2-135m", messages=WEATHER, max_tokens=16, temperature=0,
                                           tools=TOOLS)
    choice = reply.choices[0]
    if choice.finish_reason == "length":  # the model answered in words: no quote or bracket was forced in
        assert '""' not in choice.message.content


def test_logit_bias_bans_the_tokens_it_names(client, smollm2):
    plain = chat(client, CATS, max_tokens=12)
    first = smollm2.tokenize(plain, add_special=False)[0]
    biased = chat(client, CATS, max_tokens=12, logit_bias={str(first): -100})
    assert biased != plain
    assert smollm2.tokenize(biased, add_special=False)[0] != first


@pytest.mark.parametrize("field", ["frequency_penalty", "presence_penalty"])
def test_penalties_change_an_answer_that_repeats_a_token(client, field):
    # The greedy answer ("A cat is a loyal ... in a cozy ...") uses "a" again: a penalty on it changes the text.
    assert chat(client, CATS, max_tokens=24, **{field: 2.0}) != chat(client, CATS, max_tokens=24)


def test_llama_cpp_extensions_top_k_min_p_repeat_penalty_are_honoured(client):
    assert chat(client, CATS, max_tokens=24, extra_body={"repeat_penalty": 1.8}) != chat(client, CATS, max_tokens=24)
    sample = dict(max_tokens=16, temperature=1.0, seed=11)
    one = client.chat.completions.create(model="smollm2-135m", messages=CATS, extra_body={"top_k": 1}, **sample)
    greedy = chat(client, CATS, max_tokens=16)
    assert one.choices[0].message.content == greedy  # top_k=1 keeps only the most likely token
    a = client.chat.completions.create(model="smollm2-135m", messages=CATS, extra_body={"min_p": 0.3}, **sample)
    b = client.chat.completions.create(model="smollm2-135m", messages=CATS, extra_body={"min_p": 0.3}, **sample)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_deprecated_functions_are_answered_with_a_function_call(client):
    reply = client.chat.completions.create(
        model="smollm2-135m", messages=WEATHER, max_tokens=48, temperature=0,
        functions=[TOOLS[0]["function"]], function_call={"name": "get_weather"})
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call.name == "get_weather"
    assert "city" in choice.message.function_call.arguments


@pytest.mark.parametrize("extra, param", [({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
                                          ({"logit_bias": {"999999999": 5}}, "logit_bias"),
                                          ({"frequency_penalty": 3}, "frequency_penalty"),
                                          ({"min_p": 2}, "min_p")])
def test_fields_that_cannot_be_honoured_are_a_400_naming_them(client, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smollm2-135m", messages=CATS, max_tokens=4, extra_body=extra)
    assert caught.value.body["param"] == param


def test_temperature_zero_is_the_same_alone_batched_in_a_burst_and_from_the_cache(client, default_server):
    alone = chat(client, COUNT, max_tokens=32)           # --parallel 1: the reference
    batched = default_server.async_client()

    async def burst() -> list[str]:
        asks = [COUNT] * 5 + [[{"role": "user", "content": q}] for q in OTHERS]
        replies = await asyncio.gather(*(batched.chat.completions.create(
            model="smollm2-135m", messages=m, max_tokens=32, temperature=0) for m in asks))
        return [r.choices[0].message.content for r in replies[:5]]

    first = chat(default_server.client(), COUNT, max_tokens=32)
    copies = asyncio.run(burst())
    last = chat(default_server.client(), COUNT, max_tokens=32)
    assert first == alone and last == alone
    assert copies == [alone] * 5
    # A prefix-cache hit: the next turn of the conversation reuses the cached turn, on both servers.
    turn = COUNT + [{"role": "assistant", "content": alone}, {"role": "user", "content": "Now count to ten."}]
    warm = [chat(client, turn, max_tokens=32), chat(default_server.client(), turn, max_tokens=32)]
    assert warm[0] == warm[1]


def test_the_prefix_cache_hit_equals_a_cold_start(client, smollm2):
    answer = chat(client, COUNT, max_tokens=32)
    turn = COUNT + [{"role": "assistant", "content": answer}, {"role": "user", "content": "Now count to ten."}]
    warm = chat(client, turn, max_tokens=32)
    smollm2.clear_cache()
    assert warm == smollm2.chat(turn, max_tokens=32).text


def test_a_remote_reference_keeps_its_url_as_a_url():
    ref = ondevice.resolve("remote:tiny@http://127.0.0.1:9/v1")
    assert ref.path is None and ref.url == "http://127.0.0.1:9/v1" and ref.format == "remote"
    assert ref.location == "http://127.0.0.1:9/v1"


def test_a_server_of_a_remote_model_is_not_known_by_a_piece_of_its_url(server):
    proxy = start_server(model=f"remote:smollm2-135m@{server.base_url}/v1")
    try:
        names = [m.id for m in proxy.client().models.list().data]
        assert "v1" not in names
        with pytest.raises(openai.NotFoundError):
            proxy.client().chat.completions.create(model="v1", messages=CATS, max_tokens=2)
        reply = proxy.client().chat.completions.create(model=f"remote:smollm2-135m@{server.base_url}/v1",
                                                       messages=CATS, max_tokens=4, temperature=0)
        assert reply.choices[0].message.content
    finally:
        stop_server(proxy)
