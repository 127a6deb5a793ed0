"""Runs the fuzz corpus (tests/fuzz/corpus.py) in child processes with time and memory limits and classifies every
outcome: "ok" (ran fine), "error" (one clear line: an OnDeviceError, CLI exit 2 with `error: ...`, a 4xx in the
endpoint's protocol's own error shape: OpenAI's with a code, Ollama's under /api/, Anthropic's on /v1/messages),
or a failure: "failure" (a traceback, a misleading message, a 5xx, a changed file), "crash" (the process died on a
signal), "hang" (no answer in time).

    python -m tests.fuzz [--full]        # the table of outcomes; --full for the whole corpus (1140 inputs)
    python -m tests.fuzz --full --server-only   # (or --no-server) one side of it
"""

from __future__ import annotations

import json
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CASE_TIMEOUT_S = 60         # one input, CLI model load included; far above any clear refusal (milliseconds)
MEMORY_LIMIT = 6 << 30      # address space of a driver child: an input that makes a runtime allocate ~22 GB fails
SERVER_BATCH = 50           # inputs between the server's health, answer and RSS checks
RSS_GROWTH = 0.10           # the server's RSS (less its prefix cache) after every batch: within 10% of the start
FAILURES = ("failure", "crash", "hang")


@dataclass
class Report:
    """Outcomes by (surface, channel), the failures with their inputs, and the server's RSS checks."""

    counts: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    inputs: Counter = field(default_factory=Counter)
    results: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, surface: str, channel: str, outcome: str, detail: str, case) -> None:
        self.counts[(surface, channel, outcome)] += 1
        self.results.append((surface, channel, outcome, detail))
        if outcome in FAILURES:
            self.failures.append({"surface": surface, "channel": channel, "outcome": outcome, "detail": detail,
                                  "case": json.dumps(case)[:300]})

    def table(self) -> str:
        outcomes = ("ok", "error") + FAILURES
        rows = sorted({(s, c) for s, c, _ in self.counts})
        lines = [f"{'surface':9} {'channel':12} " + " ".join(f"{o:>7}" for o in outcomes)]
        for surface, channel in rows:
            lines.append(f"{surface:9} {channel:12} " +
                         " ".join(f"{self.counts[(surface, channel, o)]:>7}" for o in outcomes))
        total = {o: sum(n for (_, _, oc), n in self.counts.items() if oc == o) for o in outcomes}
        lines.append(f"{'all':9} {'':12} " + " ".join(f"{total[o]:>7}" for o in outcomes))
        lines.append("inputs: " + ", ".join(f"{s} {n}" for s, n in sorted(self.inputs.items())) +
                     f" ({sum(self.inputs.values())} in all)")
        if self.rss:
            lines.append(f"server RSS less its prefix cache, second pass, at its start and after each batch of "
                         f"{SERVER_BATCH} (MiB): "
                         f"{' '.join(str(r >> 20) for r in self.rss)}")
        return "\n".join(lines)


# --- driver children ------------------------------------------------------------------------------------------------
def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_in_children(items: list[dict], work: Path, onnx_dir: Path | None, report: Report) -> None:
    """Run `items` through tests/fuzz/driver.py children; a child that dies or hangs is replaced and the rest go
    on in a fresh one."""
    remaining = list(items)
    by_key = {item["key"]: item for item in items}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")])}
    while remaining:
        cases = work / "cases.json"
        cases.write_text(json.dumps(remaining))
        log = open(work / "driver.log", "ab")
        child = subprocess.Popen([sys.executable, "-m", "tests.fuzz.driver", str(cases), str(work / "scratch"),
                                  str(onnx_dir or "")], stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                 preexec_fn=_limit_memory, env=env)
        lines: queue.Queue = queue.Queue()

        def pump(stream=child.stdout) -> None:
            for raw in stream:
                lines.put(raw)
            lines.put(None)  # end of output: the child exited (or closed its stdout)

        threading.Thread(target=pump, daemon=True).start()
        started, done = None, set()

        def unfinished(outcome: str, detail: str) -> None:
            """The case the child started and never reported: it hung or crashed the child."""
            if started is not None and started not in done:
                item = by_key[started]
                report.add(item["surface"], item["channel"], outcome, detail, item["case"])
                done.add(started)
        deadline = time.monotonic() + CASE_TIMEOUT_S * 3  # the first case also waits for the model to load
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:  # no progress in time: a hang
                child.kill()
                child.wait()
                unfinished("hang", f">{CASE_TIMEOUT_S}s")
                break
            if line is None:  # the child is gone: a case it started and never finished crashed it
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                unfinished("crash", f"exit {child.returncode}")
                break
            text = line.decode("utf-8", "replace")
            if not text.startswith("@@FUZZ "):
                continue
            kind, _, payload = text[len("@@FUZZ "):].rstrip("\n").partition(" ")
            if kind == "START":
                started = payload
                deadline = time.monotonic() + CASE_TIMEOUT_S
            elif kind == "DONE":
                result = json.loads(payload)
                item = by_key[result["key"]]
                report.add(item["surface"], item["channel"], result["outcome"], result["detail"], item["case"])
                done.add(result["key"])
        log.close()
        if child.poll() is None:
            child.kill()
        child.wait()
        remaining = [item for item in remaining if item["key"] not in done]
        if remaining and started is None:  # the child died before its first case: nothing would change
            for item in remaining:
                report.add(item["surface"], item["channel"], "crash", "the driver did not start", item["case"])
            return


