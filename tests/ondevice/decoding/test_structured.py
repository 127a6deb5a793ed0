"""Structured output: `schema=` makes the answer parse and validate, enforced token by token on the real SmolLM2
(GGUF) and on its ONNX export; what the engine cannot enforce is refused by name."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import BaseModel, Field

from ondevice.errors import InvalidInput
from ondevice.decoding.structured import close_objects, schema_grammar

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120}},
          "required": ["name", "age"]}
CITY = {"type": "object", "properties": {"city": {"enum": ["Paris", "Lyon", "Nice"]},
                                         "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
        "required": ["city", "zip"]}
ASK = [{"role": "user", "content": "Describe a fictional person."}]


class Pet(BaseModel):
    name: str = Field(max_length=20)
    species: str = Field(pattern="^(cat|dog|fish)$")
    legs: int = Field(ge=0, le=4)


@pytest.mark.parametrize("schema, keyword", [
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
    ({"not": {"type": "string"}}, "not"),
])
def test_unenforceable_keyword_is_an_error_naming_it(schema, keyword):
    with pytest.raises(InvalidInput, match=f"keyword {keyword} cannot be enforced"):
        schema_grammar(schema)


def test_bad_schemas_are_clear_errors():
    with pytest.raises(InvalidInput, match="look-around"):
        schema_grammar({"type": "string", "pattern": "^(?=a)b$"})
    with pytest.raises(InvalidInput, match="Unknown format: bogus"):
        schema_grammar({"type": "string", "format": "bogus"})
    with pytest.raises(InvalidInput, match="does not exist"):
        schema_grammar({"$ref": "#/$defs/missing"})
    with pytest.raises(InvalidInput, match="pydantic model class or \"json\""):
        schema_grammar("yaml")


def test_closing_objects_only_narrows_what_validates():
    closed = close_objects({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {}}},
                                                             "c": {"allOf": [{"properties": {"z": {}}}]}},
                            "$defs": {"x": {"properties": {"y": {}}}}})
    assert closed["additionalProperties"] is False is closed["properties"]["a"]["additionalProperties"]
    assert closed["$defs"]["x"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["c"]["allOf"][0]  # parts of allOf stay open
    assert close_objects({"type": "object"}) == {"type": "object"}  # "any object" stays any object


@pytest.mark.parametrize("schema, temperature", [(PERSON, 0.0), (CITY, 0.8)])
def test_gguf_answer_validates(smollm2, schema, temperature):
    result = smollm2.chat(ASK, schema=schema, max_tokens=48, temperature=temperature, seed=7)
    assert result.finish_reason == "stop"
    jsonschema.validate(json.loads(result.text), schema)
    assert result.parsed == json.loads(result.text)


def test_streamed_answer_is_the_same_as_the_plain_one_at_temperature_zero(smollm2):
    stream = smollm2.chat(ASK, schema=PERSON, max_tokens=48, stream=True)
    text = "".join(stream)
    assert text == stream.result.text == smollm2.chat(ASK, schema=PERSON, max_tokens=48).text
    assert stream.result.parsed == json.loads(text)


def test_a_complete_answer_ends_without_a_forward_pass_for_end_of_text(smollm2, monkeypatch):
    """Once the grammar is complete only end-of-text may follow: the loop stops there instead of evaluating the
    last token just to sample the forced end; the answer is the one the confirming pass gives."""
    backend = smollm2.backend
    feeds = []
    real_feed = backend._feed
    monkeypatch.setattr(backend, "_feed", lambda tokens: (feeds.append(list(tokens)), real_feed(tokens))[1])
    result = smollm2.chat(ASK, schema=PERSON, max_tokens=48)
    assert result.finish_reason == "stop"
    assert len(feeds) == result.timings.completion_tokens - 1  # every token fed but the last one

    class Unaware:  # the same sampler without `complete`: the loop must confirm the end with one more pass
        def __init__(self, inner):
            self.inner = inner

        def sample(self):
            return self.inner.sample()

        def close(self):
            self.inner.close()

    real_sampler_for = backend._sampler_for
    monkeypatch.setattr(backend, "_sampler_for", lambda params: Unaware(real_sampler_for(params)))
    feeds.clear()
    confirmed = smollm2.chat(ASK, schema=PERSON, max_tokens=48)
    assert confirmed.text == result.text and confirmed.finish_reason == "stop"
    assert len(feeds) == result.timings.completion_tokens


def test_pydantic_class_gives_an_instance(smollm2):
    result = smollm2.chat([{"role": "user", "content": "Describe a pet."}], schema=Pet, max_tokens=40)
    assert isinstance(result.parsed, Pet) and result.parsed.species in ("cat", "dog", "fish")


def test_generate_with_any_json_object(smollm2):
    result = smollm2.generate("A JSON object describing the colour red:", schema="json", max_tokens=32)
    assert result.text.startswith("{")
    if result.finish_reason == "stop":
        assert isinstance(result.parsed, dict) and result.parsed == json.loads(result.text)
    else:  # cut short by max_tokens: a JSON prefix, and nothing parsed
        assert result.parsed is None


def test_bad_schema_fails_before_decoding(smollm2):
    with pytest.raises(InvalidInput, match="uniqueItems"):
        smollm2.chat(ASK, schema={"type": "array", "uniqueItems": True})


@pytest.fixture(scope="module")
def tiny_onnx(tiny_onnx_fp32_dir):
    """A tiny random-weight llama exported to ONNX: its answers are noise, so only the grammar makes them valid."""
    import ondevice

    model = ondevice.load(tiny_onnx_fp32_dir, n_ctx=256)
    yield model
    model.close()


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_onnx_answer_validates(tiny_onnx, temperature):
    for schema in (PERSON, CITY):
        result = tiny_onnx.chat(ASK, schema=schema, max_tokens=120, temperature=temperature, seed=3)
        assert result.finish_reason == "stop", result.text
        jsonschema.validate(json.loads(result.text), schema)


def test_cli_run_with_schema_file(tmp_path):
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    schema_file = tmp_path / "city.json"
    schema_file.write_text(json.dumps(CITY))
    result = CliRunner().invoke(cli, ["run", "smollm2-135m", "A French city and its zip code.", "--schema",
                                      str(schema_file), "-n", "32", "--ctx", "256", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    jsonschema.validate(json.loads(data["text"]), CITY)
    assert data["parsed"] == json.loads(data["text"])


@pytest.mark.parametrize("content, message", [('{"type": "array", "uniqueItems": true}', "keyword uniqueItems"),
                                              ("{not json", "is not JSON")])
def test_cli_bad_schema_is_one_line_and_exit_code_2(tmp_path, content, message):
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    schema_file = tmp_path / "bad.json"
    schema_file.write_text(content)
    result = CliRunner().invoke(cli, ["run", "smollm2-135m", "hi", "--schema", str(schema_file)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


TREE = {"$defs": {"node": {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40},
    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
    "required": ["name", "children"]}}, "$ref": "#/$defs/node"}


def _nesting(value) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return (1 + max([_nesting(v) for v in children] + [0])) if isinstance(value, (dict, list)) else 0


def test_a_recursive_schema_stops_nesting_at_the_limit(smollm2):
    from ondevice.decoding.structured import ConstrainedSampler

    ask = [{"role": "user", "content": "A family tree of twenty generations: every person has exactly one child."}]
    result = smollm2.chat(ask, schema=TREE, max_tokens=200, temperature=0)
    tree = json.loads(result.text)
    jsonschema.validate(tree, TREE)
    assert _nesting(tree) == ConstrainedSampler.MAX_NESTING  # it wanted to go deeper (20 levels without the limit)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_onnx_recursive_schema_answer_ends_and_validates(tiny_onnx, temperature):
    result = tiny_onnx.chat(ASK, schema=TREE, max_tokens=160, temperature=temperature, seed=5)
    assert result.finish_reason == "stop", result.text
    jsonschema.validate(json.loads(result.text), TREE)
