"""Malformed tool definitions, tool choices and messages (issue 23): each is one InvalidInput naming where it is,
from the one message checker (`ondevice.decoding.messages`) that `Model.chat`, the tools and the server all use."""

from __future__ import annotations

import pytest

from ondevice.errors import InvalidInput
from ondevice.decoding.messages import check_messages
from ondevice.decoding.tools import plan_chat

HI = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def call(function, id="c1"):
    return {"role": "assistant", "content": None, "tool_calls": [{"id": id, "type": "function", "function": function}]}


@pytest.mark.parametrize("tools, tool_choice, message", [
    (1, None, "tools must be a list, got int"),
    (True, None, "tools must be a list, got bool"),
    ("f", None, "tools must be a list, got str"),
    ({"type": "function"}, None, "tools must be a list, got dict"),
    ([5], None, r"tools\[0\] must be"),
    ([{"type": "function", "function": None}], None, r"tools\[0\] must be"),
    ([{"type": "function", "function": {"name": ["f"]}}], None, "function name must be"),
    ([{"type": "function", "function": {"name": "f", "parameters": "x"}}], None, "parameters must be a JSON Schema"),
    ([{"type": "function", "function": {"name": "f", "description": 5}}], None, "description must be a string"),
    ([TOOL], {"function": "f"}, "tool_choice.function must be an object"),
    ([TOOL], {"type": "function", "function": None}, "tool_choice.function must be an object"),
    ([TOOL], {"type": "function", "function": {"name": 5}}, "tool_choice.function must be an object"),
    ([TOOL], 5, "tool_choice must be"),
    ([TOOL], "sometimes", "tool_choice must be"),
    (None, {"function": "x"}, "tool_choice.function must be an object"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "string", "pattern": "a{99999}"}}}],
     None, "tool 'f': parameters schema pattern"),
])
def test_malformed_tools_and_tool_choice(tools, tool_choice, message):
    with pytest.raises(InvalidInput, match=message):
        plan_chat(HI, tools=tools, tool_choice=tool_choice)


@pytest.mark.parametrize("messages, message", [
    (HI + [call(None)], "'function' must be an object"),
    (HI + [call({"name": ["f"], "arguments": "{}"})], "function.name must be a string, got list"),
    (HI + [call({"name": "f", "arguments": {1, 2}})], "function.arguments must be a JSON object"),
    (HI + [call({"name": "f", "arguments": "{not json"})], "function.arguments is not JSON"),
    (HI + [call({"name": "f", "arguments": "[1]"})], "function.arguments must be a JSON object"),
    (HI + [call({"name": "f"}, id=None)], "'id' must be a non-empty string"),
    (HI + [{"role": "assistant", "content": "", "tool_calls": 5}], "tool_calls must be a list"),
    (HI + [call({"name": "f"}), {"role": "tool", "tool_call_id": ["c1"], "content": "4"}], "tool_call_id"),
    (HI + [{"role": "tool", "content": "4"}], "needs 'tool_call_id'"),
    (HI + [{"role": "user", "content": "hi", "tool_calls": [{}]}], "only assistant messages carry tool_calls"),
    ([{"role": "user", "content": "\ud800"}], "lone surrogate"),
    ([{"role": "user", "content": [{"type": "text", "text": "a\udfff"}]}], "lone surrogate"),
    ([{"role": "user", "content": 5}], "content must be a string or a list of text parts, got int"),
    ([{"role": "user", "content": None}], "got null"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "text only"),
    ([{"role": "wizard", "content": "x"}], "unknown role"),
    ("hello", "messages must be a list, got str"),
    ({"role": "user"}, "messages must be a list, got dict"),
    ([], "messages is empty"),
    ([5], "message 0 must be a dict"),
])
def test_malformed_messages(messages, message):
    with pytest.raises(InvalidInput, match=message):
        plan_chat(messages, tools=[TOOL])
    with pytest.raises(InvalidInput, match=message):
        plan_chat(messages)  # without tools too


def test_both_former_normalisers_now_agree():
    """model.check_messages and the tools' content reader were two functions that disagreed (None content, text
    parts): both are ondevice.decoding.messages now."""
    from ondevice import model

    assert model.check_messages is check_messages
    parts = [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert check_messages(parts) == [{"role": "system", "content": "ab"}]
    assert plan_chat(parts).messages == [{"role": "system", "content": "ab"}]


def test_a_valid_tool_conversation_is_normalised():
    messages = HI + [call({"name": "f", "arguments": {"x": 1}}),
                     {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "4"}]}]
    plan = plan_chat(messages, tools=[TOOL])
    assert [m["role"] for m in plan.messages] == ["system", "user", "assistant", "user"]
    assert '{"name": "f", "arguments": {"x": 1}}' in plan.messages[2]["content"]
    assert '"content": "4"' in plan.messages[3]["content"]
