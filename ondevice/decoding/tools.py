"""Tool (function) calls in OpenAI's shape, on models whose chat template has no tool format of its own.

The generic format (documented in docs/structured-output.md) follows the widely trained Hermes style:

- the tools are listed in the system message, each as {"name", "description", "parameters"};
- the model calls a tool by answering exactly `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`;
- a tool's result comes back as `<tool_response>\\n{"name": ..., "content": ...}\\n</tool_response>` in a user turn.

The call is not trusted to the model: a grammar compiled from the tools' parameter schemas (`ondevice.decoding.structured`,
the same engine as `schema=`) constrains every token, so the name is one of the tools and the arguments validate.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from ondevice.errors import InvalidInput
from ondevice.decoding.messages import check_chat_messages, check_tool_choice, check_tool_list
from ondevice.decoding.schema_check import check_schema, isolated
from ondevice.decoding.structured import Grammar, check, json_in_lark

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_CALL = re.compile(re.escape(OPEN) + r"\n(.*?)\n" + re.escape(CLOSE), re.S)
# Free text that does not begin a tool call, nor parrot a tool result back (`<tool...`) (llguidance lexeme algebra: `&`
# intersection, `~` complement).
_TEXT = r'TEXT: /(?s:.+)/ & ~/(?s:<tool.*)/'


@dataclass(frozen=True)
class Tool:
    """One callable tool: its name, what it does, and the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict

    def spec(self) -> dict:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass
