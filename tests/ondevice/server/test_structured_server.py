"""response_format and tools through the official openai client against the real server (SmolLM2, temperature 0)."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

MODEL = "smollm2-135m"
CITY = {"type": "object", "properties": {"city": {"enum": ["Paris", "Lyon", "Nice"]},
                                         "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
        "required": ["city", "zip"], "additionalProperties": False}
ASK = [{"role": "user", "content": "Name a French city and its zip code."}]
CALC = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {
        "expression": {"type": "string", "pattern": "^[0-9+*/(). -]{1,30}$"}}, "required": ["expression"]}}}


class City(BaseModel):
    city: str = Field(max_length=20)
    zip: str = Field(pattern="^[0-9]{5}$")


def test_json_schema_response_format_validates(client):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=40,
                                           response_format={"type": "json_schema", "json_schema": {
                                               "name": "city", "schema": CITY, "strict": True}})
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), CITY)


def test_json_object_response_format_is_an_object(client):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=60,
                                           response_format={"type": "json_object"})
    text = reply.choices[0].message.content
    assert text.startswith("{")
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)


def test_beta_parse_with_a_pydantic_class(client):
    completion = client.beta.chat.completions.parse(model=MODEL, messages=ASK, temperature=0, max_tokens=40,
                                                    response_format=City)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City) and len(parsed.zip) == 5


def test_unenforceable_schema_is_a_400_naming_the_keyword(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array", "uniqueItems": True}}})
    assert "uniqueItems" in str(err.value)
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, response_format={"type": "yaml"})


def test_tool_call_round_trip(client):
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is 17 * 23? Use the calculator."}]}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, tools=[CALC], tool_choice="required",
                                           temperature=0, max_tokens=40)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "calculator" and call.id
    jsonschema.validate(json.loads(call.function.arguments), CALC["function"]["parameters"])
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "391"}]
    answer = client.chat.completions.create(model=MODEL, messages=messages, tools=[CALC], temperature=0,
                                            max_tokens=24)
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.choices[0].message.content


def test_streamed_tool_call_deltas_rebuild_the_call(client):
    ask = [{"role": "user", "content": "What is 6 * 7? Use the calculator."}]
    plain = client.chat.completions.create(model=MODEL, messages=ask, tools=[CALC], tool_choice="required",
                                           temperature=0, max_tokens=48)
    stream = client.chat.completions.create(model=MODEL, messages=ask, tools=[CALC], tool_choice="required",
                                            temperature=0, max_tokens=48, stream=True)
    name, arguments, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                assert delta.index == 0
                name += delta.function.name or ""
                arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    expected = plain.choices[0].message.tool_calls[0].function
    assert finish == "tool_calls" and name == expected.name
    assert json.loads(arguments) == json.loads(expected.arguments)


def test_tool_errors_are_400s(client):
    with pytest.raises(openai.BadRequestError, match="answers no earlier assistant tool call"):
        client.chat.completions.create(model=MODEL, max_tokens=8, tools=[CALC], messages=[
            {"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "1"}])
    with pytest.raises(openai.BadRequestError, match="unknown tool 'nope'"):
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, tools=[CALC],
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(openai.BadRequestError, match="image_url"):
        client.chat.completions.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
