"""The other protocols local apps speak, driven by their own clients against the real `ondevice serve`
(the session `server` fixture): Ollama's API (the `ollama` client) and Anthropic Messages (the `anthropic` client).

Each is a thin adapter over the one request and the one engine, so at temperature 0 every protocol gives the
same answer as /v1/chat/completions.
"""

from __future__ import annotations


import json
import time

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.ondevice.server.conftest import API_KEY, QUESTION, SYSTEM

MODEL = "smollm2-135m"
PARIS = "The capital of France is Paris."
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def reference(client) -> str:
    """The chat-completions answer every protocol must reproduce."""
    answer = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=20)
    return answer.choices[0].message.content


@pytest.fixture(scope="module")
def ol(server) -> ollama.Client:
    return ollama.Client(host=server.base_url, timeout=120)


@pytest.fixture(scope="module")
def claude(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


# --- Ollama ----------------------------------------------------------------------------------------------------
def test_ollama_chat_plain_and_streamed_match_chat_completions(ol, reference):
    options = {"temperature": 0, "num_predict": 20, "num_ctx": 256, "num_thread": 1}  # num_thread: ignored
    reply = ol.chat(model=MODEL, messages=QUESTION, options=options)
    assert reference == PARIS and reply.message.content == reference
    assert reply.done and reply.done_reason == "stop" and reply.eval_count == 7 and reply.prompt_eval_count > 0
    parts = list(ol.chat(model=MODEL + ":latest", messages=QUESTION, options=options, stream=True))
    assert "".join(p.message.content for p in parts) == reference
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done


def test_ollama_generate_applies_the_chat_template_and_num_predict_caps(ol, reference):
    reply = ol.generate(model=MODEL, prompt=QUESTION[1]["content"], system=SYSTEM,
                        options={"temperature": 0, "num_predict": 20})
    assert reply.response == reference
    short = ol.generate(model=MODEL, prompt=QUESTION[1]["content"], system=SYSTEM,
                        options={"temperature": 0, "num_predict": 3}, stream=True)
    parts = list(short)
    assert "".join(p.response for p in parts) == "The capital of" and parts[-1].done_reason == "length"


def test_ollama_format_schema_and_json(ol):
    reply = ol.chat(model=MODEL, messages=[{"role": "user", "content": "What is the capital of France? JSON."}],
                    format=CITY, options={"temperature": 0, "num_predict": 40})
    assert isinstance(json.loads(reply.message.content)["city"], str)
    reply = ol.generate(model=MODEL, prompt="A JSON object about Paris:", format="json",
                        options={"temperature": 0, "num_predict": 40})
    assert isinstance(json.loads(reply.response), dict)


def test_ollama_tool_result_round_trip(ol):
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
               {"role": "tool", "tool_name": "get_weather", "content": "18 C and sunny"}]
    reply = ol.chat(model=MODEL, messages=history, tools=[WEATHER], options={"temperature": 0, "num_predict": 40})
    assert "18" in reply.message.content and reply.message.tool_calls is None


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_tool_calls_parse_with_the_clients_types(server, stream):
    # Ollama has no tool_choice and this 135M model answers in prose under "auto": the ondevice extension forces
    # a call; the reply is read with the ollama client's own response type.
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER],
            "tool_choice": "required", "stream": stream, "options": {"temperature": 0, "num_predict": 60}}
    response = httpx.post(server.base_url + "/api/chat", json=body, timeout=120)
    assert response.status_code == 200
    lines = [ollama.ChatResponse.model_validate(json.loads(line)) for line in response.text.splitlines()]
    calls = [call for line in lines for call in (line.message.tool_calls or [])]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert lines[-1].done


def test_ollama_list_show_ps_version(ol, server):
    assert [m.model for m in ol.list().models] == [MODEL]
    shown = ol.show(MODEL)
    assert shown.details.format == "gguf" and shown.details.family == "llama"
    assert "im_start" in shown.template and shown.parameters == "num_ctx 512"
    assert shown.modelinfo["general.parameter_count"] > 100e6 and "tools" in shown.capabilities
    running = ol.ps().models
    assert [m.model for m in running] == [MODEL] and running[0].context_length == 512
    assert httpx.get(server.base_url + "/api/version").json()["version"]


