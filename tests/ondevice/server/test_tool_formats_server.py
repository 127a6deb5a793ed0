"""A family model whose template has a native tool format (Mistral's `[TOOL_CALLS]`, a control token) round-trips
a tool call through the real server (`ondevice serve` subprocess) with the official `openai` client: the prompt is
the template's own with `tools=`, the grammar asks for the `[TOOL_CALLS]` token and a JSON list, and the answer
comes back as OpenAI `tool_calls`, streamed and not; the tool's result then continues the conversation."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.ondevice.server.conftest import start_server, stop_server
from tests.ondevice.decoding.test_tool_formats import TOOLS
from tests.ondevice.decoding.tool_templates import FAMILIES, family_gguf


@pytest.fixture(scope="module")
def mistral_server(tmp_path_factory):
    from tests.tiny_models import make_tiny_hf

    weights = make_tiny_hf("llama", tmp_path_factory.mktemp("tiny-weights"))
    gguf = family_gguf(weights, FAMILIES["mistral"], tmp_path_factory.mktemp("mistral"))
    server = start_server(model=str(gguf))
    server.model = str(gguf)  # the id it serves under
    server.gguf = gguf
    yield server
    stop_server(server)


def test_a_mistral_format_tool_call_round_trips_through_the_server(mistral_server):
    client = mistral_server.client()
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    reply = client.chat.completions.create(model=mistral_server.model, messages=messages, tools=TOOLS,
                                           tool_choice="required", max_tokens=60, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    tool = {t["function"]["name"]: t["function"] for t in TOOLS}[call.function.name]
    jsonschema.validate(json.loads(call.function.arguments), tool["parameters"])
    # in that format: the prompt the server decoded is the Mistral template's own rendering with the tools
    import ondevice
    from ondevice.decoding.tools import plan_chat

    with ondevice.load(str(mistral_server.gguf), n_ctx=512, threads=1) as model:
        plan = plan_chat(messages, tools=TOOLS, tool_choice="required", backend=model.backend)
        assert plan.prompt.startswith("<s>[AVAILABLE_TOOLS][") and plan.prompt.endswith("[/INST]")
        assert reply.usage.prompt_tokens == len(model.backend.prompt_tokens(plan.prompt))

    # streamed: the deltas rebuild the same call (temperature 0)
    chunks = list(client.chat.completions.create(model=mistral_server.model, messages=messages, tools=TOOLS,
                                                 tool_choice="required", max_tokens=60, temperature=0,
                                                 stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    streamed = deltas[0].tool_calls[0]
    assert (streamed.function.name, streamed.function.arguments) == (call.function.name, call.function.arguments)
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)  # no call text leaks as content

    # the result goes back in Mistral's [TOOL_RESULTS] (the template refuses ids that are not 9 characters: the
    # server maps ours), and the model may answer or call again
    history = messages + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                          {"role": "tool", "tool_call_id": call.id, "content": "18 C"}]
    follow = client.chat.completions.create(model=mistral_server.model, messages=history, tools=TOOLS, max_tokens=8,
                                            temperature=0)
    assert follow.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_a_malformed_tool_result_is_a_400(mistral_server):
    import openai

    client = mistral_server.client()
    with pytest.raises(openai.BadRequestError, match="answers no earlier"):
        client.chat.completions.create(model=mistral_server.model, tools=TOOLS, max_tokens=4, messages=[
            {"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_9", "content": "x"}])


def test_serve_refuses_an_unknown_tool_format_in_one_line():
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    result = CliRunner().invoke(cli, ["serve", "smollm2-135m", "--tool-format", "chatml", "--port", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "tool_format must be 'auto' or one of" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_format_named_with_tool_format_is_the_one_served():
    """SmolLM2's template has no tool format; `--tool-format mistral` makes the server ask for Mistral's syntax
    (spelled out: the vocabulary has no [TOOL_CALLS] token) and read it back."""
    import ondevice
    from ondevice.model import check_messages
    from ondevice.decoding.tools import plan_chat

    messages = [{"role": "user", "content": "Weather in Paris?"}]
    server = start_server("--tool-format", "mistral")
    try:
        reply = server.client().chat.completions.create(model="smollm2-135m", messages=messages, tools=TOOLS,
                                                        tool_choice="required", max_tokens=40, temperature=0)
    finally:
        stop_server(server)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name in ("get_weather", "get_time")
    with ondevice.load("smollm2-135m", n_ctx=512, threads=1, tool_format="mistral") as model:
        plan = plan_chat(messages, tools=TOOLS, tool_choice="required", backend=model.backend)
        assert plan.prompt is None and "[TOOL_CALLS][" in plan.messages[0]["content"]
        prompt = model.render_chat(check_messages(plan.messages))
        assert reply.usage.prompt_tokens == len(model.backend.prompt_tokens(prompt))
