"""`ondevice.Router`: who answers, and why, with a real remote server and injected faults."""

import pytest

import ondevice
from ondevice.errors import ContextOverflow, InvalidInput, RemoteUnavailable
from ondevice.routing.router import Router

PLAIN = [{"role": "system", "content": "Answer in one short sentence."},
         {"role": "user", "content": "What is the capital of France?"}]
SECRET = [{"role": "user", "content": "Email jane.doe@example.com my key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"}]


def router(smollm2, remote_model, policy="privacy,size", **kw) -> Router:
    return Router(smollm2, remote_model, policy=policy, **kw)


def test_plain_request_is_answered_locally_first(smollm2, remote_model, proxy):
    result = router(smollm2, remote_model).chat(PLAIN, max_tokens=16)
    assert result.routed_to == "local" and "Paris" in result.text
    assert proxy.requests == []


def test_sensitive_prompt_never_reaches_the_remote(smollm2, remote_model, proxy):
    r = router(smollm2, remote_model, policy="privacy,size,confidence", min_logprob=0.0)  # confidence always escalates
    long_secret = [{"role": "user", "content": SECRET[0]["content"] + " word" * 1500}]  # too big for local too
    result = r.chat(SECRET, max_tokens=8)
    assert result.routed_to == "local" and result.route_reason.startswith("privacy")
    with pytest.raises(ContextOverflow, match="sensitive"):
        r.chat(long_secret, max_tokens=8)
    sent = proxy.sent_text()
    assert "jane.doe@example.com" not in sent and "sk-proj-" not in sent and proxy.requests == []


def test_prompt_too_big_for_the_local_context_goes_remote(smollm2, remote_model, proxy):
    long = [{"role": "user", "content": "Repeat: " + "apple " * 1200}]
    result = router(smollm2, remote_model).chat(long, max_tokens=4)
    assert result.routed_to == "remote" and result.route_reason.startswith("size")
    assert len(proxy.requests) == 1


def test_low_confidence_local_answer_is_asked_of_the_remote(smollm2, remote_model, proxy):
    result = router(smollm2, remote_model, policy="confidence", min_logprob=0.0).chat(PLAIN, max_tokens=8)
    assert result.routed_to == "remote" and result.route_reason.startswith("confidence: mean log-prob")
    confident = router(smollm2, remote_model, policy="confidence", min_logprob=-50.0).chat(PLAIN, max_tokens=8)
    assert confident.routed_to == "local"


def test_mean_logprob_matches_a_direct_computation(smollm2, remote_model):
    import numpy as np

    r = router(smollm2, remote_model)
    prompt = smollm2.tokenize("The capital of France is")
    answer = smollm2.generate("The capital of France is", max_tokens=4).tokens
    logits = smollm2.logits(prompt + answer).astype(np.float64)
    expected = np.mean([logits[len(prompt) - 1 + i][t] - np.log(np.exp(logits[len(prompt) - 1 + i]).sum())
                        for i, t in enumerate(answer)])
    assert r.mean_logprob(prompt, answer) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("mode", ["500", "429", "slow"])
def test_failing_remote_gives_a_local_answer_marked_as_such(smollm2, impatient_remote, proxy, mode):
    remote_model = impatient_remote
    proxy.mode, proxy.slow_s = mode, 4.0
    long = [{"role": "user", "content": "Say hi. " + "x " * 1100}]
    with pytest.raises(RemoteUnavailable, match="cannot answer instead"):  # nor locally: a clear error, no hang
        router(smollm2, remote_model).chat(long, max_tokens=4)
    result = router(smollm2, remote_model, policy="confidence", min_logprob=0.0).chat(PLAIN, max_tokens=8)
    assert result.routed_to == "local" and result.route_reason.startswith("availability")
    assert result.text == smollm2.chat(PLAIN, max_tokens=8).text


@pytest.fixture(scope="module")
def tiny_context_local():
    """The real local model with a 64-token context, so the size policy sends a normal question remote."""
    with ondevice.load("smollm2-135m", n_ctx=64, threads=1) as model:
        yield model


def test_remote_cut_mid_stream_is_finished_locally(tiny_context_local, remote_model, proxy):
    proxy.mode, proxy.cut_after = "cut", 4
    stream = Router(tiny_context_local, remote_model, policy="size").chat(PLAIN, max_tokens=48, stream=True)
    text = "".join(stream)
    assert stream.result.routed_to == "local" and "mid-answer" in stream.result.route_reason
    assert text == stream.result.text and len(text) > 0
    assert len(proxy.requests) == 1  # the remote was tried once; the local model finished the answer


def test_remote_down_before_answering_streams_a_local_answer(tiny_context_local, smollm2):
    down = ondevice.load("remote:x@http://127.0.0.1:9/v1", timeout=1.0, max_retries=0)
    stream = Router(tiny_context_local, down, policy="size").chat(PLAIN, max_tokens=48, stream=True)
    text = "".join(stream)
    assert stream.result.routed_to == "local" and "before answering" in stream.result.route_reason
    assert text == stream.result.text


def test_unknown_policy_is_invalid_input(smollm2, remote_model):
    with pytest.raises(InvalidInput, match="unknown routing policy"):
        Router(smollm2, remote_model, policy="privacy,vibes")


def test_router_records_stats(smollm2, remote_model):
    r = router(smollm2, remote_model)
    r.chat(PLAIN, max_tokens=4)
    r.chat(SECRET, max_tokens=4)
    assert r.stats.local == 2 and r.stats.reasons == {"default": 1, "privacy": 1}


def test_router_is_exported():
    assert ondevice.Router is Router