def test_ollama_keep_alive_is_checked_but_the_model_stays_loaded(ol, reference):
    # `ondevice serve` holds its one model for the life of the process (docs/server.md): keep_alive 0 is accepted
    # and the model is still loaded, and answers, afterwards
    options = {"temperature": 0, "num_predict": 20}
    assert ol.chat(model=MODEL, messages=QUESTION, options=options, keep_alive=0).message.content == reference
    assert ol.generate(model=MODEL, prompt="", keep_alive="0s").done  # Ollama's "unload" request
    assert [m.model for m in ol.ps().models] == [MODEL]
    assert ol.chat(model=MODEL, messages=QUESTION, options=options, keep_alive="5m").message.content == reference


def test_ollama_embed_matches_v1_embeddings(ol, client):
    from tests.ondevice.server.conftest import EMBED_MODEL

    reply = ol.embed(model=EMBED_MODEL, input=["a beagle", "a router"])
    reference = client.embeddings.create(model=EMBED_MODEL, input=["a beagle", "a router"])
    assert len(reply.embeddings) == 2
    for mine, theirs in zip(reply.embeddings, reference.data):
        assert mine == pytest.approx(theirs.embedding, abs=1e-6)


@pytest.mark.parametrize("call, status, words", [
    (lambda c: c.chat(model="nope", messages=QUESTION), 404, "'nope' does not exist"),
    (lambda c: c.chat(model=MODEL, messages=QUESTION, options={"num_ctx": 100000}), 400, "num_ctx"),
    (lambda c: c.chat(model=MODEL, messages=QUESTION, options={"temperature": -3}), 400, "temperature"),
    (lambda c: c.chat(model=MODEL, messages=QUESTION, options={"top_p": 5}), 400, "top_p"),
    (lambda c: c.embed(model=MODEL, input="x"), 404, "embedding model"),
    (lambda c: c.chat(model=MODEL, messages=QUESTION, keep_alive="soon"), 400, "keep_alive"),
])
def test_ollama_bad_requests_answer_in_ollamas_error_shape(ol, call, status, words):
    with pytest.raises(ollama.ResponseError) as caught:
        call(ol)
    assert caught.value.status_code == status and words in caught.value.error


@pytest.mark.parametrize("body, words", [({"messages": "hi"}, "model"), ({"model": MODEL, "messages": "hi"}, "messages"),
                                         ({"model": MODEL, "messages": QUESTION, "format": "yaml"}, "format")])
def test_ollama_bad_body_is_a_400_error_string(server, body, words):
    response = httpx.post(server.base_url + "/api/chat", json=body, timeout=30)
    assert response.status_code == 400 and set(response.json()) == {"error"}
    assert words in response.json()["error"]


# --- Anthropic Messages ----------------------------------------------------------------------------------------
CLAUDE_TOOL = {"name": "get_weather", "description": "Get the current weather for a city", "input_schema": CITY}


def test_anthropic_create_and_stream_match_chat_completions(claude, reference):
    message = claude.messages.create(model=MODEL, max_tokens=20, system=SYSTEM, messages=QUESTION[1:])
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == reference
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 7 and message.usage.input_tokens > 0
    with claude.messages.stream(model=MODEL, max_tokens=20, system=[{"type": "text", "text": SYSTEM}],
                                messages=QUESTION[1:]) as stream:
        assert "".join(stream.text_stream) == reference
        final = stream.get_final_message()
    assert final.content[0].text == reference and final.usage.output_tokens == 7
    short = claude.messages.create(model=MODEL, max_tokens=3, system=SYSTEM, messages=QUESTION[1:])
    assert short.stop_reason == "max_tokens" and short.content[0].text == "The capital of"


