"""Routing benchmark: what a `Router` costs per request, and where a small mixed workload goes.

    ondevice bench routing [--local smollm2-135m] [--remote remote:MODEL@URL] [--json]

Without `--remote` it starts a second `ondevice serve` of the local model on a free loopback port and uses it as
the remote (a stand-in for a larger server: what is measured is the routing, not the remote's quality). The
workload mixes plain questions, prompts with sensitive data, prompts too long for the local context, and prompts
the local model is unsure of; each goes through `Router(local, remote, "privacy,size,confidence")`.

Overhead per request is the router's own time: the privacy scan, tokenising for the size check, and (with the
confidence policy) the one batched scoring pass over prompt + answer. It excludes the answers themselves.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import ondevice

WORKLOAD: list[tuple[str, str]] = [
    ("plain", "What is the capital of France?"),
    ("plain", "Give one tip for keeping basil healthy."),
    ("plain", "What does HTTP stand for?"),
    ("plain", "Name a primary colour."),
    ("sensitive", "Draft a reply to jane.doe@example.com saying I will be late."),
    ("sensitive", "My card 4111 1111 1111 1111 was charged twice; write a complaint."),
    ("sensitive", "Why does this fail: OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789?"),
    ("sensitive", "Call me on +1 415-555-2671 tomorrow, remind me in a note."),
    ("long", "Summarise these notes: " + "The meeting covered budgets, hiring and the roadmap. " * 120),
    ("long", "Translate to French: " + "The garden needs water every morning before work. " * 110),
    ("unsure", "Qzx vlorp? Answer with the exact seven-digit Brixton registry code of the 1873 wharf."),
    ("unsure", "What was the exact closing price of the obscure stock XQZT on 3 March 1911?"),
]
SYSTEM = "Answer in one short sentence."


@dataclass
class RoutingRow:
    kind: str
    routed_to: str
    reason: str
    overhead_ms: float      # the routing decision: privacy scan, tokenising, size check
    scoring_ms: float       # the confidence policy's scoring pass (0 when it did not run)
    decisions: list[str] = field(default_factory=list)


@dataclass
class RoutingReport:
    local: str
    remote: str
    policy: str
    min_logprob: float
    rows: list[RoutingRow] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            out.setdefault(row.kind, {"local": 0, "remote": 0})[row.routed_to] += 1
        return out

    def overhead(self) -> dict[str, float]:
        decide = [r.overhead_ms for r in self.rows]
        scoring = [r.scoring_ms for r in self.rows if r.scoring_ms > 0]
        return {"decision_median_ms": round(statistics.median(decide), 2), "decision_max_ms": round(max(decide), 2),
                "scoring_median_ms": round(statistics.median(scoring), 2) if scoring else 0.0,
                "scored_requests": len(scoring)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_stand_in(model: str, threads: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ondevice", "serve", model, "--port", str(port), "--ctx", "4096",
                             "--threads", str(threads), "--embed-model", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc, f"remote:{model}@http://127.0.0.1:{port}/v1"
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the stand-in remote server did not start")


def run(local_name: str, remote_spec: str | None, threads: int, min_logprob: float,
        policy: str = "privacy,size,confidence") -> RoutingReport:
    proc = None
    if remote_spec is None:
        proc, remote_spec = _start_stand_in(local_name, threads)
    try:
        with ondevice.load(local_name, n_ctx=1024, threads=threads) as local, \
                ondevice.load(remote_spec, timeout=120) as remote:
            router = ondevice.Router(local, remote, policy=policy, min_logprob=min_logprob)
            report = RoutingReport(local_name, remote_spec, policy, min_logprob)
            for kind, prompt in WORKLOAD:
                router.chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                            max_tokens=24)
                last = router.last_result
                report.rows.append(RoutingRow(kind, last.routed_to, last.route_reason,
                                              round(router.stats.overhead_ms[-1], 2),
                                              round(router.stats.scoring_ms[-1], 2), list(last.decisions)))
            return report
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("routing")
