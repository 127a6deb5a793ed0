"""Every bad input gets OpenAI's error shape and the right status; none of them hurts the server."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.ondevice.server.conftest import API_KEY, EMBED_MODEL, N_CTX, QUESTION

HELLO = [{"role": "user", "content": "Hello"}]
COUNTING = "Counting: 1, 2, 3, 4, 5, 6, 7,"  # a completion that goes on until max_tokens


def post(server, path: str, headers: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.post(server.base_url + path, headers=headers, timeout=60, **kwargs)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json_is_400_invalid_json(server):
    response = post(server, "/v1/chat/completions", content=b'{"model": "smollm2-135m", "messages": [',
                    headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize("field, value", [("max_tokens", "many"), ("temperature", "hot"), ("messages", "hi"),
                                          ("stream", {"a": 1}), ("stop", 5), ("seed", 1.5)])
def test_wrong_types_are_400_naming_the_field(server, field, value):
    body = {"model": "smollm2-135m", "messages": HELLO, field: value}
    response = post(server, "/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"].split(".")[0] == field
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("field, value", [("temperature", 3), ("top_p", 1.5), ("max_tokens", 0), ("n", 0)])
def test_out_of_range_values_are_400(client, field, value):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm2-135m", messages=HELLO, **{field: value})
    assert err.value.body["param"] == field


def test_missing_model_field_is_400(server):
    response = post(server, "/v1/chat/completions", json={"messages": HELLO})
    assert response.status_code == 400
    assert error_of(response) == {**error_of(response), "param": "model", "code": "missing_required_parameter"}


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-4o", input="hi")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_empty_messages_and_empty_prompt_are_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm2-135m", messages=[])
    assert err.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError, match="prompt is empty"):
        client.completions.create(model="smollm2-135m", prompt="", max_tokens=4)


def test_unknown_role_is_400(server):
    response = post(server, "/v1/chat/completions",
                    json={"model": "smollm2-135m", "messages": [{"role": "wizard", "content": "hi"}]})
    assert response.status_code == 400
    assert error_of(response)["param"].startswith("messages.0.role")


def test_prompt_over_the_context_is_400_context_length_exceeded(client):
    long_text = "word " * (N_CTX * 2)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": long_text}])
    assert err.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:  # streamed: still a status, not a broken stream
        client.completions.create(model="smollm2-135m", prompt=long_text, stream=True)
    assert err.value.body["code"] == "context_length_exceeded"


def test_unsupported_n_and_logprobs_are_clear_400s(client):  # tools: tests/ondevice/server/test_structured_server.py
    for extra, param in [({"n": 2}, "n"), ({"logprobs": True}, "logprobs")]:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="smollm2-135m", messages=HELLO, **extra)
        assert err.value.body["param"] == param
        assert err.value.body["code"] == "unsupported_parameter"


def test_bad_embedding_inputs_are_400(client):
    for bad in ([], [""], [[1, 2, 3]]):
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model=EMBED_MODEL, input=bad)


def test_body_over_the_limit_is_413_by_length_or_by_counting(server):
    big = b'{"model": "smollm2-135m", "prompt": "' + b"x" * (2 << 20) + b'"}'
    response = post(server, "/v1/completions", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the server must count
        for start in range(0, len(big), 64 << 10):
            yield big[start:start + (64 << 10)]

    response = post(server, "/v1/completions", content=chunked(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_route_is_404_in_the_openai_shape(server):
    response = httpx.get(server.base_url + "/v1/nothing-here", timeout=10)
    assert response.status_code == 404
    error_of(response)


def test_missing_or_wrong_api_key_is_401_and_the_right_one_works(keyed_server):
    url = keyed_server.base_url
    assert httpx.get(url + "/v1/models", timeout=10).status_code == 401
    wrong = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert error_of(wrong)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    # checked before the body is even parsed: a malformed body without a key is still a 401
    assert post(keyed_server, "/v1/chat/completions", content=b"{").status_code == 401
    assert httpx.get(url + "/health", timeout=10).status_code == 200  # liveness needs no key
    reply = keyed_server.client().chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0,
                                                          max_tokens=24)
    assert "Paris" in reply.choices[0].message.content


def test_full_queue_is_429_with_retry_after(keyed_server):
    """max_queue 0: while one request runs, the next is refused at once; after it, requests are served again."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": "smollm2-135m", "prompt": COUNTING, "max_tokens": 400, "stream": True}
    with httpx.stream("POST", keyed_server.base_url + "/v1/completions", json=body, headers=headers,
                      timeout=60) as running:
        lines = running.iter_lines()  # keep it: a dropped line iterator closes the response (a disconnect)
        assert running.status_code == 200
        assert next(lines).startswith("data: ")  # the first token: the model is busy with this request
        refused = post(keyed_server, "/v1/chat/completions", headers=headers,
                       json={"model": "smollm2-135m", "messages": HELLO, "max_tokens": 2})
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert error_of(refused)["code"] == "queue_full"
    keyed_server.wait_idle()
    again = post(keyed_server, "/v1/chat/completions", headers=headers,
                 json={"model": "smollm2-135m", "messages": HELLO, "max_tokens": 2})
    assert again.status_code == 200
    assert keyed_server.health()["stats"]["rejected"] >= 1


def test_cors_is_off_by_default(server):
    preflight = httpx.options(server.base_url + "/v1/chat/completions", timeout=10, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    response = httpx.get(server.base_url + "/v1/models", headers={"Origin": "http://evil.example"}, timeout=10)
    assert "access-control-allow-origin" not in response.headers


def test_server_is_still_healthy_after_all_bad_input(server):
    assert server.process.poll() is None
    assert server.health()["status"] == "ok"
