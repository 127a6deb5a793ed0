"""`ondevice serve --parallel N`: concurrent requests decode together and each gets exactly its own answer.

A real server process with 4 slots, the real openai client; the reference answers come from the single-stream path
(the session `smollm2` model, one request at a time).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from click.testing import CliRunner

from ondevice.backends.llama_batch import BatchEngine
from ondevice.cli.main import cli
from ondevice.decoding.sampling import SamplingParams
from tests.ondevice.server.conftest import start_server, stop_server

SLOTS, QUEUE = 4, 2
TOKENS = 16
PROMPTS = ["What is the capital of France?", "Name a fruit and its colour.", "Write a haiku about the sea.",
           "Count from 1 to 10.", "Why is the sky blue?", "Give me one tip for sleeping well."]


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def batched_server():
    s = start_server("--parallel", str(SLOTS), "--max-queue", str(QUEUE))
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def alone(smollm2) -> dict[str, str]:
    """Each prompt's greedy answer on the single-stream path, one at a time."""
    return {p: smollm2.chat(ask(p), max_tokens=TOKENS).text for p in PROMPTS}


def test_the_engine_gives_each_prompt_its_single_stream_tokens(smollm2, alone):
    engine = BatchEngine(smollm2.backend, slots=3)  # 6 prompts on 3 slots: three join as others leave
    try:
        rendered = [smollm2.render_chat(ask(p)) for p in PROMPTS]
        texts = engine.generate_all(rendered, SamplingParams(max_tokens=TOKENS))
        assert texts == [alone[p] for p in PROMPTS]
        assert engine.steps < len(PROMPTS) * TOKENS  # tokens of several streams went through each decode
        again = engine.generate_all(rendered[:2], SamplingParams(max_tokens=TOKENS))  # slots reuse their prefix
        assert again == [alone[p] for p in PROMPTS[:2]] and engine.reused_tokens > 0
    finally:
        engine.close()


def test_concurrent_greedy_requests_get_exactly_their_answers_alone(batched_server, alone):
    client = batched_server.async_client()

    async def one(i: int, prompt: str) -> str:
        if i % 2:  # half streamed, half not: both ways read the same batch
            stream = await client.chat.completions.create(model="smollm2-135m", messages=ask(prompt),
                                                          max_tokens=TOKENS, temperature=0, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        reply = await client.chat.completions.create(model="smollm2-135m", messages=ask(prompt),
                                                     max_tokens=TOKENS, temperature=0)
        return reply.choices[0].message.content

    async def all_at_once() -> list[str]:
        return await asyncio.gather(*(one(i, p) for i, p in enumerate(PROMPTS)))

    before = batched_server.wait_idle()["batch"]
    texts = asyncio.run(all_at_once())
    assert texts == [alone[p] for p in PROMPTS]
    after = batched_server.wait_idle()["batch"]
    assert after["slots"] == SLOTS
    assert after["steps"] - before["steps"] < len(PROMPTS) * TOKENS  # several streams per decode


async def open_stream(http: httpx.AsyncClient, start: int, first_token: bool = True):
    """A long streamed completion (counting on from `start`) left open for the caller to close, with its line
    iterator; with `first_token`, once it has produced a token."""
    body = {"model": "smollm2-135m", "prompt": ", ".join(str(start + i) for i in range(4)) + ",",
            "max_tokens": 400, "temperature": 0, "stream": True}
    cm = http.stream("POST", "/v1/completions", json=body)
    response = await cm.__aenter__()
    assert response.status_code == 200
    lines = response.aiter_lines()  # kept open with the stream: a dropped iterator closes the connection
    while first_token and not (await lines.__anext__()).startswith("data: "):
        pass
    return cm, lines


def test_a_request_joining_while_others_decode_gets_its_own_answer(batched_server, alone):
    async def scenario() -> str:
        async with httpx.AsyncClient(base_url=batched_server.base_url, timeout=300) as http:
            busy = [await open_stream(http, k) for k in (1, 20)]
            try:
                reply = await http.post("/v1/chat/completions", json={
                    "model": "smollm2-135m", "messages": ask(PROMPTS[4]), "max_tokens": TOKENS, "temperature": 0})
                return reply.json()["choices"][0]["message"]["content"]
            finally:
                for cm, _ in busy:
                    await cm.__aexit__(None, None, None)

    assert asyncio.run(scenario()) == alone[PROMPTS[4]]
    assert not batched_server.wait_idle(timeout=60)["busy"]


def test_disconnects_free_their_slots_and_a_full_batch_answers_429(batched_server):
    before = batched_server.wait_idle()["stats"]

    async def scenario() -> tuple[int, str | None]:
        async with httpx.AsyncClient(base_url=batched_server.base_url, timeout=300) as http:
            streams = [await open_stream(http, 10 * k) for k in range(SLOTS)]  # every slot decoding
            streams += [await open_stream(http, 7 * k, first_token=False) for k in range(QUEUE)]  # waiting
            refused = await http.post("/v1/chat/completions", json={
                "model": "smollm2-135m", "messages": ask("Hi"), "max_tokens": 4})
            assert (await http.get("/health")).json()["batch"]["waiting"] == QUEUE
            for cm, _ in streams:  # every client walks away mid-answer
                await cm.__aexit__(None, None, None)
            return refused.status_code, refused.headers.get("retry-after")

    status, retry_after = asyncio.run(scenario())
    assert status == 429 and retry_after and int(retry_after) >= 1
    health = batched_server.wait_idle(timeout=60)
    assert not health["busy"] and health["batch"]["active"] == 0
    assert health["stats"]["rejected"] == before["rejected"] + 1
    assert health["stats"]["cancelled"] == before["cancelled"] + SLOTS + QUEUE
    client = batched_server.client()  # every slot is free again
    reply = client.completions.create(model="smollm2-135m", prompt="The capital of France is", temperature=0,
                                      max_tokens=4)
    assert "Paris" in reply.choices[0].text


def test_a_bad_parallel_value_is_one_line_and_exit_code_2():
    result = CliRunner().invoke(cli, ["serve", "smollm2-135m", "--parallel", "0", "--port", "0"])
    assert result.exit_code == 2
    assert "--parallel" in result.output and "Traceback" not in result.output


def test_auto_slots_fit_half_the_available_ram(smollm2):
    from ondevice.models.memory import kv_bytes
    from ondevice.server.batching import DEFAULT_MAX_SLOTS, auto_slots

    per_slot = kv_bytes(smollm2.info, 8192, smollm2.backend.options.kv_type)
    assert auto_slots(smollm2, 8192, available_bytes=100 * per_slot) == DEFAULT_MAX_SLOTS
    assert auto_slots(smollm2, 8192, available_bytes=5 * per_slot) == 2  # half of it holds 2.5 slots
    assert auto_slots(smollm2, 8192, available_bytes=per_slot) == 1      # no room for a batch: one at a time


def test_a_grammar_request_falls_back_to_the_single_stream_path(batched_server):
    before = batched_server.wait_idle()
    reply = batched_server.client().chat.completions.create(
        model="smollm2-135m", messages=ask("Give a fruit and its colour as JSON."), max_tokens=24, temperature=0,
        response_format={"type": "json_object"})
    after = batched_server.wait_idle()
    assert reply.choices[0].message.content.lstrip().startswith("{")  # constrained by the grammar
    assert after["batch"]["steps"] == before["batch"]["steps"]       # not one batch step: the single-stream path
    assert after["stats"]["served"] == before["stats"]["served"] + 1
