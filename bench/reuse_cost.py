"""What the temperature-0 contract costs a conversation: time to first token of its next turns, exact cache reuse
(the default) against `cache_reuse="all"`, interleaved.

    ondevice bench reuse-cost [--model smollm2-135m] [--turns 3] [--rounds 4] [--threads 1]

Two loaded copies of the model, one per mode, answer the same conversation turn by turn, alternating A B, B A ...
(`bench.interleave`); each turn's answer comes from the exact copy so both see the same history. Prints the
median time to first token of every turn after the first for each mode, the per-round ratio, and how many prompt
tokens each mode reused.
"""

from __future__ import annotations

import ondevice
from bench.interleave import interleave

SYSTEM = "You are a helpful assistant who answers in a few sentences. " * 8
FIRST = "Tell me a story about a cat."
FOLLOW_UPS = ["Now make it about a dog.", "Give it a title.", "Summarise it in one line.", "Translate the title."]


def measure(model: str = "smollm2-135m", turns: int = 3, rounds: int = 4, threads: int = 1,
            answer_tokens: int = 96) -> dict:
    """Per turn: median TTFT (ms) of each mode, the median per-round ratio all/exact, reused prompt tokens."""
    exact = ondevice.load(model, n_ctx=2048, threads=threads)
    fast = ondevice.load(model, n_ctx=2048, threads=threads, cache_reuse="all")
    try:
        history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": FIRST}]
        out = []
        for follow_up in FOLLOW_UPS[:turns]:
            answer = exact.chat(history, max_tokens=answer_tokens).text
            fast.chat(history, max_tokens=answer_tokens)  # both caches now hold the same prompt and answer
            history = history + [{"role": "assistant", "content": answer}, {"role": "user", "content": follow_up}]
            turn = list(history)

            def run(model_):
                result = model_.chat(turn, max_tokens=2).timings
                model_.chat(turn[:-2], max_tokens=answer_tokens)  # back to the state a next turn starts from
                return result

            # The second call above re-decodes the previous turn, so each round starts from the same cache state.
            compared = interleave(lambda: run(fast), lambda: run(exact), rounds=rounds, labels=("all", "exact"),
                                  key=lambda t: t.ttft_ms)
            out.append({"prompt_tokens": compared.a_results[0].prompt_tokens,
                        "reused_all": compared.a_results[0].reused_tokens,
                        "reused_exact": compared.b_results[0].reused_tokens,
                        "ttft_ms_all": round(compared.a_median, 1), "ttft_ms_exact": round(compared.b_median, 1),
                        "ratio_all_to_exact": round(compared.ratio_median, 3),
                        "ratio_range": [round(compared.ratio_min, 3), round(compared.ratio_max, 3)]})
        return {"model": model, "threads": threads, "rounds": rounds, "turns": out}
    finally:
        exact.close()
        fast.close()


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("reuse-cost")
