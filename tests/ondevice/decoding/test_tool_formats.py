"""Native tool-call formats: each family's chat template (tests/ondevice/decoding/tool_templates.py) on a tiny random model
whose tokenizer has that family's special tokens. Checked: the format is detected from the template, the exact
prompt the template renders with `tools=`, the grammar (llguidance itself accepts a valid call in the format and
rejects a malformed one, and free text can never start a call), and the calls parsed back, streamed and not.

The models' weights are random: with tool_choice="required" the grammar alone makes the answer a call, which is
what these tests need; the argument values are noise (but validate against the schema)."""

from __future__ import annotations

import json
import time

import jsonschema
import pytest

import ondevice
from ondevice.decoding import tool_formats
from ondevice.errors import InvalidInput
from ondevice.decoding.tools import plan_chat
from tests.ondevice.decoding.tool_templates import FAMILIES, family_gguf

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                   "required": ["city"]}}}
TOOLS = [WEATHER, TIME]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}]
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="session")
def family_models(tmp_path_factory):
    """name -> a loaded tiny model with that family's tokenizer and template (one random llama, five GGUFs)."""
    from tests.tiny_models import make_tiny_hf

    weights = make_tiny_hf("llama", tmp_path_factory.mktemp("tiny-weights"))
    root = tmp_path_factory.mktemp("families")
    models = {name: ondevice.load(str(family_gguf(weights, family, root / name)), n_ctx=1024, threads=1)
              for name, family in FAMILIES.items()}
    yield models
    for model in models.values():
        model.close()


def _spec_json(indent=None):
    return json.dumps([{"type": "function", "function": t["function"]} for t in TOOLS], indent=indent)