def test_anthropic_tool_use_create_stream_and_result(claude):
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    message = claude.messages.create(model=MODEL, max_tokens=60, tools=[CLAUDE_TOOL], tool_choice={"type": "any"},
                                     messages=ask)
    assert message.stop_reason == "tool_use"
    (use,) = [b for b in message.content if b.type == "tool_use"]
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    with claude.messages.stream(model=MODEL, max_tokens=60, tools=[CLAUDE_TOOL], tool_choice={"type": "any"},
                                messages=ask) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and [(b.name, b.input) for b in final.content if b.type == "tool_use"] \
        == [("get_weather", {"city": "Paris"})]
    answer = claude.messages.create(model=MODEL, max_tokens=40, tools=[CLAUDE_TOOL], messages=ask + [
        {"role": "assistant", "content": message.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C and sunny"}]}])
    assert answer.stop_reason == "end_turn" and "Paris" in answer.content[0].text


def test_anthropic_structured_output(claude):
    message = claude.messages.create(model=MODEL, max_tokens=40, messages=[
        {"role": "user", "content": "What is the capital of France? JSON."}],
        output_config={"format": {"type": "json_schema", "schema": CITY}})
    assert isinstance(json.loads(message.content[0].text)["city"], str)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"max_tokens": 0}, anthropic.BadRequestError, "max_tokens"),
    ({"max_tokens": 5, "model": "nope"}, anthropic.NotFoundError, "'nope' does not exist"),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, anthropic.BadRequestError, "role"),
    ({"max_tokens": 5, "tools": [{"name": "web_search", "type": "web_search_20250305"}]},
     anthropic.BadRequestError, "input_schema"),
])
def test_anthropic_bad_requests_answer_in_anthropics_error_shape(claude, kwargs, error, words):
    with pytest.raises(error) as caught:
        claude.messages.create(**{"model": MODEL, "messages": [{"role": "user", "content": "x"}], **kwargs})
    assert caught.value.body["type"] == "error" and words in caught.value.body["error"]["message"]


def test_anthropic_x_api_key_is_accepted(keyed_server):
    good = anthropic.Anthropic(base_url=keyed_server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    assert good.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}]).content
    bad = anthropic.Anthropic(base_url=keyed_server.base_url, api_key="wrong", max_retries=0, timeout=120)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["error"]["type"] == "authentication_error"


# --- OpenAI Responses -------------------------------------------------------------------------------------------
RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "Get the current weather for a city",
                  "parameters": {**CITY, "additionalProperties": False}, "strict": True}


def test_responses_create_and_stream_match_chat_completions(client, reference):
    ask = {"model": MODEL, "instructions": SYSTEM, "input": QUESTION[1]["content"], "max_output_tokens": 20,
           "temperature": 0}
    response = client.responses.create(**ask)
    assert response.output_text == reference and response.status == "completed"
    assert response.usage.output_tokens == 7 and response.usage.total_tokens == response.usage.input_tokens + 7
    with client.responses.stream(**{**ask, "input": [{"role": "user", "content": QUESTION[1]["content"]}]}) as s:
        kinds = [event.type for event in s]
        final = s.get_final_response()
    assert final.output_text == reference
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 7
    short = client.responses.create(**{**ask, "max_output_tokens": 3})
    assert short.status == "incomplete" and short.incomplete_details.reason == "max_output_tokens"


def test_responses_parse_structured_output(client):
    from pydantic import BaseModel

    class City(BaseModel):
        city: str

    parsed = client.responses.parse(model=MODEL, input="What is the capital of France? JSON.", text_format=City,
                                    max_output_tokens=40, temperature=0)
    assert isinstance(parsed.output_parsed, City) and parsed.output_parsed.city


def test_responses_function_tools_create_stream_and_output(client):
    ask = {"model": MODEL, "input": "Weather in Paris?", "tools": [RESPONSES_TOOL], "tool_choice": "required",
           "max_output_tokens": 60, "temperature": 0}
    (call,) = client.responses.create(**ask).output
    assert call.type == "function_call" and (call.name, json.loads(call.arguments)) == ("get_weather",
                                                                                         {"city": "Paris"})
    with client.responses.stream(**ask) as s:
        final = s.get_final_response()
    assert [(item.name, item.parsed_arguments) for item in final.output] == [("get_weather", {"city": "Paris"})]
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "18 C and sunny"}]
    answer = client.responses.create(model=MODEL, input=history, tools=[RESPONSES_TOOL], max_output_tokens=40,
                                     temperature=0)
    assert answer.status == "completed" and [item.type for item in answer.output] == ["message"]
    assert answer.output_text


