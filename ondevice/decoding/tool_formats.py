"""Native tool-call formats: each model family calls tools the way its chat template taught it.

A format knows four things (docs/structured-output.md has the table):

- how to recognise itself in a chat template's text (`detect`);
- how tools, earlier calls and tool results reach the prompt: through the model's own template with `tools=` when
  the template reads them (`render_prompt`), else as text in the conversation (`instructions`, `call_text`);
- the grammar of an answer (`grammar`): free text that can never start a call, or calls whose name is one of the
  tools and whose arguments validate against that tool's schema;
- how to read the answer back into OpenAI-shaped calls (`parse`), also while it streams (`may_be_call`).

The call's opening marker is often a special token (`[TOOL_CALLS]`, `<|python_tag|>`, `<|tool_call|>`): the
grammar then asks for that token by id, the way the model was trained, and the parser does not rely on seeing it,
since a control token decodes to no text. The call's JSON itself starts a recognisable way (`{"name":` or
`[{"name":`), and free text is forbidden to start that way, so text and calls never mix up.

The generic format (`ondevice.decoding.tools`) stays for models whose template has no tool format; a user names another
with `RuntimeOptions.tool_format` (`ondevice.load(..., tool_format="llama3")`, `ondevice serve --tool-format`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from ondevice.errors import InvalidInput, OnDeviceError


@dataclass(frozen=True)
class ToolFormat:
    """One family's tool-call syntax.

    A call is `marker + before + JSON + after + close`; the JSON is `{"name": ..., <args_key>: {...}}`, or a list
    of those when `as_list`. Several calls are blocks joined by `joiner`, or one list.
    """

    name: str
    families: str
    marker: str = ""
    close: str = ""
    before: str = ""
    after: str = ""
    as_list: bool = False
    args_key: str = "arguments"
    single: bool = False            # the format has room for one call per answer
    marker_optional: bool = False   # a call may also be the bare JSON (Llama 3.x writes <|python_tag|> or not)
    signature: tuple[str, ...] = ()  # all of these in a template's text mark the format ...
    shape: str = ""                  # ... with a call's JSON shape (a regex) where the markers alone are ambiguous
    excludes: tuple[str, ...] = ()   # ... and none of these (a later syntax of the same family)
    joiner: str = "\n"
    result_role: str = "tool"
    forbid: str = ""                # what free text may not begin with (default: the marker)

    # --- text ---------------------------------------------------------------------------------------------------
    @property
    def body_start(self) -> str:
        """How the call's compact JSON begins (free text may not begin this way)."""
        return ('[{"name":' if self.as_list else '{"name":')

    @property
    def markers(self) -> tuple[str, ...]:
        """The format's fixed markers (often special tokens of the family's vocabulary)."""
        return tuple(m.strip() for m in (self.marker, self.close) if m.strip())

    def call_json(self, name: str, arguments: Any) -> dict:
        return {"name": name, self.args_key: arguments}

    def call_text(self, calls: Sequence[tuple[str, Any]]) -> str:
        """The answer that makes `calls` ((name, arguments) pairs), as the model writes it."""
        if self.as_list:
            body = json.dumps([self.call_json(n, a) for n, a in calls], ensure_ascii=False)
            return f"{self.marker}{self.before}{body}{self.after}{self.close}"
        return self.joiner.join(f"{self.marker}{self.before}{json.dumps(self.call_json(n, a), ensure_ascii=False)}"
                                f"{self.after}{self.close}" for n, a in calls)

    def instructions(self, tools, parallel: bool = False) -> str:
        """Tool instructions in our own words for a template that cannot list tools itself."""
        listed = "\n".join(json.dumps(t.spec(), ensure_ascii=False) for t in tools)
        example = self.call_text([("<tool name>", "<JSON object>")]).replace('"<tool name>"', "<tool name>") \
            .replace('"<JSON object>"', "<JSON object>")
        many = " You may make several calls at once." if parallel and not self.single else ""
        return (f"You can call these tools:\n{listed}\nTo call a tool, answer with only:\n{example}\n{many}"
                f"The result comes back in a <tool_response> message; use it to answer the user.").replace("\n\n", "\n")

    # --- detection ----------------------------------------------------------------------------------------------
    def detect(self, template: str) -> bool:
        """True when `template` (a chat template's text) is written for this format: all its markers, the call's
        JSON shape where one is given, and none of the XML-style call syntaxes (`<function=...>`,
        `<arg_key>`, `<parameter=...>`) that other families put inside the same markers."""
        return bool(self.signature) and all(s in template for s in self.signature) \
            and (not self.shape or re.search(self.shape, template) is not None) \
            and not any(x in template for x in _XML_CALLS + self.excludes)

    def may_be_call(self, text: str) -> bool:
        """Whether streamed `text` is, or may still become, a call (so it must be held back)."""
        s = text.lstrip()
        starts = [p for p in (self.marker.strip(), self.body_start) if p]
        return any(s.startswith(p) or p.startswith(s) for p in starts)

    # --- parsing ------------------------------------------------------------------------------------------------
    def parse(self, text: str) -> tuple[str | None, list]:
        """(content, calls) of an answer: calls when it is this format's calls, else the text as content (also
        when max_tokens cut a call short: the text is reported as it is)."""
        from ondevice.decoding.tools import ToolCall

        decoder, s, pos, found = json.JSONDecoder(), text, 0, []

        def skip(p: int) -> int:
            while p < len(s) and s[p].isspace():
                p += 1
            return p

        while True:
            pos = skip(pos)
            if self.marker and s.startswith(self.marker.strip(), pos):
                pos = skip(pos + len(self.marker.strip()))
            elif not found and not s.startswith(self.body_start, pos):
                return text, []
            elif found and pos >= len(s):
                break
            try:
                value, pos = decoder.raw_decode(s, pos)
            except json.JSONDecodeError:
                return text, []
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in values):
                return text, []
            found.extend(values)
            pos = skip(pos)
            if self.close and s.startswith(self.close.strip(), pos):
                pos += len(self.close.strip())
            if skip(pos) >= len(s):
                break
        calls = [ToolCall(f"call_{uuid.uuid4().hex[:24]}", v["name"],
                          json.dumps(v.get(self.args_key, v.get("arguments", {})), ensure_ascii=False))
                 for v in found]
        return None, calls

    # --- grammar ------------------------------------------------------------------------------------------------
    def grammar(self, mode: str, tools, parallel: bool = False, schema: dict | None = None,
                token_ids: dict[str, int] | None = None):
        """The llguidance grammar of an answer under `mode` ("none", "auto", "required"): free text (or the
        `schema` answer), or calls. `token_ids` maps a marker to its token id where the vocabulary has it as one
        token: the grammar then asks for that token (as the model was trained), not its spelling."""
        from ondevice.decoding.structured import Grammar, check
        from ondevice.decoding.tools import Tool

        if not tools:  # "none" without tools: a grammar still needs a (never used) call rule
            tools = [Tool("_", "", {"type": "object"})]
        # Validate with every marker spelled out (a token id cannot be checked without a tokenizer), then build
        # the grammar that names the tokens.
        check(self._lark(mode, tools, parallel, schema, {}), "tools grammar")
        source = self._lark(mode, tools, parallel, schema, token_ids or {})
        return Grammar(source, "tool_calls", schema)

    def _lark(self, mode, tools, parallel, schema, token_ids) -> str:
        from ondevice.decoding.structured import json_in_lark

        def lit(text: str) -> str:
            if not text:
                return ""
            if text.strip() in token_ids:  # the marker is one token: ask for it (keeping any spacing around it)
                lead, trail = text[:len(text) - len(text.lstrip())], text[len(text.rstrip()):]
                parts = [json.dumps(lead) if lead else "", f"<[{token_ids[text.strip()]}]>",
                         json.dumps(trail) if trail else ""]
                return " ".join(p for p in parts if p)
            return json.dumps(text)

        one = {"anyOf": [{"type": "object", "properties": {"name": {"const": t.name}, self.args_key: t.parameters},
                          "required": ["name", self.args_key], "additionalProperties": False} for t in tools]}
        many = parallel and not self.single
        marker = lit(self.marker)
        if marker and self.marker_optional:
            marker = f"({marker})?"
        wrap = " ".join(p for p in (marker, lit(self.before), "BODY", lit(self.after), lit(self.close)) if p)
        lines = [f"obj: {json_in_lark(one)}"]
        if self.as_list:
            lines += ['body: "[" obj ("," obj)* "]"' if many else 'body: "[" obj "]"',
                      "calls: " + wrap.replace("BODY", "body")]
        else:
            lines += ["call: " + wrap.replace("BODY", "obj"),
                      f"calls: call ({json.dumps(self.joiner)} call)*" if many else "calls: call"]
        # Free text never begins a call: not the marker (spelled out), nor the call's JSON.
        starts = "|".join(re.escape(p) for p in sorted({self.forbid or self.marker.strip() or self.body_start,
                                                         self.body_start}))
        lines.append(f"TEXT: /(?s:.+)/ & ~/(?s:\\s*({starts}).*)/")
        return _compile(lines, mode, schema)

    # --- prompt -------------------------------------------------------------------------------------------------
    def template_messages(self, messages: Sequence[dict], tools, template: str) -> list[dict]:
        """OpenAI messages -> the shape chat templates read (HF convention): assistant `tool_calls` with
        `arguments` as objects, tool results with `tool_call_id` and `name`. A template that does not read
        `tool_calls` gets the calls as the assistant's text, in this format."""
        from ondevice.decoding.messages import content_text

        reads_calls = "tool_calls" in template
        names: dict[str, str] = {}
        out = []
        for i, message in enumerate(messages):
            role = message.get("role")
            if role == "assistant" and message.get("tool_calls"):
                text = content_text(message.get("content"), f"message {i}", allow_none=True)
                calls = []
                for call in message["tool_calls"]:
                    function = call["function"]
                    arguments = function.get("arguments") or "{}"
                    arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
                    names[call["id"]] = function["name"]
                    calls.append({"id": self.call_id(call["id"]), "type": "function",
                                  "function": {"name": function["name"], "arguments": arguments}})
                if reads_calls:
                    out.append({"role": "assistant", "content": text, "tool_calls": calls})
                else:
                    native = self.call_text([(c["function"]["name"], c["function"]["arguments"]) for c in calls])
                    out.append({"role": "assistant", "content": f"{text}{native}"})
            elif role == "tool":
                out.append({"role": self.result_role, "tool_call_id": self.call_id(message.get("tool_call_id")),
                            "name": names.get(message.get("tool_call_id"), ""),
                            "content": content_text(message.get("content"), f"message {i}", allow_none=True)})
            else:
                out.append({"role": "system" if role == "developer" else role,
                            "content": content_text(message.get("content"), f"message {i}", allow_none=True)})
        return out

    def call_id(self, call_id: Any) -> Any:
        return call_id

    def template_tools(self, tools) -> list[dict]:
        """The tools as the template's `tools` variable (OpenAI shape, as HF `apply_chat_template` takes them)."""
        return [{"type": "function", "function": t.spec()} for t in tools]

    def render_prompt(self, template: str, messages: Sequence[dict], tools, bos: str = "", eos: str = "") -> str:
        """The whole prompt, through the model's own template with `tools=`."""
        from ondevice.models import chat_template
        return chat_template.render(template, self.template_messages(messages, tools, template), bos, eos,
                                    tools=self.template_tools(tools))


