"""`ondevice.load("remote:MODEL@URL")`: the same Model API over a real OpenAI-compatible server, errors mapped."""

import pytest

import ondevice
from ondevice.errors import InvalidInput, RemoteUnavailable

QUESTION = [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"}]


def test_remote_chat_gives_the_same_greedy_answer_as_the_local_model(remote_model, smollm2):
    remote = remote_model.chat(QUESTION, max_tokens=24)
    local = smollm2.chat(QUESTION, max_tokens=24)
    assert remote.text == local.text
    assert "Paris" in remote.text


def test_remote_completion_streams_pieces_and_finishes(remote_model):
    stream = remote_model.generate("The capital of France is", max_tokens=8, stream=True)
    pieces = list(stream)
    assert len(pieces) >= 2
    assert stream.result.text == "".join(pieces)
    assert stream.result.finish_reason == "length"


def test_request_reaches_the_server_with_our_sampling(remote_model, proxy):
    remote_model.chat(QUESTION, max_tokens=5, temperature=0.0, seed=7)
    sent = proxy.requests[-1]
    assert sent["max_tokens"] == 5 and sent["seed"] == 7 and sent["messages"][-1]["content"] == QUESTION[-1]["content"]


@pytest.mark.parametrize("mode", ["500", "429"])
def test_failing_server_is_remote_unavailable_after_retries(remote_model, proxy, mode):
    proxy.mode = mode
    with pytest.raises(RemoteUnavailable, match=mode):
        remote_model.chat(QUESTION, max_tokens=5)
    assert len(proxy.requests) == 2  # the first try and one retry (max_retries=1)


def test_slow_server_times_out(impatient_remote, proxy):
    proxy.mode, proxy.slow_s = "slow", 4.0
    with pytest.raises(RemoteUnavailable, match="timed out"):
        impatient_remote.chat(QUESTION, max_tokens=5)


def test_stream_cut_mid_answer_is_remote_unavailable(remote_model, proxy):
    proxy.mode, proxy.cut_after = "cut", 3
    stream = remote_model.chat(QUESTION, max_tokens=40, stream=True)
    with pytest.raises(RemoteUnavailable, match="mid-answer"):
        list(stream)


def test_unreachable_server_is_one_clear_error():
    model = ondevice.load("remote:x@http://127.0.0.1:9/v1", timeout=1.0, max_retries=0)
    with pytest.raises(RemoteUnavailable, match="cannot connect"):
        model.generate("hi", max_tokens=2)


def test_unknown_model_on_the_server_is_invalid_input(proxy):
    model = ondevice.load(f"remote:no-such-model@{proxy.base_url}", max_retries=0)
    with pytest.raises(InvalidInput, match="not found"):
        model.chat(QUESTION, max_tokens=2)


@pytest.mark.parametrize("spec", ["remote:", "remote:model", "remote:@http://x", "remote:m@ftp://x"])
def test_bad_remote_spec_is_invalid_input(spec):
    with pytest.raises(InvalidInput):
        ondevice.load(spec)


def test_cli_names_an_unreachable_remote_in_one_line():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ondevice", "run", "remote:x@http://127.0.0.1:9/v1", "hi"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "cannot connect" in proc.stderr


def test_bare_url_asks_the_server_for_its_model(proxy, remote_model):
    model = ondevice.load(f"remote:{proxy.base_url}", max_retries=0)
    assert model.chat(QUESTION, max_tokens=24).text == remote_model.chat(QUESTION, max_tokens=24).text
    assert proxy.requests[-1]["model"] == "smollm2-135m"
