"""Load/soak a running server (not a test): N clients stream chats for S seconds, some walk away mid-stream.

    ondevice bench soak --url http://127.0.0.1:8080 --clients 16 --seconds 60
    ondevice bench soak --url http://127.0.0.1:8601 --versus http://127.0.0.1:8608 --rounds 3 --seconds 15

Loopback only and bounded: it refuses any host but 127.0.0.1/localhost/::1, stops starting requests after
`--seconds`, and gives up on the ones still running `--grace` seconds later. It prints one JSON summary: requests
by outcome, malformed streams, latency percentiles, tokens/s, and the server's RSS before and after (when the server
runs on this machine and psutil can see it).
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

import httpx

from ondevice.errors import InvalidInput

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PROMPTS = ["Name a fruit and its colour.", "What is the capital of France?", "Give me one tip for sleeping well.",
           "Write a haiku about the sea.", "Count from 1 to 10.", "Why is the sky blue?"]


@dataclass
class SoakResult:
    clients: int
    seconds: float
    completed: int = 0
    abandoned: int = 0           # clients that disconnected on purpose mid-stream
    rejected_429: int = 0
    errors: int = 0              # any other status or a transport error
    malformed: int = 0           # completed streams that were not well-formed SSE ending in [DONE]
    cut_off: int = 0             # requests still running when the grace period ended (dropped by us)
    tokens: int = 0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    ttft_p50_s: float = 0.0
    tokens_per_s: float = 0.0
    health_after: dict = field(default_factory=dict)
    rss_before_mb: float | None = None
    rss_after_mb: float | None = None


def _server_pid(port: int) -> int | None:
    """The process listening on `port` on this machine, if psutil may see it."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                return conn.pid
    except Exception:  # no permission to list sockets: RSS is simply not reported
        return None
    return None


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


async def _one_request(http: httpx.AsyncClient, model: str, max_tokens: int, abandon: bool,
                       result: SoakResult, latencies: list, ttfts: list) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
            "max_tokens": max_tokens, "temperature": 0.7, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code == 429:
                result.rejected_429 += 1
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                return
            if response.status_code != 200:
                result.errors += 1
                return
            events, first = [], None
            async for line in response.aiter_lines():
                if not line:
                    continue
                if first is None:
                    first = time.perf_counter() - t0
                events.append(line)
                if abandon and len(events) >= 3:
                    result.abandoned += 1
                    return  # leaving the `async with` drops the connection mid-stream
        latencies.append(time.perf_counter() - t0)
        ttfts.append(first or 0.0)
        if not _well_formed(events):
            result.malformed += 1
            return
        result.completed += 1
        usage = json.loads(events[-2][6:]).get("usage") or {}
        result.tokens += usage.get("completion_tokens", 0)
    except httpx.HTTPError:
        result.errors += 1


def _well_formed(events: list[str]) -> bool:
    if len(events) < 3 or events[-1] != "data: [DONE]" or not all(e.startswith("data: ") for e in events):
        return False
    try:
        chunks = [json.loads(e[6:]) for e in events[:-1]]
    except ValueError:
        return False
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")]
    return len({c["id"] for c in chunks}) == 1 and finishes[-1] in ("stop", "length")


async def soak(url: str, clients: int, seconds: float, model: str, max_tokens: int, abandon_rate: float,
               grace: float, api_key: str | None) -> SoakResult:
    result = SoakResult(clients, seconds)
    latencies: list[float] = []
    ttfts: list[float] = []
    pid = _server_pid(urlparse(url).port or 80)
    result.rss_before_mb = _rss_mb(pid)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + seconds
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=grace + seconds) as http:
        async def client_loop(i: int) -> None:
            rng = random.Random(i)
            while time.monotonic() < deadline:
                await _one_request(http, model, max_tokens, rng.random() < abandon_rate, result, latencies, ttfts)

        tasks = [asyncio.create_task(client_loop(i)) for i in range(clients)]
        done, pending = await asyncio.wait(tasks, timeout=seconds + grace)
        result.cut_off = len(pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for _ in range(100):  # bounded: let the last abandoned stream be noticed before the snapshot
            result.health_after = (await http.get("/health", timeout=30)).json()
            if not result.health_after["busy"]:
                break
            await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - t0
    if latencies:
        result.latency_p50_s = round(statistics.median(latencies), 3)
        result.latency_p95_s = round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 3)
        result.ttft_p50_s = round(statistics.median(ttfts), 3)
    result.tokens_per_s = round(result.tokens / elapsed, 1)
    result.rss_after_mb = _rss_mb(pid)
    return result


def check_targets(url: str, versus: str | None, clients: int, seconds: float, rounds: int) -> None:
    """The guard rails: loopback servers only, 1..256 clients, 0..3600 s, at least one round with `versus`."""
    for target in (url, versus) if versus else (url,):
        host = urlparse(target).hostname
        if host not in LOOPBACK:
            raise InvalidInput(f"refusing to load {host!r}: the soak test only targets loopback")
    if not (1 <= clients <= 256 and 0 < seconds <= 3600):
        raise InvalidInput("clients must be 1..256 and seconds 0..3600")
    if versus and rounds < 1:
        raise InvalidInput("--rounds must be at least 1")


def run_soak(url: str, clients: int = 16, seconds: float = 60, model: str = "smollm2-135m", max_tokens: int = 32,
             abandon_rate: float = 0.2, grace: float = 60, api_key: str | None = None, versus: str | None = None,
             rounds: int = 3) -> tuple[dict, bool]:
    """Soak `url` (and with `versus`, both servers in alternation: bench.interleave, `rounds` rounds of `seconds`
    each, order flipped every round). Returns the JSON summary and whether every stream was well-formed."""
    check_targets(url, versus, clients, seconds, rounds)

    def run(target: str) -> SoakResult:
        return asyncio.run(soak(target, clients, seconds, model, max_tokens, abandon_rate, grace, api_key))

    if versus:
        from bench.interleave import interleave

        comp = interleave(lambda: run(url), lambda: run(versus), rounds, warmup=0, labels=(url, versus),
                          key=lambda r: r.tokens_per_s)
        results = comp.a_results + comp.b_results
        summary = {"tokens_per_s": comp.to_dict(), "ttft_p50_s": comp.on(lambda r: r.ttft_p50_s).to_dict(),
                   "runs": {url: [asdict(r) for r in comp.a_results], versus: [asdict(r) for r in comp.b_results]}}
    else:
        results = [run(url)]
        summary = asdict(results[0])
    return summary, all(r.malformed == 0 and r.errors == 0 for r in results)


if __name__ == "__main__":  # `ondevice bench soak ...`
    from bench.cli import module_alias

    module_alias("soak")