class _Mistral(ToolFormat):
    def call_id(self, call_id: Any) -> Any:
        # Mistral's templates refuse ids that are not 9 letters or digits: map ours (call_...) onto such ids, the
        # same way each time so a call and its result still match.
        if not isinstance(call_id, str) or re.fullmatch(r"[A-Za-z0-9]{9}", call_id):
            return call_id
        return hashlib.sha256(call_id.encode()).hexdigest()[:9]


class _Phi4(ToolFormat):
    def template_messages(self, messages, tools, template):
        # Phi-4-mini's template reads the tools from the system message's "tools" field (a JSON string).
        out = super().template_messages(messages, tools, template)
        specs = json.dumps([t.spec() for t in tools], ensure_ascii=False)
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "tools": specs}
        else:
            out.insert(0, {"role": "system", "content": "", "tools": specs})
        return out


_XML_CALLS = ("<function=", "<arg_key>", "<parameter=")
_NAME_KEY = r'\\?"name\\?":'  # "name": in the template's own example or call rendering (escaped or not)

class _MistralArgs(_Mistral):
    """Mistral's later syntax (tokenizer v11 on: Ministral 3, Mistral Small 3.2, Devstral): each call is
    `[TOOL_CALLS]name[ARGS]{...}`, the arguments alone as JSON. Without its markers (control tokens decode to no
    text) a call reads `name{...}`: free text may not begin with a name directly followed by `{` or `[ARGS]`."""

    ARGS = "[ARGS]"
    _HEAD = re.compile(r"\s*([A-Za-z0-9_.-]{1,64})(\[CALL_ID\][A-Za-z0-9]+)?(\[ARGS\])?(?=\{)")

    @property
    def markers(self) -> tuple[str, ...]:
        return (self.marker, self.ARGS)

    @property
    def body_start(self) -> str:
        return "name{"

    def call_text(self, calls):
        return "".join(f"{self.marker}{n}{self.ARGS}{json.dumps(a, ensure_ascii=False)}" for n, a in calls)

    def may_be_call(self, text: str) -> bool:
        s = text.lstrip()
        if s.startswith(self.marker) or self.marker.startswith(s):
            return True
        name = re.match(r"[A-Za-z0-9_.-]*", s).end()
        rest = s[name:]
        return rest == "" or (name > 0 and (rest.startswith("{") or rest.startswith(self.ARGS)
                                              or self.ARGS.startswith(rest)))

    def parse(self, text: str):
        from ondevice.decoding.tools import ToolCall

        decoder, pos, found = json.JSONDecoder(), 0, []
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if found and pos >= len(text):
                break
            if text.startswith(self.marker, pos):
                pos += len(self.marker)
            head = self._HEAD.match(text, pos)
            if head is None:
                return text, []
            try:
                arguments, pos = decoder.raw_decode(text, head.end())
            except json.JSONDecodeError:
                return text, []
            if not isinstance(arguments, dict):
                return text, []
            found.append((head.group(1), arguments))
        return None, [ToolCall(f"call_{uuid.uuid4().hex[:24]}", n, json.dumps(a, ensure_ascii=False))
                      for n, a in found]

    def _lark(self, mode, tools, parallel, schema, token_ids) -> str:
        from ondevice.decoding.structured import json_in_lark

        def lit(text: str) -> str:
            return f"<[{token_ids[text]}]>" if text in token_ids else json.dumps(text)

        lines = [f"c{i}: {lit(self.marker)} {json.dumps(t.name)} {lit(self.ARGS)} {json_in_lark(t.parameters)}"
                 for i, t in enumerate(tools)]
        lines.append("call: " + " | ".join(f"c{i}" for i in range(len(tools))))
        lines.append("calls: call+" if parallel else "calls: call")
        lines.append(r'TEXT: /(?s:.+)/ & ~/(?s:\s*(\[TOOL_CALLS\]|[A-Za-z0-9_.-]+(\{|\[ARGS\])).*)/')
        return _compile(lines, mode, schema)


