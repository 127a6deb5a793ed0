"""Hostile request bodies (issue 23): each is an OpenAI-shaped 400 with a code, never a 5xx or a dead server.
Before: `tools: 1`, `tool_choice: {"function": "x"}`, a tool call with `function: null`, a lone surrogate, the
never-ending `$ref` and the `a{1000000}` pattern were 500s, and a 3,000-long `$ref` chain killed the server."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.ondevice.server.conftest import QUESTION

HI = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def chat(**fields) -> bytes:
    return json.dumps({"model": "smollm2-135m", "messages": HI, "max_tokens": 4, **fields}).encode()


def schema_format(schema) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


def ref_chain(n: int) -> dict:
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(n)}
    defs[f"d{n}"] = {"type": "integer"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


NEVER_ENDS = {"$defs": {"n": {"type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}, "required": ["x"]}},
              "$ref": "#/$defs/n"}

CASES = [
    ("malformed JSON", b'{"model": "smollm2-135m", "messages": [', "invalid_json"),
    ("empty body", b"", "invalid_json"),
    ("not UTF-8", b"\xff\xfe{}", "invalid_json"),
    ("deep JSON", b"[" * 100_000, "invalid_json"),
    ("a list body", b"[]", "invalid_type"),
    ("a number body", b"5", "invalid_type"),
    ("lone surrogate", b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "\\ud800"}]}',
     "invalid_value"),
    ("tools: 1", chat(tools=1), "invalid_value"),
    ("tools: true", chat(tools=True), "invalid_value"),
    ("tool_choice.function a string", chat(tools=[TOOL], tool_choice={"function": "x"}), "invalid_value"),
    ("tool_choice.function null", chat(tools=[TOOL], tool_choice={"type": "function", "function": None}),
     "invalid_value"),
    ("tool call function null", chat(messages=HI + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": None}]}]), "invalid_value"),
    ("tool call name a list", chat(messages=HI + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": ["f"], "arguments": "{}"}}]}]), "invalid_value"),
    ("tool_call_id a list", chat(messages=HI + [{"role": "tool", "tool_call_id": ["a"], "content": "1"}]), None),
    ("a{1000000}", chat(response_format=schema_format({"type": "string", "pattern": "^a{1000000}$"})),
     "invalid_value"),
    ("never-ending $ref", chat(response_format=schema_format(NEVER_ENDS)), "invalid_value"),
    ("never-ending $ref, streamed", chat(stream=True, response_format=schema_format(NEVER_ENDS)), "invalid_value"),
    ("3,000-long $ref chain", chat(response_format=schema_format(ref_chain(3000))), "invalid_value"),
    ("600-deep schema", chat(response_format=schema_format(json.loads('{"items": ' * 600 + "{}" + "}" * 600))),
     "invalid_value"),
]


@pytest.mark.parametrize("name, body, code", CASES, ids=[c[0] for c in CASES])
def test_hostile_bodies_are_400_with_a_code(server, name, body, code):
    response = httpx.post(server.base_url + "/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"}, timeout=120)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["code"] is not None and (code is None or error["code"] == code), error


def test_a_lone_surrogate_in_a_prompt_names_the_field(server):
    body = b'{"model": "smollm2-135m", "prompt": "ab\\udc00", "max_tokens": 2}'
    response = httpx.post(server.base_url + "/v1/completions", content=body,
                          headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"
    paired = b'{"model": "smollm2-135m", "prompt": "\\ud83d\\ude00 \\\\ud800", "max_tokens": 2}'  # a pair; text
    assert httpx.post(server.base_url + "/v1/completions", content=paired,
                      headers={"content-type": "application/json"}, timeout=60).status_code == 200


def test_the_server_still_answers_after_them(server, client):
    assert server.health()["status"] == "ok"
    answer = client.chat.completions.create(model="smollm2-135m", messages=QUESTION, max_tokens=12, temperature=0)
    assert "Paris" in answer.choices[0].message.content
