"""Under load and disconnects: every finished stream is well-formed, cancelled ones stop, memory stays flat.

Bounded: 40 clients, small max_tokens, every wait has a timeout.
"""

from __future__ import annotations

import asyncio

import httpx
import psutil

from tests.ondevice.server.conftest import QUESTION
from tests.ondevice.server.test_bad_input import COUNTING

STREAMS = 32
DISCONNECTS = 8
STREAM_TOKENS = 8
LONG = 400  # max_tokens of the requests that get abandoned: far more than they may generate after the disconnect


def rss(server) -> int:
    return psutil.Process(server.process.pid).memory_info().rss


async def streamed_chat(client, i: int) -> list:
    messages = [{"role": "user", "content": f"Give me fact number {i} about the sea."}]
    stream = await client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=STREAM_TOKENS,
                                                  temperature=0.7, seed=i, stream=True,
                                                  stream_options={"include_usage": True})
    return [chunk async for chunk in stream]


async def abandoned_stream(base_url: str, chunks_before_leaving: int = 2) -> int:
    """Start a long completion, read a few SSE events, then drop the connection. Returns events read."""
    body = {"model": "smollm2-135m", "prompt": COUNTING, "max_tokens": LONG, "stream": True}
    read = 0
    async with httpx.AsyncClient(timeout=120) as http:
        async with http.stream("POST", base_url + "/v1/completions", json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    read += 1
                    if read >= chunks_before_leaving:
                        break
    return read


def check_well_formed(chunks: list) -> None:
    assert chunks, "empty stream"
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    usage = chunks[-1].usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert usage is not None and 0 < usage.completion_tokens <= STREAM_TOKENS
    assert text or finishes == ["stop"]


def test_a_disconnected_stream_stops_and_the_next_request_runs(server, client):
    before = server.wait_idle()
    read = asyncio.run(abandoned_stream(server.base_url, chunks_before_leaving=3))
    after = server.wait_idle(timeout=30)
    assert not after["busy"], "generation went on after the client left"
    generated = after["stats"]["tokens"] - before["stats"]["tokens"]
    assert after["stats"]["cancelled"] == before["stats"]["cancelled"] + 1
    assert read <= generated < read + 20, f"{generated} tokens generated for a client that read {read}"
    reply = client.completions.create(model="smollm2-135m", prompt="The capital of France is", temperature=0,
                                      max_tokens=4)
    assert "Paris" in reply.choices[0].text


def test_32_streams_and_8_disconnects_at_once_keep_the_server_sound(server, client):
    client.chat.completions.create(model="smollm2-135m", messages=QUESTION, max_tokens=8)  # warm the allocators
    asyncio.run(abandoned_stream(server.base_url))
    before_stats = server.wait_idle()["stats"]
    rss_before = rss(server)

    async def load():
        async_client = server.async_client()
        tasks = [streamed_chat(async_client, i) for i in range(STREAMS)]
        tasks += [abandoned_stream(server.base_url) for _ in range(DISCONNECTS)]
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=150)
        await async_client.close()
        return results

    results = asyncio.run(load())
    for chunks in results[:STREAMS]:
        check_well_formed(chunks)
    health = server.wait_idle(timeout=30)
    assert health["status"] == "ok" and not health["busy"] and health["waiting"] == 0
    stats = health["stats"]
    assert stats["served"] - before_stats["served"] == STREAMS  # every finished request answered exactly once
    assert stats["cancelled"] - before_stats["cancelled"] == DISCONNECTS
    assert stats["rejected"] == before_stats["rejected"]
    abandoned_tokens = stats["tokens"] - before_stats["tokens"] - sum(
        r[-1].usage.completion_tokens for r in results[:STREAMS])
    assert abandoned_tokens < DISCONNECTS * 20, "abandoned streams kept generating"
    rss_after = rss(server)
    assert abs(rss_after - rss_before) <= 0.10 * rss_before, (rss_before, rss_after)
    reply = client.chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0, max_tokens=24)
    assert "Paris" in reply.choices[0].message.content
