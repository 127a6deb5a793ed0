"""Serve a local model with the OpenAI API and call it with the official `openai` client.

    python examples/serve_and_call.py [--model smollm2-135m] [--embed-model minilm-l6]

Starts `ondevice serve` on a free loopback port in a subprocess, then: a chat answer, the same question streamed,
and embeddings. Shuts the server down however the calls end. Any OpenAI-compatible app works the same way: point
its base URL at http://127.0.0.1:PORT/v1.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from openai import OpenAI

QUESTION = [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, embed_model: str, port: int, threads: int | None = None,
                 timeout: float = 180) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ondevice", "serve", model, "--port", str(port), "--ctx", "2048",
           "--embed-model", embed_model]
    server = subprocess.Popen(cmd + (["--threads", str(threads)] if threads else []))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # ready when /health answers
        if server.poll() is not None:
            raise SystemExit(f"server exited with code {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not start in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--embed-model", default="minilm-l6")
    parser.add_argument("--threads", type=int, default=None, help="Server CPU threads (default: physical cores).")
    args = parser.parse_args()

    port = free_port()
    server = start_server(args.model, args.embed_model, port, args.threads)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused-locally")
        print("models:", [m.id for m in client.models.list()])

        reply = client.chat.completions.create(model=args.model, messages=QUESTION, temperature=0, max_tokens=32)
        print("chat:", reply.choices[0].message.content, f"({reply.usage.completion_tokens} tokens)")

        print("stream: ", end="", flush=True)
        for chunk in client.chat.completions.create(model=args.model, messages=QUESTION, temperature=0,
                                                    max_tokens=32, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()

        texts = ["a small cat", "a little kitten", "quarterly stock market report"]
        vectors = np.array([d.embedding for d in client.embeddings.create(model=args.embed_model,
                                                                          input=texts).data])
        sims = vectors @ vectors.T
        print(f"embeddings: {vectors.shape[0]} x {vectors.shape[1]}; similarity cat~kitten {sims[0, 1]:.2f}, "
              f"cat~stocks {sims[0, 2]:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