class ToolCall:
    """A call the model asked for: `arguments` is JSON text (as OpenAI sends it); `.args` parses it."""

    id: str
    name: str
    arguments: str

    @property
    def args(self) -> dict:
        return json.loads(self.arguments)

    def to_openai(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def check_tools(tools: Any) -> list[Tool]:
    """OpenAI-shaped tool definitions -> Tools; a malformed one, a duplicate name or an unenforceable parameter
    schema is an InvalidInput naming the tool (shapes: `ondevice.decoding.messages.check_tool_list`)."""
    checked: dict[str, Tool] = {}
    for i, function in enumerate(check_tool_list(tools)):
        name = function["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise InvalidInput(f"tools[{i}]: function name must be 1-64 letters, digits, '_', '.' or '-', "
                               f"got {name!r}")
        if name in checked:
            raise InvalidInput(f"tools[{i}]: two tools are named {name!r}")
        parameters = function["parameters"] or {"type": "object", "properties": {}}
        try:
            check_schema(parameters, "parameters schema")
            check(_call_grammar_source([Tool(name, "", parameters)]), "parameters schema")
        except InvalidInput as exc:
            raise InvalidInput(f"tool {name!r}: {exc}") from None
        checked[name] = Tool(name, function["description"], parameters)
    return list(checked.values())


def tool_choice_mode(tool_choice: Any, tools: list[Tool]) -> tuple[str, list[Tool]]:
    """("none" | "auto" | "required", the tools a call may name) for an OpenAI `tool_choice`."""
    choice = check_tool_choice(tool_choice)
    if choice is None:
        choice = "auto" if tools else "none"
    if not choice.startswith("function:"):
        if choice != "none" and not tools:
            raise InvalidInput(f"tool_choice={choice!r} needs tools")
        return choice, tools
    name = choice[len("function:"):]
    chosen = [t for t in tools if t.name == name]
    if not chosen:
        raise InvalidInput(f"tool_choice names unknown tool {name!r}; tools: "
                           f"{', '.join(t.name for t in tools) or '(none given)'}")
    return "required", chosen


def _call_grammar_source(tools: list[Tool]) -> str:
    return _lark(tools, "call")


def _lark(tools: list[Tool], start: str, parallel: bool = False, answer: str | None = None) -> str:
    schema = {"anyOf": [{"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                         "required": ["name", "arguments"], "additionalProperties": False} for t in tools]}
    from llguidance import LLMatcher

    calls = 'call ("\\n" call)*' if parallel else "call"
    lines = [f"start: {start}", f"calls: {calls}",
             f'call: "{OPEN}\\n" {json_in_lark(schema)} "\\n{CLOSE}"', _TEXT]
    if answer:
        lines.append(f"answer: {answer}")
    return isolated(LLMatcher.grammar_from_lark, "\n".join(lines))


def tool_grammar(mode: str, tools: list[Tool], parallel: bool = False, schema: dict | None = None) -> Grammar:
    """The grammar of an answer under `mode`: free text (or the `schema` answer) or tool calls, calls only, or
    text that never starts a tool call ("none")."""
    answer = json_in_lark(schema) if schema is not None else None
    text = "answer" if answer else "TEXT"
    start = {"none": text, "auto": f"{text} | calls", "required": "calls"}[mode]
    if not tools:  # "none" without tools: a grammar still needs a (never used) call rule
        tools = [Tool("_", "", {"type": "object"})]
    source = _lark(tools, start, parallel, answer)
    check(source, "tools grammar")
    return Grammar(source, "tool_calls", schema, call_open=f"{OPEN}\n")


def system_prompt(tools: list[Tool], parallel: bool = False) -> str:
    """The instructions that list the tools and the call format (added to the system message)."""
    listed = "\n".join(json.dumps(t.spec(), ensure_ascii=False) for t in tools)
    many = " You may make several calls, one <tool_call> block each." if parallel else ""
    return (f"You can call these tools:\n{listed}\n"
            f"To call a tool, answer with only:\n{OPEN}\n{{\"name\": <tool name>, \"arguments\": <JSON object>}}\n"
            f"{CLOSE}\n{many}The result comes back in a <tool_response> message; use it to answer the user.").replace(
        "\n\n", "\n")


def prepare_messages(messages: Sequence[dict], tools: list[Tool], parallel: bool = False, fmt=None) -> list[dict]:
    """OpenAI messages (assistant `tool_calls`, role "tool" results) -> plain role/content messages in the generic
    format, with the tools listed in the system message. A tool result must answer an earlier call, and a call in
    the history must name one of `tools` (when tools are given). Shapes are checked by
    `ondevice.decoding.messages.check_chat_messages`. `fmt`: a native `ondevice.decoding.tool_formats.ToolFormat` whose syntax the
    calls and instructions take instead (for a template that cannot render tools itself)."""
    calls: dict[str, str] = {}   # tool_call_id -> tool name, from earlier assistant messages
    known = {t.name for t in tools}
    out: list[dict] = []
    for i, message in enumerate(check_chat_messages(messages)):
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            blocks = [message["content"]] if message["content"] else []
            for call in message["tool_calls"]:
                if tools and call["name"] not in known:
                    raise InvalidInput(f"message {i}: tool call names unknown tool {call['name']!r}; tools: "
                                       f"{', '.join(sorted(known))}")
                calls[call["id"]] = call["name"]
                if fmt is None:
                    body = json.dumps({"name": call["name"], "arguments": call["arguments"]})
                    blocks.append(f"{OPEN}\n{body}\n{CLOSE}")
                else:
                    blocks.append(fmt.call_text([(call["name"], call["arguments"])]))
            out.append({"role": "assistant", "content": "\n".join(blocks)})
        elif role == "tool":
            call_id = message["tool_call_id"]
            if call_id not in calls:
                raise InvalidInput(f"message {i}: tool message with tool_call_id {call_id!r} answers no earlier "
                                   f"assistant tool call")
            block = (f"<tool_response>\n{json.dumps({'name': calls[call_id], 'content': message['content']})}\n"
                     f"</tool_response>")
            if out and out[-1].get("_tool_results"):  # several results of one turn: one user message
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        else:
            out.append({"role": role, "content": message["content"]})
    for message in out:
        message.pop("_tool_results", None)
    if tools:
        instructions = system_prompt(tools, parallel) if fmt is None else fmt.instructions(tools, parallel)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instructions}"}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out


@dataclass
class ChatPlan:
    """What `Model.chat` decodes for a request with a schema and/or tools: the messages to render, the grammar,
    and how to read the answer."""

    messages: list[dict]
    grammar: Grammar | None = None
    with_tools: bool = False
    tool_format: Any = None      # a native ondevice.decoding.tool_formats.ToolFormat; None: the generic format
    prompt: str | None = None    # the whole prompt, when the model's own template rendered the tools

    def finish(self, result):
        """Fill `result.tool_calls` (finish_reason "tool_calls" when there are some) and `result.parsed`."""
        if self.with_tools:
            content, calls = parse_tool_calls(result.text, self.tool_format)
            result.tool_calls = calls
            if calls:
                result.finish_reason = "tool_calls"
                return result
        if self.grammar is not None and self.grammar.schema is not None:
            result = self.grammar.finish(result)
        return result


def plan_chat(messages: Sequence[dict], schema: Any = None, tools: Sequence[dict] | None = None,
              tool_choice: Any = None, parallel_tool_calls: bool = False, backend=None) -> ChatPlan:
    """Check tools, tool_choice and schema, and turn the conversation into the tool format: the one the model's
    chat template is written for when `backend` (a loaded model's) has one (`ondevice.decoding.tool_formats`), else the
    generic format."""
    from ondevice.decoding.structured import schema_grammar

    checked = check_tools(tools)
    has_tool_turns = any(isinstance(m, dict) and (m.get("role") == "tool" or m.get("tool_calls")) for m in messages)
    # The backend knows its chat template's tool format (ondevice.decoding.tool_formats); None: the generic format.
    native = getattr(backend, "native_tool_chat", None)
    chat = native() if native is not None and (checked or has_tool_turns) else None
    fmt = chat.format if chat is not None else None
    if not checked and check_tool_choice(tool_choice) in (None, "none"):
        prepared = prepare_messages(messages, [], fmt=fmt)
        return ChatPlan(prepared, schema_grammar(schema) if schema is not None else None)
    mode, allowed = tool_choice_mode(tool_choice, checked)
    json_schema = schema_grammar(schema).schema if schema is not None else None
    grammar = tool_grammar(mode, allowed, parallel_tool_calls, json_schema) if fmt is None else \
        fmt.grammar(mode, allowed, parallel_tool_calls, json_schema, chat.token_ids)
    if json_schema is not None:
        grammar = dataclasses.replace(grammar, schema=json_schema,
                                      model_class=schema if isinstance(schema, type) else None)
    prepared = prepare_messages(messages, checked, parallel_tool_calls, fmt)
    prompt = chat.render_prompt(messages, checked) if chat is not None and chat.renders_tools() else None
    return ChatPlan(prepared, grammar, True, fmt, prompt)


def parse_tool_calls(text: str, fmt=None) -> tuple[str | None, list[ToolCall]]:
    """(content, calls) of a generated answer: calls when it is tool-call blocks, else the text as content.
    `fmt`: the native `ondevice.decoding.tool_formats.ToolFormat` the answer is in (None: the generic format)."""
    if fmt is not None:
        return fmt.parse(text)
    if not text.lstrip().startswith(OPEN):
        return text, []
    calls = []
    for body in _CALL.findall(text):
        value = json.loads(body)
        calls.append(ToolCall(f"call_{uuid.uuid4().hex[:24]}", value["name"],
                              json.dumps(value.get("arguments", {}), ensure_ascii=False)))
    if not calls:  # cut short by max_tokens inside the call: report the text as it is
        return text, []
    return None, calls