def test_responses_previous_response_id_continues_a_stored_response(client):
    ask = {"model": MODEL, "instructions": SYSTEM, "max_output_tokens": 20, "temperature": 0}
    first = client.responses.create(**ask, input=QUESTION[1]["content"])
    assert first.store and first.output_text == PARIS
    second = client.responses.create(**ask, input="And of Italy?", previous_response_id=first.id)
    # the continuation is the answer to the whole conversation sent at once, and it reused the first turn's cache
    whole = client.responses.create(**ask, store=False, input=[
        {"role": "user", "content": QUESTION[1]["content"]}, {"role": "assistant", "content": PARIS},
        {"role": "user", "content": "And of Italy?"}])
    assert second.output_text == whole.output_text == "The capital of Italy is Rome."
    assert second.previous_response_id == first.id and second.usage.input_tokens == whole.usage.input_tokens
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens - 2
    with client.responses.stream(**ask, input="And of Italy?", previous_response_id=first.id) as s:
        assert s.get_final_response().output_text == whole.output_text
    assert client.responses.retrieve(second.id).output_text == second.output_text
    assert [(i.type, i.role) for i in client.responses.input_items.list(second.id).data] == [
        ("message", "user"), ("message", "assistant"), ("message", "user")]
    assert client.responses.delete(second.id) is None
    for gone in (second.id, whole.id):  # deleted; never stored
        with pytest.raises(openai.NotFoundError) as caught:
            client.responses.retrieve(gone)
        assert caught.value.body["code"] == "not_found" and gone in caught.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(second.id)


def test_responses_function_call_output_continues_from_the_stored_call(client):
    ask = {"model": MODEL, "tools": [RESPONSES_TOOL], "max_output_tokens": 60, "temperature": 0}
    call = client.responses.create(**ask, input="Weather in Paris?", tool_choice="required")
    (item,) = call.output
    answer = client.responses.create(**ask, previous_response_id=call.id, input=[
        {"type": "function_call_output", "call_id": item.call_id, "output": "18 C and sunny"}])
    assert answer.status == "completed" and [i.type for i in answer.output] == ["message"] and answer.output_text