# --- the server ----------------------------------------------------------------------------------------------------
_DEEP = "\u0000deep:"


def _json_text(value) -> str | None:
    """JSON text of a case value; {"$deep": n} becomes n nested lists; None for values JSON cannot carry."""
    def swap(v):
        if isinstance(v, dict):
            if "$deep" in v and len(v) <= 2:
                return f"{_DEEP}{int(v['$deep'])}:{v.get('kind', 'list')}"
            if "$set" in v and len(v) == 1:
                return list(v["$set"])
            if "$self" in v and len(v) == 1:
                raise ValueError("no JSON form")
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    try:
        text = json.dumps(swap(value))
    except ValueError:
        return None
    while _DEEP in text or json.dumps(_DEEP)[1:-1] in text:
        marker = json.dumps(_DEEP)[1:-1]
        start = text.index(marker) - 1
        end = text.index('"', start + 1 + len(marker))
        depth, kind = text[start + 1 + len(marker):end].split(":")
        depth = int(depth)
        nested = ('{"type": "object", "properties": {"a": ' * depth + '{"type": "integer"}' + "}}" * depth
                  if kind == "schema" else "[" * depth + "]" * depth)
        text = text[:start] + nested + text[end + 1:]
    return text


def server_bodies(corpus: dict[str, list[dict]]) -> list[tuple[str, str, str, dict]]:
    """(surface, path, body text, case) for every input the server can take: raw bodies, schemas as
    response_format, tool requests as chat requests."""
    out = []
    base = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    for surface in ("body", "protocol"):
        for case in corpus.get(surface, []):
            out.append((surface, case["path"], case["body"], case))
    for case in corpus.get("schema", []):
        if "schema" in case:
            text = _json_text({**base, "response_format": {"type": "json_schema",
                                                           "json_schema": {"name": "x", "schema": case["schema"]}}})
            if text is not None:
                out.append(("schema", "/v1/chat/completions", text, case))
    for case in corpus.get("tools", []):
        request = {**base, **{k: v for k, v in case.items() if k in ("messages", "tools", "tool_choice")}}
        text = _json_text(request)
        if text is not None:
            out.append(("tools", "/v1/chat/completions", text, case))
    return out


def _openai_error(body) -> str:
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"] and error["code"] and "type" in error
    return f"{error['code']}: {error['message']}"


def _ollama_error(body) -> str:
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


def _anthropic_error(body) -> str:
    error = body["error"]
    assert body["type"] == "error" and set(body) == {"type", "error"}
    assert isinstance(error["type"], str) and error["type"].endswith("_error") and error["message"]
    return f"{error['type']}: {error['message']}"


# path prefix -> (the protocol's name, a check of its error body returning the detail); OpenAI's for the rest
ERROR_SHAPES = {"/api/": ("Ollama", _ollama_error), "/v1/messages": ("Anthropic", _anthropic_error)}


def classify_response(response: httpx.Response, path: str = "/v1/chat/completions") -> tuple[str, str]:
    """ok (200), error (a 4xx in the protocol's own error shape: Ollama's under /api/, Anthropic's on /v1/messages,
    OpenAI's with a code elsewhere) or failure (a 5xx, any other shape)."""
    if response.status_code >= 500:
        return "failure", f"{response.status_code}: {response.text[:300]}"
    if response.status_code == 200:
        return "ok", "200"
    name, check = next((shape for prefix, shape in ERROR_SHAPES.items() if path.startswith(prefix)),
                       ("OpenAI", _openai_error))
    try:
        detail = check(response.json())
    except Exception:  # noqa: BLE001 - anything but the protocol's error shape is a failure
        return "failure", f"{response.status_code} without {name}'s error shape: {response.text[:300]}"
    return "error", f"{response.status_code} {detail[:200]}"


