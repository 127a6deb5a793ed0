"""Tool calls: OpenAI-shaped tools in, the generic <tool_call> format to the model, OpenAI-shaped calls out.

The answers come from the real SmolLM2 with the grammar built from the tools' schemas; the conversation plumbing
(tool results, bad input) is checked without decoding."""

from __future__ import annotations

import json

import jsonschema
import pytest

from ondevice.errors import InvalidInput
from ondevice.decoding.tools import check_tools, parse_tool_calls, prepare_messages, tool_choice_mode

CALC = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression such as 2 * (3 + 4).",
    "parameters": {"type": "object", "properties": {
        "expression": {"type": "string", "pattern": "^[0-9+*/(). -]{1,40}$"}}, "required": ["expression"]}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}
TOOLS = [CALC, WEATHER]


def test_check_tools_names_the_bad_tool():
    assert [t.name for t in check_tools(TOOLS)] == ["calculator", "get_weather"]
    with pytest.raises(InvalidInput, match="two tools are named 'calculator'"):
        check_tools([CALC, CALC])
    with pytest.raises(InvalidInput, match=r"tools\[0\] must be"):
        check_tools([{"type": "retrieval"}])
    bad = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}}}
    with pytest.raises(InvalidInput, match="tool 'f'.*uniqueItems"):
        check_tools([bad])


def test_tool_choice_modes():
    tools = check_tools(TOOLS)
    assert tool_choice_mode(None, tools) == ("auto", tools)
    assert tool_choice_mode(None, []) == ("none", [])
    mode, chosen = tool_choice_mode({"type": "function", "function": {"name": "get_weather"}}, tools)
    assert mode == "required" and [t.name for t in chosen] == ["get_weather"]
    with pytest.raises(InvalidInput, match="unknown tool 'nope'"):
        tool_choice_mode({"type": "function", "function": {"name": "nope"}}, tools)
    with pytest.raises(InvalidInput, match="needs tools"):
        tool_choice_mode("required", [])
    with pytest.raises(InvalidInput, match="tool_choice must be"):
        tool_choice_mode("always", tools)


def test_tool_results_continue_the_conversation_in_the_generic_format():
    call = {"id": "call_1", "type": "function", "function": {"name": "calculator",
                                                             "arguments": '{"expression": "2+2"}'}}
    messages = prepare_messages([
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4"},
    ], check_tools(TOOLS))
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert '"name": "calculator"' in messages[0]["content"] and "<tool_call>" in messages[0]["content"]
    assert messages[1]["content"] == "What is 2+2?"  # checked once (ondevice.decoding.messages): text parts joined
    assert messages[2]["content"] == '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+2"}}\n' \
                                     '</tool_call>'
    assert messages[3]["content"] == '<tool_response>\n{"name": "calculator", "content": "4"}\n</tool_response>'


def test_tool_message_without_a_matching_call_is_refused():
    with pytest.raises(InvalidInput, match="tool_call_id 'call_9' answers no earlier assistant tool call"):
        prepare_messages([{"role": "user", "content": "hi"},
                          {"role": "tool", "tool_call_id": "call_9", "content": "4"}], check_tools(TOOLS))


def test_image_parts_are_refused(smollm2):
    with pytest.raises(InvalidInput, match="'image_url'"):
        smollm2.chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                     tools=TOOLS, max_tokens=4)


def test_parse_tool_calls_gives_openai_shape():
    content, calls = parse_tool_calls('<tool_call>\n{"name":"calculator","arguments":{"expression":"1+1"}}\n'
                                      '</tool_call>')
    assert content is None and len(calls) == 1
    shaped = calls[0].to_openai()
    assert shaped["type"] == "function" and shaped["id"].startswith("call_")
    assert shaped["function"]["name"] == "calculator"
    assert json.loads(shaped["function"]["arguments"]) == {"expression": "1+1"}
    assert parse_tool_calls("Paris.") == ("Paris.", [])


@pytest.mark.parametrize("question, tool_choice, name", [
    ("What is 17 * 23?", {"type": "function", "function": {"name": "calculator"}}, "calculator"),
    ("What is the weather in Oslo?", "required", None),
])
def test_chat_returns_tool_calls_whose_arguments_validate(smollm2, question, tool_choice, name):
    result = smollm2.chat([{"role": "user", "content": question}], tools=TOOLS, tool_choice=tool_choice,
                          max_tokens=48)
    assert result.finish_reason == "tool_calls"
    assert len(result.tool_calls) == 1  # parallel calls are off by default
    call = result.tool_calls[0]
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    assert call.name in by_name and (name is None or call.name == name)
    jsonschema.validate(call.args, by_name[call.name])


def test_tool_choice_none_never_calls(smollm2):
    result = smollm2.chat([{"role": "user", "content": "Call the calculator for 2+2."}], tools=TOOLS,
                          tool_choice="none", max_tokens=24)
    assert result.tool_calls == [] and not result.text.lstrip().startswith("<tool_call>")


def test_unknown_tool_in_history_is_refused(smollm2):
    call = {"id": "c1", "type": "function", "function": {"name": "launch_rocket", "arguments": "{}"}}
    with pytest.raises(InvalidInput, match="unknown tool 'launch_rocket'"):
        smollm2.chat([{"role": "user", "content": "go"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "c1", "content": "ok"}], tools=TOOLS, max_tokens=8)