@pytest.mark.parametrize("kwargs, param", [
    ({"previous_response_id": "resp_1"}, "previous_response_id"), ({"conversation": "conv_1"}, "conversation"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"), ({"text": {"format": {"type": "xml"}}}, "text.format"),
    ({"input": [{"type": "function_call_output", "call_id": "call_9", "output": "x"}]}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input"),
    ({"temperature": -1}, "temperature"),
])
def test_responses_bad_requests_are_openai_shaped_400s(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**{"model": MODEL, "input": "hi", "max_output_tokens": 3, **kwargs})
    assert caught.value.body["param"] == param and caught.value.body["message"]


# --- any path --------------------------------------------------------------------------------------------------
def test_unknown_endpoint_is_a_404_saying_so(server):
    response = httpx.post(server.base_url + "/v1/nothing", json={}, timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "The endpoint POST /v1/nothing does not exist on this server."
    assert httpx.get(server.base_url + "/api/nothing", timeout=30).json() == {
        "error": "The endpoint GET /api/nothing does not exist on this server."}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat", "/v1/messages"])
def test_a_body_that_is_not_json_is_a_400_saying_so(server, path):
    response = httpx.post(server.base_url + path, content=b"model=smollm2-135m",
                          headers={"content-type": "text/plain"}, timeout=30)
    assert response.status_code == 400 and "Content-Type: application/json" in response.text


@pytest.mark.parametrize("path, shape", [("/api/show", lambda b: set(b) == {"error"}),
                                         ("/api/chat", lambda b: set(b) == {"error"}),
                                         ("/v1/messages", lambda b: b["type"] == "error" and b["error"]["message"]),
                                         ("/v1/responses", lambda b: b["error"]["code"] == "invalid_json")])
def test_an_empty_json_body_answers_in_the_protocols_error_shape(server, path, shape):
    # found by the fuzz suite: an empty body was answered in OpenAI's shape on every path
    response = httpx.post(server.base_url + path, content=b"", headers={"content-type": "application/json"},
                          timeout=30)
    assert response.status_code == 400 and shape(response.json()), response.text


# --- serve --ollama --------------------------------------------------------------------------------------------
def test_serve_ollama_also_answers_on_the_ollama_port():
    from tests.ondevice.server.conftest import free_port, start_server, stop_server

    port = free_port()
    s = start_server("--ollama", "--ollama-port", str(port))
    try:
        on_ollama_port = ollama.Client(host=f"http://127.0.0.1:{port}", timeout=120)
        deadline = time.monotonic() + 60  # the second listener starts just after the first answers /health
        while True:
            try:
                listed = on_ollama_port.list()
                break
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert [m.model for m in listed.models] == [MODEL]
        reply = on_ollama_port.chat(model=MODEL, messages=QUESTION, options={"temperature": 0, "num_predict": 20})
        assert reply.message.content == PARIS
        assert httpx.get(s.base_url + "/api/tags", timeout=30).json()["models"][0]["model"] == MODEL
    finally:
        stop_server(s)
    assert s.process.returncode in (0, -15)  # SIGTERM stops both listeners (uvicorn re-raises it); no kill needed


def test_serve_ollama_on_a_taken_port_is_one_line_and_exit_2():
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "ondevice", "serve", "--ollama", "--ollama-port", str(port)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "already in use" in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --- structured output holds through every protocol ------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 17, 42])
def test_a_hidden_schema_gives_the_same_valid_answer_through_every_protocol(server, index):
    """A few of bench.structured's 50 schemas (all 50: `ondevice bench protocol-structured`, docs/server.md)."""
    from bench.protocol_structured import _bodies, _text
    from bench.structured import _validator
    from bench.structured_schemas import SCHEMAS

    name, prompt, schema = SCHEMAS[index]
    texts = []
    for path, body, kind in _bodies(MODEL, prompt, schema, 200, index).values():
        response = httpx.post(server.base_url + path, json=body, timeout=120)
        assert response.status_code == 200, response.text
        texts.append(_text(kind, response.json()))
    assert len(set(texts)) == 1, texts
    assert not list(_validator(schema).iter_errors(json.loads(texts[0]))), name


# --- /v1/rerank ------------------------------------------------------------------------------------------------
def test_rerank_orders_documents_by_the_local_reranker(server):
    import httpx

    from ondevice.rag.rerank import rerank

    docs = ["The dentist appointment is on Tuesday 9 April at 10:00.", "The museum reopens in the autumn.",
            {"text": "Bread needs flour, water, salt and yeast."}]
    reply = httpx.post(server.base_url + "/v1/rerank", json={"model": "smollm2-135m", "query": "When is the dentist?",
                                                             "documents": docs, "top_n": 2}, timeout=300).json()
    assert [r["index"] for r in reply["results"]] == [i for i, _ in rerank(
        "When is the dentist?", [d if isinstance(d, str) else d["text"] for d in docs], top_n=2)]
    scores = [r["relevance_score"] for r in reply["results"]]
    assert len(scores) == 2 and scores == sorted(scores, reverse=True)
    assert reply["results"][0]["document"]["text"] in (docs[0], docs[1], docs[2]["text"])


def test_rerank_bad_bodies_are_openai_shaped_400s(server):
    import httpx

    for body in ({"model": "smollm2-135m", "query": "q", "documents": "not a list"},
                 {"model": "smollm2-135m", "query": "q", "documents": [{"no_text": 1}]},
                 {"model": "smollm2-135m", "query": "", "documents": ["a"]}):
        reply = httpx.post(server.base_url + "/v1/rerank", json=body, timeout=60)
        assert reply.status_code == 400 and reply.json()["error"]["message"]