def _healthy(server, client: httpx.Client) -> str | None:
    """None when the server answers /health and a normal request; else what is wrong."""
    try:
        if client.get(server.base_url + "/health", timeout=30).status_code != 200:
            return "/health is not 200"
        response = client.post(server.base_url + "/v1/chat/completions", timeout=120, json={
            "model": "smollm2-135m", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        return None if response.status_code == 200 else f"a normal request got {response.status_code}"
    except httpx.HTTPError as exc:
        return f"the server does not answer ({type(exc).__name__})"


def _net_rss(server, client: httpx.Client, psutil) -> int:
    """The server's RSS less what its prefix cache holds (KV snapshots of recent prompts: up to 4 slots and 256 MiB
    by design, filled as different prompts arrive; a cache, not a leak)."""
    rss = psutil.Process(server.process.pid).memory_info().rss
    cache = client.get(server.base_url + "/health", timeout=30).json().get("prefix_cache") or {}
    return rss - int(cache.get("bytes", 0))


def run_server(corpus: dict[str, list[dict]], report: Report) -> None:
    """Every server input against one `ondevice serve` child, twice: each pass after each batch checks that the
    server is healthy and answers a normal request; the second pass also that its RSS stays within 10% of where
    the pass started.

    Why two passes: the server's RSS settles at a level that depends on the variety of what it has served, not on
    how much (measured: 200 distinct tools requests raised it 12 MiB once; the same 200 sent three more times left
    it within 5 MiB; 400 identical requests, 0), as allocator pools and buffers first touched by longer prompts grow
    to their high-water mark. The first pass takes it there; a leak would still grow in the second."""
    import psutil

    from tests.ondevice.server.conftest import start_server, stop_server

    bodies = server_bodies(corpus)
    server = start_server("--max-queue", "8")
    try:
        with httpx.Client() as client:
            problem = _healthy(server, client)
            assert problem is None, problem
            for channel in ("server", "server-again"):
                start_rss = _net_rss(server, client, psutil)
                if channel == "server-again":
                    report.rss.append(start_rss)
                for i in range(0, len(bodies), SERVER_BATCH):
                    for surface, path, text, case in bodies[i:i + SERVER_BATCH]:
                        try:
                            response = client.post(server.base_url + path,
                                                   content=text.encode("utf-8", "surrogatepass"),
                                                   headers={"content-type": "application/json"},
                                                   timeout=CASE_TIMEOUT_S)
                            outcome, detail = classify_response(response, path)
                        except httpx.TimeoutException:
                            outcome, detail = "hang", f">{CASE_TIMEOUT_S}s"
                        except httpx.HTTPError as exc:
                            outcome = "crash" if server.process.poll() is not None else "failure"
                            detail = f"{type(exc).__name__}: {exc}"
                        report.add(surface, channel, outcome, detail, case)
                        if server.process.poll() is not None:  # dead: the rest cannot run
                            report.add(surface, channel, "crash", f"server exited {server.process.returncode}",
                                       case)
                            return
                    problem = _healthy(server, client)
                    rss = _net_rss(server, client, psutil)
                    if channel == "server-again":
                        report.rss.append(rss)
                    if problem or channel == "server-again" and rss > start_rss * (1 + RSS_GROWTH):
                        report.add("server", "health", "failure",
                                   problem or f"RSS {rss >> 20} MiB > {start_rss >> 20} MiB + 10%",
                                   {"pass": channel, "batch": i})
    finally:
        stop_server(server)


# --- the whole run -------------------------------------------------------------------------------------------------
def plan(corpus: dict[str, list[dict]], full: bool) -> list[dict]:
    """The driver's (child-process) items: every input through Python; the CLI for every input (full) or every
    third (fast)."""
    every = 1 if full else 3
    channels = {"session": ["python", "cli"], "schema": ["python", "cli"], "tools": ["python"],
                "onnx": ["python", "cli-info", "cli-run"]}
    items = []
    for surface, cases in corpus.items():
        for i, case in enumerate(cases):
            for channel in channels.get(surface, []):
                if channel != "python" and i % every:
                    continue
                items.append({"key": f"{surface}:{i}:{channel}", "surface": surface, "channel": channel,
                              "case": case})
    return items


def run_all(full: bool, onnx_dir: Path | None, work: Path | None = None, server: bool = True,
            children: bool = True) -> Report:
    """The corpus through the child processes (`children`) and the server (`server`)."""
    from tests.fuzz.corpus import corpus as make_corpus

    corpus = make_corpus(full)
    if onnx_dir is None:
        corpus.pop("onnx")
    report = Report()
    report.inputs.update({surface: len(cases) for surface, cases in corpus.items()})
    with tempfile.TemporaryDirectory(prefix="ondevice-fuzz-") as tmp:
        work = work or Path(tmp)
        if children:
            run_in_children(plan(corpus, full), work, onnx_dir, report)
        if server:
            run_server(corpus, report)
    return report


def main() -> None:
    """`python -m tests.fuzz [--full] [--server-only | --no-server] [--verbose]`"""
    full = "--full" in sys.argv
    server, children = "--no-server" not in sys.argv, "--server-only" not in sys.argv
    with tempfile.TemporaryDirectory(prefix="ondevice-fuzz-onnx-") as tmp:
        onnx_dir = None
        try:
            if not children:
                raise ImportError("not needed by the server")
            from quantize.onnx_export import export_onnx_llm
            from tests.tiny_models import make_tiny_hf

            hf = make_tiny_hf("llama", Path(tmp) / "hf")
            onnx_dir = export_onnx_llm(hf, Path(tmp) / "onnx", quant="fp32").path
        except ImportError as exc:
            print(f"(no ONNX surface: {exc})")
        started = time.monotonic()
        report = run_all(full, onnx_dir, server=server, children=children)
    print(report.table())
    print(f"{time.monotonic() - started:.0f} s")
    if "--verbose" in sys.argv:
        for result in report.results:
            print(" | ".join(result))
    for failure in report.failures:
        print(json.dumps(failure))
    sys.exit(1 if report.failures else 0)
