"""Real servers for the server tests: `ondevice serve` in a subprocess on a free loopback port, one per session.

A subprocess (not a thread) so the load test can measure the server's own RSS, and so a crash would show as a dead
process rather than a hung test run.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx
import openai
import pytest

N_CTX = 512
API_KEY = "test-key-123"
SYSTEM = "Answer in one short sentence."  # see tests/ondevice/test_generate.py: a clear greedy margin for "Paris"
QUESTION = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is the capital of France?"}]
START_TIMEOUT_S = 180  # the first embeddings request may also convert MiniLM; start itself takes seconds


EMBED_MODEL = "minilm-l6"  # the default; converted to ONNX once per session (shared by test and server processes)
NOTES = {  # a tiny corpus for --rag-index
    "pets/biscuit.md": "# Biscuit\n\nBiscuit the beagle gets his heartworm tablet on the first day of every month,\n"
                       "wrapped in a bit of cheese so he swallows it.\n",
    "home/network.md": "# Guest network\n\nRouter passphrase for the guest wifi: sunflower-meadow-42.\n",
}


def rag_available() -> bool:
    return importlib.util.find_spec("ondevice.rag") is not None


def build_index(folder) -> str:
    """Index NOTES into folder/notes.sqlite with the default embedder; returns the index path."""
    from ondevice.rag import Index

    for name, text in NOTES.items():
        (folder / "notes" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "notes" / name).write_text(text)
    with Index(folder / "notes.sqlite", embed_model=EMBED_MODEL, threads=1) as index:
        index.add([folder / "notes"])
    return str(folder / "notes.sqlite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running `ondevice serve` subprocess."""

    process: subprocess.Popen
    port: int
    api_key: str | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.api_key or "unused", max_retries=0,
                             timeout=120, **kwargs)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url + "/v1", api_key=self.api_key or "unused", max_retries=0,
                                  timeout=120)

    def health(self) -> dict:
        return httpx.get(self.base_url + "/health", timeout=30).json()

    def wait_idle(self, timeout: float = 60) -> dict:
        """Poll /health until nothing runs or waits (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if not health["busy"] and health["waiting"] == 0 or time.monotonic() > deadline:
                return health
            time.sleep(0.05)


def start_server(*args: str, api_key: str | None = None, cwd=None, model: str = "smollm2-135m") -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "ondevice", "serve", model, "--port", str(port), "--ctx", str(N_CTX),
           "--threads", "1", "--embed-model", EMBED_MODEL, "--parallel", "1", *args]  # batching: test_batching.py
    if api_key:
        cmd += ["--api-key", api_key]
    # stderr to a file, not a pipe: nobody reads a pipe while tests run, and a full one would block the server
    log = tempfile.NamedTemporaryFile("w+", prefix="ondevice-serve-", suffix=".log", delete=False)
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True, cwd=cwd,
                               env={**os.environ, "ONDEVICE_API_KEY": ""})
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {open(log.name).read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return Server(process, port, api_key)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start in time")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The main server: no API key, a queue deep enough for the load test, a RAG index when ondevice.rag is here."""
    folder = tmp_path_factory.mktemp("rag")
    rag = ["--rag-index", build_index(folder)] if rag_available() else []
    # run in the corpus folder: citations (and so the grounded prompts) then show stable relative paths
    s = start_server("--max-queue", "64", *rag, cwd=folder)
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def keyed_server():
    """A server with an API key and no queue at all (a second request while one runs gets 429)."""
    s = start_server("--max-queue", "0", "--max-body", "4096", api_key=API_KEY)
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return server.client()