GENERIC = ToolFormat("generic", "any model without a format of its own (e.g. SmolLM2)", "<tool_call>", "</tool_call>",
                     "\n", "\n")
HERMES = ToolFormat("hermes", "Qwen2.5, Qwen3, QwQ, Hermes 2 Pro / 3, Granite 4", "<tool_call>", "</tool_call>",
                    "\n", "\n", signature=("<tool_call>", "tools"), shape=_NAME_KEY,
                    forbid="<tool")  # nor parrot <tool_response>
LLAMA3 = ToolFormat("llama3", "Llama 3.1, 3.2, 3.3", "<|python_tag|>", args_key="parameters", single=True,
                    marker_optional=True, signature=("<|start_header_id|>", "ipython"),
                    shape=r'\\?"parameters\\?"', result_role="ipython")
MISTRAL = _Mistral("mistral", "Mistral 7B v0.3, Mistral Nemo, Ministral 8B", "[TOOL_CALLS]", as_list=True,
                   signature=("[TOOL_CALLS]",), excludes=("[ARGS]",))  # v11's syntax: MISTRAL_V11
PHI4 = _Phi4("phi4", "Phi-4-mini", "<|tool_call|>", "<|/tool_call|>", as_list=True,
             signature=("<|tool|>", "<|/tool|>"))
