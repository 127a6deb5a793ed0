"""What transparent huge pages under a loaded model are worth: the same model loaded twice in one process, huge
pages off and on, decoding in interleaved rounds (`bench.interleave`), greedy answers checked identical.

    python -m bench.huge_pages [MODEL] [--rounds 6] [--tokens 128] [--threads 2] [--flash-attn on]

Prints, per arm, what the load put on huge pages and the decode tok/s, then the per-round ratio (on / off) with its
range. This is the command behind the huge-page table in docs/bench.md.
"""

from __future__ import annotations

import argparse
import sys

import ondevice
from bench.interleave import interleave

PROMPT = "Once upon a time, a dragon who lived above a village decided to learn to bake bread."  # base models too


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.huge_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="smollm2-135m")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flash-attn", default="on", choices=("auto", "on", "off"))
    args = parser.parse_args(argv)
    arms = {}
    for on in (False, True):
        arms[on] = ondevice.load(args.model, n_ctx=512, threads=args.threads, flash_attn=args.flash_attn,
                                 huge_pages=on)
        report = arms[on].backend.huge_pages
        print(f"huge pages {'on ' if on else 'off'}: {report.moved_bytes >> 20} MiB on huge pages at load "
              f"in {report.seconds:.2f} s {report.reason}".rstrip())
    answers: dict[bool, set[str]] = {True: set(), False: set()}

    def decode(on: bool):
        def run() -> float:
            result = arms[on].generate(PROMPT, max_tokens=args.tokens, temperature=0)
            answers[on].add(result.text)
            return result.timings.decode_tokens_per_s
        return run

    measured = interleave(decode(True), decode(False), rounds=args.rounds, labels=("on", "off"))
    print(measured.summary("tok/s"))
    same = answers[True] == answers[False] and len(answers[True]) == 1
    print("greedy answers identical in both arms:", "yes" if same else "NO")
    for model in arms.values():
        model.close()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
