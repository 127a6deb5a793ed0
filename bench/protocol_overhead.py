"""Added latency of each protocol adapter vs /v1/chat/completions, measured side by side against a running server.

    ondevice bench protocol-overhead --url http://127.0.0.1:8080 --rounds 10

Every round sends the same greedy question through each protocol (non-streamed, 20 tokens, the order rotated each
round so no protocol always runs first); reports the median wall time per protocol and its difference from chat
completions. All four generate the same 7 tokens (tests/ondevice/server/test_protocols.py checks that).
"""

from __future__ import annotations

import statistics
import time

import httpx

from ondevice.errors import InvalidInput

SYSTEM = "Answer in one short sentence."
QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def bodies(model: str) -> dict[str, tuple[str, dict]]:
    return {
        "chat completions": ("/v1/chat/completions", {"model": model, "messages": MESSAGES, "max_tokens": 20,
                                                      "temperature": 0}),
        "ollama /api/chat": ("/api/chat", {"model": model, "messages": MESSAGES, "stream": False,
                                           "options": {"temperature": 0, "num_predict": 20}}),
        "anthropic /v1/messages": ("/v1/messages", {"model": model, "system": SYSTEM, "max_tokens": 20,
                                                    "messages": MESSAGES[1:]}),
        "responses /v1/responses": ("/v1/responses", {"model": model, "instructions": SYSTEM, "input": QUESTION,
                                                      "max_output_tokens": 20, "temperature": 0}),
    }


def measure(url: str = "http://127.0.0.1:8080", model: str = "smollm2-135m", rounds: int = 10) -> dict[str, list[float]]:
    """Wall milliseconds of each round, per protocol, against the server at `url` (one uncounted warm-up each).
    The first protocol, chat completions, is the one the others are compared with."""
    plan = bodies(model)
    names = list(plan)
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            for name in names:  # warm-up: one each, not counted
                client.post(plan[name][0], json=plan[name][1]).raise_for_status()
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    start = time.perf_counter()
                    client.post(plan[name][0], json=plan[name][1]).raise_for_status()
                    times[name].append((time.perf_counter() - start) * 1000)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"{url}: {exc} (start one with `ondevice serve {model}`)") from None
    return times


def overhead_table(times: dict[str, list[float]]) -> str:
    """Median ms per protocol and its difference from the first (chat completions)."""
    names = list(times)
    base = statistics.median(times[names[0]])
    lines = [f"{'protocol':<26} {'median ms':>10} {'vs chat ms':>11}"]
    for name in names:
        median = statistics.median(times[name])
        lines.append(f"{name:<26} {median:>10.1f} {median - base:>+11.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("protocol-overhead")
