"""Added latency of each protocol adapter vs /v1/chat/completions, measured side by side against a running server.

    python -m bench.protocol_overhead --url http://127.0.0.1:8080 --rounds 10

Every round sends the same greedy question through each protocol (non-streamed, 20 tokens, the order rotated each
round so no protocol always runs first); reports the median wall time per protocol and its difference from chat
completions. All four generate the same 7 tokens (tests/ondevice/server/test_protocols.py checks that).
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    plan = bodies(args.model)
    names = list(plan)
    times: dict[str, list[float]] = {name: [] for name in names}
    with httpx.Client(base_url=args.url, timeout=120) as client:
        for name in names:  # warm-up: one each, not counted
            client.post(plan[name][0], json=plan[name][1]).raise_for_status()
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                start = time.perf_counter()
                client.post(plan[name][0], json=plan[name][1]).raise_for_status()
                times[name].append((time.perf_counter() - start) * 1000)
    base = statistics.median(times[names[0]])
    print(f"{'protocol':<26} {'median ms':>10} {'vs chat ms':>11}")
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:<26} {median:>10.1f} {median - base:>+11.1f}")


if __name__ == "__main__":
    main()
