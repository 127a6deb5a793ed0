"""`ondevice serve MODEL --remote URL --route ...`: one endpoint for apps, routed per request."""

import pytest

from tests.ondevice.server.conftest import start_server, stop_server


@pytest.fixture(scope="module")
def routed(proxy_module):
    server = start_server("--remote", f"remote:smollm2-135m@{proxy_module.base_url}", "--route", "privacy,size")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def proxy_module(remote_server):
    from tests.ondevice.remote.fault_proxy import FaultProxy

    p = FaultProxy(remote_server.port)
    yield p
    p.close()


def test_private_request_stays_local_and_long_one_goes_remote(routed, proxy_module):
    client = routed.client()
    private = client.chat.completions.create(model="smollm2-135m", max_tokens=8, messages=[
        {"role": "user", "content": "Reply to jane.doe@example.com: I am late."}])
    assert private.model_extra["ondevice_route"]["routed_to"] == "local"
    long = client.chat.completions.create(model="smollm2-135m", max_tokens=4, messages=[
        {"role": "user", "content": "Repeat: " + "pear " * 600}])  # beyond the server's 512-token local context
    assert long.model_extra["ondevice_route"]["routed_to"] == "remote"
    assert "jane.doe@example.com" not in proxy_module.sent_text() and len(proxy_module.requests) == 1
    assert routed.health()["routing"]["remote"] == 1


def test_remote_cut_on_a_prompt_too_long_for_the_device_ends_in_a_clear_error(routed, proxy_module):
    import openai

    proxy_module.mode, proxy_module.cut_after = "cut", 3
    stream = routed.client().chat.completions.create(model="smollm2-135m", max_tokens=8, stream=True, messages=[
        {"role": "user", "content": "Repeat: " + "plum " * 600}])
    with pytest.raises(openai.APIError, match="mid-answer.*cannot answer instead"):
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    proxy_module.mode = "pass"
    assert routed.health()["status"] == "ok"  # the server is still serving


def test_bad_route_policy_is_one_line_exit_2():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ondevice", "serve", "smollm2-135m", "--remote",
                           "http://127.0.0.1:9/v1", "--route", "vibes"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown routing policy" in proc.stderr