MISTRAL_V11 = _MistralArgs("mistral_v11", "Ministral 3, Mistral Small 3.1 / 3.2, Devstral", "[TOOL_CALLS]",
                           signature=("[TOOL_CALLS]", "[ARGS]"))
GRANITE = ToolFormat("granite", "Granite 3.x", "<|tool_call|>", as_list=True,
                     signature=("<|start_of_role|>", "available_tools", "<|tool_call|>"))  # Granite 4: hermes

# Detection order: the most specific signatures first.
FORMATS: dict[str, ToolFormat] = {f.name: f for f in (PHI4, GRANITE, MISTRAL_V11, MISTRAL, LLAMA3, HERMES, GENERIC)}
ALIASES = {"qwen": "hermes", "llama": "llama3", "llama3.1": "llama3", "llama3.2": "llama3", "phi": "phi4",
           "phi-4": "phi4", "ministral": "mistral"}


def _compile(lines: list[str], mode: str, schema: dict | None) -> str:
    """A format's call rules plus its TEXT rule -> the lark grammar of an answer under `mode` ("none": text or the
    schema's answer; "auto": that or calls; "required": calls)."""
    from llguidance import LLMatcher

    from ondevice.decoding.structured import json_in_lark

    text = "TEXT"
    if schema is not None:
        lines = [*lines, f"answer: {json_in_lark(schema)}"]
        text = "answer"
    start = {"none": text, "auto": f"{text} | calls", "required": "calls"}[mode]
    return LLMatcher.grammar_from_lark("\n".join([f"start: {start}", *lines]))


