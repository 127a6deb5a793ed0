"""One request, whatever the front end: `build_request(...)` -> `Request`, checked once, here.

Every front end builds the same object through this one function and hands it to one engine: `Model.generate` /
`Model.chat` / `Chat.send` (Python), `ondevice run` / `chat` (CLI), the server's routes and protocol adapters,
the `Router`, and a remote model's passthrough. Validation and normalisation happen here:

- the messages (roles, text content) or the prompt;
- the sampling values (`ondevice.decoding.sampling.SamplingParams` checks each one; unknown option names are refused);
- structured output and tools (`schema`, `tools`, `tool_choice`, `parallel_tool_calls`, OpenAI's legacy
  `functions` / `function_call`): the grammar every token follows and the messages rendered in the tool format
  (`ondevice.decoding.tools.plan_chat`), and how the answer's text is read back (`Request.finish`).

    request = build_request(messages=[{"role": "user", "content": "Hi"}], max_tokens=32, top_k=40)
    result = model.run(request)              # a Generation; model.run(request, stream=True) -> TextStream

Adding a sampling option touches its owner (`ondevice.decoding.sampling`) and the samplers that honour it, not the front
ends: they forward keywords.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ondevice.errors import InvalidInput
from ondevice.decoding.messages import check_messages
from ondevice.decoding.sampling import SamplingParams
from ondevice.decoding.structured import schema_grammar
from ondevice.decoding.tools import plan_chat

# The SamplingParams fields a front end may set by keyword (grammar is built here from schema/tools).
SAMPLING_FIELDS = tuple(f.name for f in dataclasses.fields(SamplingParams) if f.name != "grammar")


@dataclass
class Request:
    """A checked generation request: exactly one of `messages` (chat) or `prompt` (completion) is set.

    - messages: the conversation as the backend renders it (roles checked, content as one string, tool turns in
      the tool format, the tools listed in the system message).
    - prompt: text, or token ids (GGUF/ONNX only).
    - rendered: for a chat whose tools the model's own chat template renders (a native tool format,
      `ondevice.decoding.tool_formats`), the whole prompt it rendered; the answer is generated from it, and `messages` stay
      for routing and grounding (which drop `rendered` when they change the messages).
    - params: the sampling (with the grammar of a schema or tools).
    - plan: how the answer's text is read back (parsed JSON, tool calls); None for plain text.
    - legacy_functions: the request used OpenAI's `functions` (the answer is reported as `function_call`).
    """

    params: SamplingParams
    messages: list[dict] | None = None
    prompt: str | list[int] | None = None
    plan: Any = None
    legacy_functions: bool = False
    rendered: str | None = None

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def with_tools(self) -> bool:
        return bool(self.plan is not None and getattr(self.plan, "with_tools", False))

    @property
    def finish(self) -> Callable | None:
        """Post-processing of a finished Generation (parsed JSON, tool calls), or None for plain text."""
        if self.plan is None:
            return None
        if self.plan.grammar is not None or self.plan.with_tools:
            return self.plan.finish
        return None

    def replace(self, **changes) -> "Request":
        """A copy with some sampling values changed (checked again)."""
        return dataclasses.replace(self, params=dataclasses.replace(self.params, **changes))


def legacy_tools(functions: Any, function_call: Any) -> tuple[list | None, Any]:
    """OpenAI's deprecated `functions` / `function_call` as `tools` / `tool_choice`."""
    if functions is None:
        if function_call is not None:
            raise _bad("function_call", "function_call needs functions")
        return None, None
    if not isinstance(functions, list):
        raise _bad("functions", "functions must be a list of {'name': ..., 'parameters': {...}}")
    tools = [{"type": "function", "function": f} for f in functions]
    if function_call is None or isinstance(function_call, str):
        return tools, function_call
    if isinstance(function_call, dict):
        return tools, {"type": "function", "function": {"name": function_call.get("name")}}
    raise _bad("function_call", "function_call must be 'auto', 'none' or {'name': ...}")


def _bad(param: str, message: str) -> InvalidInput:
    error = InvalidInput(message)
    error.param = param
    return error


def build_request(messages: Sequence[dict] | None = None, prompt: str | Sequence[int] | None = None, *,
                  schema: Any = None, tools: Sequence[dict] | None = None, tool_choice: Any = None,
                  parallel_tool_calls: bool = False, functions: Any = None, function_call: Any = None,
                  default_max_tokens: int = 128, backend: Any = None, **sampling: Any) -> Request:
    """The one way from a front end's values to a `Request` (see the module doc).

    sampling: any `SamplingParams` field by name (max_tokens, temperature, top_p, top_k, min_p, seed, stop,
    logit_bias, frequency_penalty, presence_penalty, repeat_penalty, ignore_eos, speculative). A None value means
    "the default". An unknown name is an InvalidInput naming it.
    backend: the loaded model's backend, when known: tools then take the format its chat template was written for
    (`ondevice.decoding.tool_formats`); without it, the generic format.
    """
    unknown = sorted(set(sampling) - set(SAMPLING_FIELDS))
    if unknown:
        raise _bad(unknown[0], f"unknown generation option {unknown[0]!r}; known: {', '.join(SAMPLING_FIELDS)}")
    values = {k: v for k, v in sampling.items() if v is not None}
    values.setdefault("max_tokens", default_max_tokens)
    if (messages is None) == (prompt is None):
        raise InvalidInput("give either messages (chat) or a prompt (completion)")
    legacy = functions is not None
    if legacy:
        if tools is not None:
            raise _bad("functions", "use tools or the deprecated functions, not both")
        tools, tool_choice = legacy_tools(functions, function_call)
    elif function_call is not None:
        raise _bad("function_call", "function_call needs functions")
    if prompt is not None:
        if tools or tool_choice not in (None, "none"):
            raise _bad("tools", "tools need a chat request (messages), not a prompt")
        if isinstance(prompt, str):
            pass
        elif isinstance(prompt, (list, tuple)) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                                  for t in prompt):
            prompt = [int(t) for t in prompt]
        else:
            raise _bad("prompt", "prompt must be a string or a non-empty list of token ids")
        grammar = schema_grammar(schema) if schema is not None else None
        params = SamplingParams(grammar=grammar, **values)
        plan = _TextPlan(grammar) if grammar is not None else None
        return Request(params, prompt=prompt, plan=plan)
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise _bad("messages", "messages must be a list of {'role': ..., 'content': ...}")
    plan = plan_chat(list(messages), schema, tools, tool_choice, bool(parallel_tool_calls), backend=backend)
    params = SamplingParams(grammar=plan.grammar, **values)
    return Request(params, messages=check_messages(plan.messages), plan=plan, legacy_functions=legacy,
                   rendered=getattr(plan, "prompt", None))


@dataclass
class _TextPlan:
    """A completion with a schema: the parsed JSON is read back as a chat answer's is."""

    grammar: Any
    with_tools: bool = False

    def finish(self, result):
        return self.grammar.finish(result)
