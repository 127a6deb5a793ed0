"""A small local assistant built on `import ondevice`: load once, answer many, stream, keep history, close.

    python examples/local_app.py                      # interactive; empty line or Ctrl-D quits
    echo "What is the capital of France?" | python examples/local_app.py --max-tokens 32

Ctrl-C while an answer streams stops that answer and keeps the session; Ctrl-C at the prompt quits.
Runs offline on the embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import argparse
import sys

import ondevice

SYSTEM = "Answer in one short sentence."


def answer(model: ondevice.Model, history: list[dict], max_tokens: int) -> str:
    """Stream one answer to stdout and return its text; Ctrl-C ends it early."""
    stream = model.chat(history, max_tokens=max_tokens, stream=True)
    pieces: list[str] = []
    try:
        for piece in stream:
            pieces.append(piece)
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        stream.close()
        print(" [stopped]", end="")
    print()
    return "".join(pieces)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=ondevice.DEFAULT_MODEL)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--history-turns", type=int, default=6, help="How many past exchanges to keep.")
    args = parser.parse_args(argv)

    try:
        model = ondevice.load(args.model, n_ctx=2048)
    except ondevice.OnDeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    interactive = sys.stdin.isatty()
    history: list[dict] = []
    with model:  # load once; close() frees the model when we leave
        print(f"[{model.name} on {model.device}, {model.threads} threads, context {model.n_ctx}]", file=sys.stderr)
        while True:
            try:
                line = input("you> " if interactive else "")
            except (EOFError, KeyboardInterrupt):
                break
            if not line.strip():
                if interactive:
                    break
                continue
            history.append({"role": "user", "content": line})
            messages = [{"role": "system", "content": SYSTEM}] + history[-(2 * args.history_turns + 1):]
            if not interactive:
                print(f"you> {line}")
            print("assistant> ", end="", flush=True)
            history.append({"role": "assistant", "content": answer(model, messages, args.max_tokens)})
    print(f"[{len(history) // 2} exchanges]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
