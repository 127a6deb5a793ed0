"""The one checker of chat messages and tool definitions in OpenAI's shapes, used by every front end.

`check_messages` is what the backends take (role + content as one string); `check_chat_messages` keeps the tool
fields (`tool_calls`, `tool_call_id`) for `ondevice.decoding.tools`; `check_tool_list` / `check_tool_choice` check the shapes
of `tools` and `tool_choice`. Every malformed shape is an `InvalidInput` naming where it is (never a TypeError from
deeper down), and text that is not valid Unicode (a lone surrogate such as "\\ud800") is refused here, before a
tokenizer sees it.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ondevice.errors import InvalidInput

ROLES = ("system", "developer", "user", "assistant", "tool")
_NON_TEXT_PARTS = ("image_url", "image", "input_image", "input_audio", "file")


def check_text(value: Any, where: str) -> str:
    """`value` if it is a string of valid Unicode text, else InvalidInput naming `where`."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string, got {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{where} is not valid Unicode text (a lone surrogate at character {exc.start})") from None
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def content_text(content: Any, where: str, allow_none: bool = False) -> str:
    """OpenAI message content as one string: a string, or a list of text parts ([{"type": "text", "text": ...}],
    joined); None only where `allow_none` (an assistant turn that only called tools). Image or audio parts are
    refused by name."""
    if content is None and allow_none:
        return ""
    if isinstance(content, str):
        return check_text(content, f"{where} content")
    if isinstance(content, (list, tuple)):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(check_text(part["text"], f"{where} content part {j}"))
            elif kind in _NON_TEXT_PARTS:
                raise InvalidInput(f"{where}: content part {j} is {kind!r}; this runtime reads text only")
            else:
                raise InvalidInput(f"{where}: content part {j} must be {{'type': 'text', 'text': ...}}")
        return "".join(texts)
    raise InvalidInput(f"{where}: content must be a string or a list of text parts, got {_kind(content)}")


def _sequence(value: Any, what: str) -> Sequence:
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
        raise InvalidInput(f"{what} must be a list, got {_kind(value)}")
    return value


def _json_value(value: Any, where: str) -> Any:
    """`value` if it is JSON data (dicts with string keys, lists, strings, finite numbers, booleans, null)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"{where} is not JSON data: {exc}") from None
    return value


def _tool_call(call: Any, where: str) -> dict:
    """One assistant `tool_calls` entry -> {"id", "name", "arguments" (the parsed JSON object)}."""
    if not isinstance(call, dict):
        raise InvalidInput(f"{where} must be {{'id': ..., 'type': 'function', 'function': {{'name': ..., "
                           f"'arguments': ...}}}}, got {_kind(call)}")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidInput(f"{where}: 'id' must be a non-empty string, got {_kind(call_id)}")
    if call.get("type", "function") != "function":
        raise InvalidInput(f"{where}: type must be 'function', got {call.get('type')!r}")
    function = call.get("function")
    if not isinstance(function, dict):
        raise InvalidInput(f"{where}: 'function' must be an object with 'name' and 'arguments', got "
                           f"{_kind(function)}")
    name = check_text(function.get("name"), f"{where} function.name")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    elif isinstance(arguments, str):
        try:
            arguments = json.loads(check_text(arguments, f"{where} function.arguments"))
        except (json.JSONDecodeError, RecursionError):
            raise InvalidInput(f"{where}: function.arguments is not JSON: {arguments[:80]!r}") from None
    if not isinstance(arguments, dict):
        raise InvalidInput(f"{where}: function.arguments must be a JSON object (or its text), got "
                           f"{_kind(arguments)}")
    return {"id": call_id, "name": name, "arguments": _json_value(arguments, f"{where} function.arguments")}


def check_chat_messages(messages: Any) -> list[dict]:
    """OpenAI chat messages, checked and normalised: {"role", "content": str} plus, where present,
    "tool_calls": [{"id", "name", "arguments": dict}] (assistant) and "tool_call_id": str (tool). "developer" is
    OpenAI's newer name for "system"."""
    messages = _sequence(messages, "messages")
    if not messages:
        raise InvalidInput("messages is empty: give at least one {'role': ..., 'content': ...}")
    checked = []
    for i, message in enumerate(messages):
        where = f"message {i}"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidInput(f"{where} must be a dict with string 'role' and 'content'")
        role = message["role"]
        if role not in ROLES:
            raise InvalidInput(f"{where}: unknown role {role!r} (one of {', '.join(ROLES)})")
        tool_calls = message.get("tool_calls")
        out = {"role": "system" if role == "developer" else role,
               "content": content_text(message.get("content"), where,
                                       allow_none=role == "assistant" or role == "tool")}
        if tool_calls is not None and tool_calls != []:
            if role != "assistant":
                raise InvalidInput(f"{where}: only assistant messages carry tool_calls")
            out["tool_calls"] = [_tool_call(call, f"{where} tool_calls[{j}]")
                                 for j, call in enumerate(_sequence(tool_calls, f"{where} tool_calls"))]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidInput(f"{where}: a tool message needs 'tool_call_id' (a string: the id of the call it "
                                   f"answers), got {_kind(call_id)}")
            out["tool_call_id"] = call_id
        checked.append(out)
    return checked


def check_messages(messages: Any) -> list[dict]:
    """Chat messages as the backends take them: known roles, content as one string (text parts joined)."""
    return [{"role": m["role"], "content": m["content"]} for m in check_chat_messages(messages)]


def check_tool_list(tools: Any) -> list[dict]:
    """The shape of OpenAI `tools` (None or a list of {"type": "function", "function": {"name", "description",
    "parameters"}}) -> [{"name", "description", "parameters" (dict or None)}]; names and schemas are checked by
    `ondevice.decoding.tools.check_tools`."""
    if tools is None:
        return []
    out = []
    for i, tool in enumerate(_sequence(tools, "tools")):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise InvalidInput(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., "
                               f"'parameters': {{...}}}}}}")
        description = function.get("description")
        if description is not None:
            check_text(description, f"tools[{i}] function.description")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidInput(f"tools[{i}] function.parameters must be a JSON Schema object, got {_kind(parameters)}")
        out.append({"name": function.get("name"), "description": description or "", "parameters": parameters})
    return out


def check_tool_choice(tool_choice: Any) -> str | None:
    """The shape of OpenAI `tool_choice`: None, "none" / "auto" / "required", or {"type": "function",
    "function": {"name": ...}} -> the mode string, or the chosen tool's name (prefixed "function:")."""
    shape = "tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}"
    if tool_choice is None:
        return None
    if isinstance(tool_choice, str):
        if tool_choice not in ("none", "auto", "required"):
            raise InvalidInput(f"{shape}, got {tool_choice!r}")
        return tool_choice
    if not isinstance(tool_choice, dict):
        raise InvalidInput(f"{shape}, got {_kind(tool_choice)}")
    if tool_choice.get("type", "function") != "function":
        raise InvalidInput(f"{shape}, got type {tool_choice.get('type')!r}")
    function = tool_choice.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidInput(f"tool_choice.function must be an object with a 'name' (a string), got {_kind(function)}")
    return "function:" + check_text(function["name"], "tool_choice.function.name")