def expected_prompt(name: str) -> str:
    """CONVERSATION with TOOLS, as each family's template writes it (tool results included)."""
    if name == "hermes":
        listed = "\n".join(json.dumps(t) for t in TOOLS)
        return ("<|im_start|>system\nBe brief.\n\n# Tools\n\nThese functions are available, described inside "
                f"<tools></tools>:\n<tools>\n{listed}\n</tools>\n\nTo call one, write its name and arguments as "
                "JSON between <tool_call></tool_call> tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"
                "\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n18 C\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n")
    if name == "llama3":
        listed = "".join(json.dumps(t, indent=4) + "\n\n" for t in TOOLS)
        return ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nToday Date: "
                f"{time.strftime('%d %b %Y')}\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "When one of these functions helps, answer with only a JSON object {\"name\": function name, "
                f"\"parameters\": object of argument values}}.\n\n{listed}Weather in Paris?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": "
                "{\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n18 C<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
    if name == "mistral":
        call_id = tool_formats.MISTRAL.call_id("call_1")
        return (f"<s>[AVAILABLE_TOOLS]{_spec_json()}[/AVAILABLE_TOOLS][INST]Weather in Paris?[/INST][TOOL_CALLS]"
                f"[{{\"name\": \"get_weather\", \"arguments\": {{\"city\": \"Paris\"}}, \"id\": \"{call_id}\"}}]</s>"
                f"[TOOL_RESULTS]{{\"content\": \"18 C\", \"call_id\": \"{call_id}\"}}[/TOOL_RESULTS]")
    if name == "mistral_v11":
        return (f"<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][AVAILABLE_TOOLS]{_spec_json()}[/AVAILABLE_TOOLS]"
                "[INST]Weather in Paris?[/INST][TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}</s>"
                "[TOOL_RESULTS]18 C[/TOOL_RESULTS]")
    if name == "phi4":
        listed = json.dumps([t["function"] for t in TOOLS])
        return (f"<|system|>Be brief.<|tool|>{listed}<|/tool|><|end|><|user|>Weather in Paris?<|end|><|assistant|>"
                "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]<|/tool_call|>"
                "<|end|><|tool|>18 C<|end|><|assistant|>")
    assert name == "granite"
    return ("<|start_of_role|>system<|end_of_role|>Be brief.<|end_of_text|>\n<|start_of_role|>available_tools"
            f"<|end_of_role|>{_spec_json(4)}<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Weather in Paris?"
            "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|><|tool_call|>[{\"name\": \"get_weather\", "
            "\"arguments\": {\"city\": \"Paris\"}}]<|end_of_text|>\n<|start_of_role|>tool<|end_of_role|>18 C"
            "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>")


# What a valid call and malformed ones look like in each format (compact JSON, as the grammar writes it).
VALID = {
    "hermes": '<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call>',
    "llama3": '<|python_tag|>{"name":"get_weather","parameters":{"city":"Paris"}}',
    "mistral": '[TOOL_CALLS][{"name":"get_weather","arguments":{"city":"Paris"}}]',
    "mistral_v11": '[TOOL_CALLS]get_weather[ARGS]{"city":"Paris"}',
    "phi4": '<|tool_call|>[{"name":"get_weather","arguments":{"city":"Paris"}}]<|/tool_call|>',
    "granite": '<|tool_call|>[{"name":"get_weather","arguments":{"city":"Paris"}}]',
}
MALFORMED = {  # an unknown tool, a foreign argument key, a missing marker or list
    "hermes": ['<tool_call>\n{"name":"get_news","arguments":{"city":"Paris"}}\n</tool_call>',
               '<tool_call>\n{"name":"get_weather","parameters":{"city":"Paris"}}\n</tool_call>'],
    "llama3": ['{"name":"get_weather","arguments":{"city":"Paris"}}', '{"name":"get_news","parameters":{}}'],
    "mistral": ['[TOOL_CALLS]{"name":"get_weather","arguments":{"city":"Paris"}}',
                '[{"name":"get_weather","arguments":{"city":"Paris"}}]'],
    "mistral_v11": ['[TOOL_CALLS]get_news[ARGS]{"city":"Paris"}', 'get_weather{"city":"Paris"}',
                    '[TOOL_CALLS][{"name":"get_weather","arguments":{"city":"Paris"}}]'],
    "phi4": ['<|tool_call|>[{"name":"get_weather","arguments":{"town":"Paris"}}]<|/tool_call|>',
             '[{"name":"get_weather","arguments":{"city":"Paris"}}]'],
    "granite": ['<|tool_call|>{"name":"get_weather","arguments":{"city":"Paris"}}',
                '<|tool_call|>[{"name":"get_weather","arguments":{"city":"Paris"}},{"name":"get_time"']
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_format_is_detected_from_the_template(family_models, name):
    model = family_models[name]
    assert tool_formats.detect(FAMILIES[name].template) is tool_formats.FORMATS[name]
    chat = tool_formats.for_backend(model.backend)
    assert chat.format.name == name and chat.renders_tools()
    # the opening marker is one token of the vocabulary, so the grammar asks for that token
    assert set(chat.format.markers) <= set(chat.token_ids)


def test_a_template_without_a_tool_format_keeps_the_generic_one(smollm2):
    assert tool_formats.for_backend(smollm2.backend).format is tool_formats.GENERIC
    assert tool_formats.native_template(smollm2.backend) is None


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_exact_prompt_comes_from_the_template_with_tools(family_models, name):
    plan = plan_chat(CONVERSATION, tools=TOOLS, backend=family_models[name].backend)
    assert plan.tool_format.name == name
    assert plan.prompt == expected_prompt(name)


def _matcher(model, grammar):
    from llguidance import LLMatcher

    return LLMatcher(model.backend.vocabulary().tokenizer, grammar.source, log_level=0)


def _accepts(model, grammar, text: str) -> bool:
    matcher = _matcher(model, grammar)
    tokens = model.backend.tokenize(text, add_special=False)
    return matcher.validate_tokens(tokens) == len(tokens) and matcher.consume_tokens(tokens) \
        and matcher.is_accepting()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_grammar_accepts_a_call_in_the_format_and_rejects_malformed_ones(family_models, name):
    model = family_models[name]
    required = plan_chat(QUESTION, tools=TOOLS, tool_choice="required", backend=model.backend).grammar
    auto = plan_chat(QUESTION, tools=TOOLS, tool_choice="auto", backend=model.backend).grammar
    assert _accepts(model, required, VALID[name]) and _accepts(model, auto, VALID[name])
    for bad in MALFORMED[name]:
        # neither as a call nor as free text: text can never begin the way a call does
        assert not _accepts(model, required, bad), bad
        assert not _accepts(model, auto, bad), bad
    assert _accepts(model, auto, "It is sunny.") and not _accepts(model, required, "It is sunny.")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_calls_parse_back_to_openai_shape_streamed_and_not(family_models, name):
    model = family_models[name]
    result = model.chat(QUESTION, tools=TOOLS, tool_choice="required", max_tokens=60)
    assert result.finish_reason == "tool_calls" and len(result.tool_calls) == 1
    call = result.tool_calls[0].to_openai()
    assert call["type"] == "function" and call["id"].startswith("call_")
    tool = {t["function"]["name"]: t["function"] for t in TOOLS}[call["function"]["name"]]
    jsonschema.validate(json.loads(call["function"]["arguments"]), tool["parameters"])
    stream = model.chat(QUESTION, tools=TOOLS, tool_choice="required", max_tokens=60, stream=True)
    text = "".join(stream)
    assert text == result.text  # temperature 0: the same answer
    assert [(c.name, c.arguments) for c in stream.result.tool_calls] == \
        [(c.name, c.arguments) for c in result.tool_calls]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_parse_reads_calls_with_the_marker_shown_or_not(name):
    fmt = tool_formats.FORMATS[name]
    shown = VALID[name]
    hidden = shown
    for marker in fmt.markers:  # control tokens decode to no text
        hidden = hidden.replace(marker, "")
    for text in (shown, hidden):
        content, calls = fmt.parse(text)
        assert content is None and [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert fmt.parse("It is sunny.") == ("It is sunny.", [])
    cut = shown[:len(shown) // 2]  # max_tokens cut the call short: the text is reported as it is
    assert fmt.parse(cut) == (cut, [])
    assert fmt.may_be_call(hidden[:3]) and fmt.may_be_call("") and not fmt.may_be_call("It is")


def test_parallel_calls_in_list_formats():
    fmt = tool_formats.MISTRAL
    text = fmt.call_text([("get_weather", {"city": "Paris"}), ("get_time", {"city": "Oslo"})])
    assert text == ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                    '{"name": "get_time", "arguments": {"city": "Oslo"}}]')
    assert [(c.name, c.args) for c in fmt.parse(text)[1]] == [("get_weather", {"city": "Paris"}),
                                                              ("get_time", {"city": "Oslo"})]
    hermes = tool_formats.HERMES.call_text([("get_weather", {"city": "Paris"}), ("get_time", {"city": "Oslo"})])
    assert [c.name for c in tool_formats.HERMES.parse(hermes)[1]] == ["get_weather", "get_time"]


def test_a_named_format_on_a_template_without_tools_puts_them_in_the_conversation(smollm2):
    """SmolLM2's template has no tools: named explicitly, the format's syntax goes into the messages instead."""
    model = ondevice.load("smollm2-135m", n_ctx=1024, threads=1, tool_format="mistral")
    try:
        plan = plan_chat(CONVERSATION, tools=TOOLS, backend=model.backend)
        assert plan.tool_format is tool_formats.MISTRAL and plan.prompt is None
        assert '[TOOL_CALLS][{"name": <tool name>, "arguments": <JSON object>}]' in plan.messages[0]["content"]
        assert plan.messages[2] == {"role": "assistant", "content":
                                    '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]'}
        result = model.chat(QUESTION, tools=TOOLS, tool_choice="required", max_tokens=40)
        assert result.finish_reason == "tool_calls" and result.text.startswith('[TOOL_CALLS][{"name":')
    finally:
        model.close()


def test_tool_format_option_is_checked():
    assert ondevice.RuntimeOptions(tool_format="qwen").tool_format == "hermes"
    with pytest.raises(InvalidInput, match="tool_format must be 'auto' or one of phi4, granite, mistral_v11, "
                                           "mistral, llama3, hermes, generic, got 'chatml'"):
        ondevice.RuntimeOptions(tool_format="chatml")


@pytest.mark.parametrize("snippet, name", [
    # XML-style calls inside the same <tool_call> tags (Qwen3-Coder, GLM, Nemotron): not hermes JSON
    ("{% if tools %}<tool_call>\n<function=name>\n<parameter=x>{% endif %}", "generic"),
    ("{% if tools %}<tool_call>{{ name }}<arg_key>x</arg_key>{% endif %}", "generic"),
    ("{% if tools %}<tool_call>\n{\"name\": <function-name>, \"arguments\": <args>}\n</tool_call>{% endif %}",
     "hermes"),
    # Granite 4 writes hermes blocks, Granite 3 its own <|tool_call|> list
    ("<|start_of_role|>available_tools<|end_of_role|>{{ tools }}<tool_call>{\"name\": ...}</tool_call>", "hermes"),
    ("<|start_of_role|>available_tools<|end_of_role|>{{ tools }} answer with <|tool_call|> and a list", "granite"),
    # Mistral's later [TOOL_CALLS]name[ARGS]{...} is not the JSON-list syntax
    ("{{ tools }}[TOOL_CALLS]{{ call.name }}[ARGS]{{ call.arguments }}", "mistral_v11"),
    ("{{ tools }}[TOOL_CALLS][{{ call | tojson }}]", "mistral"),
    # Llama 3 JSON calls, but not functionary's <function=...> on the same headers
    ("<|start_header_id|>ipython<|end_header_id|>{{ tools }} {\"name\": x, \"parameters\": y}", "llama3"),
    ("<|start_header_id|>ipython<|end_header_id|>{{ tools }} <function=name>{\"parameters\": y}", "generic"),
    ("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}", "generic"),  # plain ChatML
])
def test_detection_tells_lookalike_syntaxes_apart(snippet, name):
    assert tool_formats.detect(snippet).name == name


def test_mistral_v11_parallel_calls_and_a_call_id_in_history():
    fmt = tool_formats.MISTRAL_V11
    text = fmt.call_text([("get_weather", {"city": "Paris"}), ("get_time", {"city": "Oslo"})])
    assert text == '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{"city": "Oslo"}'
    for shown in (text, text.replace("[TOOL_CALLS]", "").replace("[ARGS]", ""),
                  '[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}'):
        assert fmt.parse(shown)[1][0].name == "get_weather"
    assert [c.name for c in fmt.parse(text)[1]] == ["get_weather", "get_time"]
    assert fmt.parse("Paris is sunny.") == ("Paris is sunny.", [])


def test_onnx_models_use_the_native_format_too(tiny_onnx_fp32_dir):
    """The ONNX backend: the Hermes template given as chat_template (its tokenizer has no <tool_call> token, so the
    grammar spells it); the prompt is the template's, the call parses back."""
    from tests.ondevice.decoding.tool_templates import HERMES

    model = ondevice.load(str(tiny_onnx_fp32_dir), n_ctx=512, threads=1, chat_template=HERMES)
    try:
        chat = tool_formats.for_backend(model.backend)
        assert chat.format is tool_formats.HERMES and "<tool_call>" not in chat.token_ids
        # one short tool: the tiny export's whole context is 512 tokens of a 512-token vocabulary
        digit = {"type": "integer", "minimum": 0, "maximum": 9}
        tools = [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"x": digit}, "required": ["x"]}}}]
        plan = plan_chat(QUESTION, tools=tools, tool_choice="required", backend=model.backend)
        assert plan.prompt.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n")
        result = model.chat(QUESTION, tools=tools, tool_choice="required", max_tokens=100)
        assert result.finish_reason == "tool_calls" and result.text.startswith('<tool_call>\n{"name":"f"')
        assert result.tool_calls[0].name == "f" and 0 <= result.tool_calls[0].args["x"] <= 9
    finally:
        model.close()


def test_a_format_named_against_the_templates_own_is_put_in_the_conversation(family_models):
    """The Qwen-style template renders tools, but in hermes: named llama3, the tools and calls go into the messages
    in llama3's syntax (the template would describe the wrong one)."""
    path = str(family_models["hermes"].ref.path)
    with ondevice.load(path, n_ctx=1024, threads=1, tool_format="llama3") as model:
        plan = plan_chat(CONVERSATION, tools=TOOLS, backend=model.backend)
        assert plan.tool_format is tool_formats.LLAMA3 and plan.prompt is None
        assert plan.messages[2]["content"] == '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}'
        result = model.chat(QUESTION, tools=TOOLS, tool_choice="required", max_tokens=60)
        assert result.finish_reason == "tool_calls" and result.text.startswith('{"name":"get_')