def check_name(name: str) -> str:
    """"auto" or a known format's name (an alias resolves); anything else is an InvalidInput listing them."""
    if name == "auto":
        return name
    resolved = ALIASES.get(name, name) if isinstance(name, str) else name
    if resolved not in FORMATS:
        raise InvalidInput(f"tool_format must be 'auto' or one of {', '.join(FORMATS)}, got {name!r}")
    return resolved


def detect(template: str | None) -> ToolFormat:
    """The format a chat template is written for; GENERIC when it has none."""
    if template:
        for fmt in FORMATS.values():
            if fmt.detect(template):
                return fmt
    return GENERIC


def template_reads_tools(template: str | None) -> bool:
    """Whether a template renders tools itself (reads a `tools` variable or a message's `tools`)."""
    return bool(template) and re.search(r"\btools\b", template) is not None


@dataclass
class ChatTemplate:
    """What a loaded model brings to a tool-call plan: its template, the format, and its marker token ids."""

    template: str
    bos: str
    eos: str
    format: ToolFormat
    token_ids: dict[str, int]

    def renders_tools(self) -> bool:
        """Whether the template lists the tools itself, in this format (else the conversation carries our
        instructions: a template without tools, or one written for another format than the one named)."""
        return self.format is not GENERIC and template_reads_tools(self.template) \
            and detect(self.template) is self.format

    def render_prompt(self, messages: Sequence[dict], tools) -> str:
        return self.format.render_prompt(self.template, messages, tools, self.bos, self.eos)


def for_backend(backend) -> ChatTemplate:
    """The chat template and tool format of a loaded model (`RuntimeOptions.tool_format`, else detected)."""
    parts = getattr(backend, "chat_template_parts", None)
    try:
        template, bos, eos = parts() if parts else ("", "", "")
    except OnDeviceError:  # no template (a base model): chat() reports that itself
        template, bos, eos = "", "", ""
    name = check_name(getattr(backend.options, "tool_format", "auto") or "auto")
    fmt = detect(template) if name == "auto" else FORMATS[name]
    return ChatTemplate(template, bos, eos, fmt, marker_token_ids(backend, fmt))


def marker_token_ids(backend, fmt: ToolFormat) -> dict[str, int]:
    """{marker: token id} for each of the format's markers that the model's vocabulary has as one token."""
    ids = {}
    for marker in set(fmt.markers):
        try:
            tokens = backend.tokenize(marker, add_special=False)
        except OnDeviceError:
            continue
        if len(tokens) == 1:
            ids[marker] = int(tokens[0])
    return ids


def native_template(backend) -> ChatTemplate | None:
    """`for_backend`, or None when there is no backend or its format is the generic one."""
    if backend is None:
        return None
    chat = for_backend(backend)
    return chat if chat.format is not GENERIC else None
