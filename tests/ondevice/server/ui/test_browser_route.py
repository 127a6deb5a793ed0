"""Local first, visibly: with `--remote`, the app shows who answered each reply and why (the reply's
`ondevice_route`). The "remote" is a second real `ondevice serve` on this machine."""

from __future__ import annotations

import pytest

from tests.ondevice.server.conftest import start_server, stop_server
from tests.ondevice.server.ui.conftest import App, screenshot


@pytest.fixture(scope="module")
def routed(browser):
    remote = start_server()
    try:
        local = start_server("--remote", f"remote:smollm2-135m@{remote.base_url}/v1", "--route", "privacy,size",
                             "--ctx", "128")
    except BaseException:
        stop_server(remote)
        raise
    yield local
    stop_server(local)
    stop_server(remote)


def ask(page, text: str, max_tokens: str) -> str:
    page.fill("#chat-max-tokens", max_tokens)
    before = page.locator("#chat-log .msg.assistant").count()
    page.fill("#chat-input", text)
    page.click("#chat-send")
    page.wait_for_function(f"() => document.querySelectorAll('#chat-log .msg.assistant').length > {before}")
    reply = page.locator("#chat-log .msg.assistant").last
    page.wait_for_function("() => !document.querySelector('#chat-log .msg.assistant[aria-busy]')")
    assert reply.locator(".route").count() == 1, reply.inner_text()
    return reply.locator(".route").inner_text()


def test_each_reply_says_who_answered_and_why(browser, routed):
    app = App(browser, routed.base_url)
    page = app.page
    assert "routes to remote:smollm2-135m@" in page.inner_text("#model-info")
    page.click("#chat-settings summary")
    page.uncheck("#chat-stream")  # the route comes with the whole reply
    page.fill("#chat-temperature", "0")
    too_big = ask(page, "Tell me about bread.", "150")  # 150 answer tokens do not fit the local 128
    assert too_big.startswith("answered by remote — size:") and "> local context 128" in too_big
    page.click("#chat-new")
    private = ask(page, "My email is alice.smith@example.com. Write me a one-line greeting.", "20")
    assert private.startswith("answered by local — privacy: found") and "stays on device" in private
    assert page.inner_text("#stat-tps").endswith("tok/s (whole request)")
    screenshot(page, "router")
    app.close()
