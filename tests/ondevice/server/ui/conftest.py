"""The web app's tests: one real `ondevice serve smollm2-135m` with an API key, the example notes to index, and a
real headless Chromium (Debian's `chromium`, installed by `make browser`) driven by Playwright.

Every browser test fails on any console error or uncaught exception in the page (the `page` fixture checks after
the test). Screenshots go to docs/ui/ (the docs show them).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.ondevice.server.conftest import API_KEY, start_server, stop_server

ROOT = Path(__file__).resolve().parents[4]
SHOTS = ROOT / "docs" / "ui"
NOTES = ROOT / "examples" / "sample_notes"
VIEWPORT = {"width": 1100, "height": 720}
TIMEOUT_MS = 120_000  # answers on a busy 2-core machine; a page that never answers fails here


def chromium_path() -> str | None:
    return os.environ.get("ONDEVICE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _targets_plugin_path(tmp_path) -> str | None:
    """A .dist-info declaring bench's device-target panel, when the installed metadata predates it (a venv
    installed before pyproject.toml gained the entry point; `make install` refreshes it). None when present."""
    if "bench" in {ep.name for ep in importlib.metadata.entry_points(group="ondevice.device_targets")}:
        return None
    info = tmp_path / "ondevice_ui_targets-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ondevice-ui-targets\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[ondevice.device_targets]\nbench = bench.ui_targets:device_targets\n")
    return str(tmp_path)


@pytest.fixture(scope="session")
def notes_folder(tmp_path_factory) -> Path:
    """A copy of examples/sample_notes (the app indexes it; the original is never touched)."""
    folder = tmp_path_factory.mktemp("ui-notes") / "notes"
    shutil.copytree(NOTES, folder)
    return folder


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory, notes_folder):
    extra = _targets_plugin_path(tmp_path_factory.mktemp("ui-plugin"))
    old = os.environ.get("PYTHONPATH")
    if extra:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (old, extra) if p)
    try:
        # --ctx 1024 (after the suite's 512): room for a cited source, the question and the answer
        # run beside the notes: the answer prompt names sources by their path relative to the working folder, so it
        # reads the same on every run (not /tmp/pytest-of-.../pytest-N/...), and so does the answer at temperature 0
        server = start_server("--max-queue", "8", "--ctx", "1024", api_key=API_KEY, cwd=notes_folder.parent)
    finally:
        if extra:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def browser():
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (pip install 'ondevice-toolkit[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on this machine: `make browser` installs Debian's chromium (needs apt)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI and these machines run as root, where Chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class App:
    """A fresh browser profile on the app at `base_url` (logged in with `key` the way `ondevice ui` does:
    /?key=...), collecting every console error and page exception."""

    def __init__(self, browser, base_url: str, key: str | None = None):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.goto(f"{base_url}/" + (f"?key={key}" if key else ""))
        self.page.wait_for_selector("body[data-ready='1']")

    def close(self) -> None:
        self.context.close()
        assert not self.errors, "browser console errors:\n" + "\n".join(self.errors)


@pytest.fixture
def page(browser, ui_server):
    """The app on `ui_server`; the test fails on any browser console error."""
    app = App(browser, ui_server.base_url, API_KEY)
    yield app.page
    app.close()


def screenshot(page, name: str, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    try:  # keep the committed PNGs small: a 256-colour palette is plenty for a flat UI (about a third the bytes)
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
