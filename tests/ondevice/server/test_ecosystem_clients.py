"""The OpenAI-speaking libraries people build on, driven against the real `ondevice serve` (the session `server`
fixture): langchain-openai (chat completions and `use_responses_api=True`), litellm (completion and responses) and
instructor (Mode.TOOLS, Mode.JSON_SCHEMA). Each must give the answer the official `openai` client gets.

instructor cannot be installed beside the pinned openai through pip's resolver (every instructor release caps
`jiter<0.15`; openai 3.63 needs `jiter>=0.16`), so `make install` puts it, without its dependencies, in its own
folder `.venv/instructor-nodeps` (docs/server.md, "Clients"); these tests read it from there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.ondevice.server.conftest import QUESTION

MODEL = "smollm2-135m"
PARIS = "The capital of France is Paris."
ASK_JSON = "What is the capital of France? JSON."
# litellm fetches its model cost map from the internet at import unless told to use the copy it ships
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


class City(BaseModel):
    city: str


def get_weather(city: str) -> str:
    """Get the current weather for a city"""
    return "18 C and sunny"


@pytest.fixture(scope="module")
def reference(client) -> str:
    answer = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=20)
    assert answer.choices[0].message.content == PARIS
    return PARIS


# --- langchain-openai ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_openai(server):
    from langchain_openai import ChatOpenAI

    def make(**kwargs):
        return ChatOpenAI(base_url=server.base_url + "/v1", api_key="unused", model=MODEL, temperature=0,
                          max_retries=0, timeout=120, **{"max_tokens": 40, **kwargs})
    return make


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_langchain_invoke_and_stream(chat_openai, reference, responses_api):
    llm = chat_openai(max_tokens=20, use_responses_api=responses_api)
    messages = [("system", QUESTION[0]["content"]), ("human", QUESTION[1]["content"])]
    assert llm.invoke(messages).text == reference
    chunks = list(llm.stream(messages))
    assert "".join(chunk.text for chunk in chunks) == reference and len(chunks) > 7  # one chunk per token at least


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(chat_openai, method):
    assert chat_openai().with_structured_output(City, method=method).invoke(ASK_JSON) == City(city="Paris")


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_langchain_bind_tools(chat_openai, responses_api):
    llm = chat_openai(max_tokens=60, use_responses_api=responses_api).bind_tools([get_weather], tool_choice="any")
    (call,) = llm.invoke("Weather in Paris?").tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"}) and call["id"]


# --- litellm ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def litellm_(server):
    return lambda call, **kwargs: call(model="openai/" + MODEL, api_base=server.base_url + "/v1", api_key="unused",
                                       temperature=0, **kwargs)


def test_litellm_completion_plain_and_streamed(litellm_, reference):
    import litellm

    reply = litellm_(litellm.completion, messages=QUESTION, max_tokens=20)
    assert reply.choices[0].message.content == reference and reply.usage.completion_tokens == 7
    parts = litellm_(litellm.completion, messages=QUESTION, max_tokens=20, stream=True)
    assert "".join(part.choices[0].delta.content or "" for part in parts) == reference


def test_litellm_responses(litellm_, reference):
    import litellm

    reply = litellm_(litellm.responses, input=QUESTION[1]["content"], instructions=QUESTION[0]["content"],
                     max_output_tokens=20)
    (message,) = reply.output
    assert message.content[0].text == reference and reply.usage.output_tokens == 7


def test_litellm_tool_call(litellm_):
    import litellm

    tool = {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}}, "required": ["city"]}}}
    reply = litellm_(litellm.completion, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[tool],
                     tool_choice="required", max_tokens=60)
    (call,) = reply.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})


# --- instructor ------------------------------------------------------------------------------------------------
def _instructor():
    nodeps = Path(sys.prefix) / "instructor-nodeps"  # see the module docstring
    if nodeps.is_dir() and str(nodeps) not in sys.path:
        sys.path.append(str(nodeps))
    return pytest.importorskip("instructor", reason=f"instructor is installed by `make install` into {nodeps}")


@pytest.mark.parametrize("mode", ["TOOLS", "JSON_SCHEMA"])
def test_instructor_modes(client, mode):
    instructor = _instructor()
    patched = instructor.from_openai(client, mode=getattr(instructor.Mode, mode))
    city = patched.chat.completions.create(model=MODEL, response_model=City, max_retries=0, temperature=0,
                                          max_tokens=40, messages=[{"role": "user", "content": ASK_JSON}])
    assert isinstance(city, City) and city.city == "Paris"


def test_instructor_responses_tools(client):
    instructor = _instructor()
    patched = instructor.from_openai(client, mode=instructor.Mode.RESPONSES_TOOLS)
    city = patched.responses.create(model=MODEL, response_model=City, max_retries=0, temperature=0,
                                    max_output_tokens=40, input=[{"role": "user", "content": ASK_JSON}])
    assert isinstance(city, City) and city.city == "Paris"
