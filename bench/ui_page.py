"""Page weight and first paint of the web app (docs/ui.md), in the system's headless Chromium via Playwright.

    ondevice bench ui-page [--runs 5] [--chromium /usr/bin/chromium]

Starts `ondevice serve smollm2-135m` on a free loopback port, loads `/` in a fresh browser profile `--runs` times
(cold cache each time) and prints the bytes the page loaded (the document and every file it fetched, from the
Resource Timing API) and first paint / first contentful paint / DOMContentLoaded, as medians.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

MEASURE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const paint = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
  return { bytes: nav.encodedBodySize + res.reduce((s, r) => s + r.encodedBodySize, 0), files: 1 + res.length,
           fp: paint['first-paint'], fcp: paint['first-contentful-paint'], dcl: nav.domContentLoadedEventEnd };
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url: str, chromium: str, runs: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1100, "height": 720})
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            out.append(page.evaluate(MEASURE))
            context.close()
        browser.close()
    return out


@dataclass
class PageMetrics:
    """Bytes and requests of one load (uncompressed: the document, its files and /ui/api/info), and the median
    first paint, first contentful paint and DOMContentLoaded (ms) over the cold loads, with each load's FCP."""

    bytes: int
    files: int
    fp_ms: float
    fcp_ms: float
    dcl_ms: float
    fcp_each_ms: list[float]


def page_metrics(runs: int = 5, chromium: str | None = None) -> PageMetrics:
    """Start `ondevice serve smollm2-135m` on a free loopback port, load `/` `runs` times, stop the server."""
    from ondevice.errors import BackendUnavailable

    chromium = chromium or shutil.which("chromium") or "chromium"
    if shutil.which(chromium) is None:
        raise BackendUnavailable(f"no Chromium at {chromium!r}: install it (`make browser`) or give --chromium PATH")
    if importlib.util.find_spec("playwright") is None:
        raise BackendUnavailable("ui-page needs playwright (pip install 'ondevice-toolkit[test]')")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "ondevice", "serve", "smollm2-135m", "--port", str(port),
                               "--threads", "1", "--parallel", "1"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        rows = measure(f"http://127.0.0.1:{port}/", chromium, runs)
    finally:
        server.terminate()
        server.wait(timeout=30)
    med = {k: statistics.median(r[k] for r in rows) for k in ("fp", "fcp", "dcl")}
    return PageMetrics(rows[0]["bytes"], rows[0]["files"], med["fp"], med["fcp"], med["dcl"],
                       [r["fcp"] for r in rows])


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("ui-page")
