"""JSON schemas from hostile users (issue 23): each is refused with a line naming the limit (ours, or llguidance's
own, said as such), checked before llguidance sees it, or compiles to what it means. Never a crash (llguidance 1.9.1
segfaults on a ~3,000-long $ref chain), a RecursionError, or a RuntimeError mid-answer."""

from __future__ import annotations

import json
import threading

import pytest

import llguidance
from ondevice.errors import InvalidInput
from ondevice.decoding.schema_check import MAX_PATTERN_REPEAT, MAX_REF_CHAIN, MAX_SCHEMA_DEPTH
from ondevice.decoding.structured import ANY_JSON, JSON_OPTIONS, Grammar, load_schema, schema_grammar


def ref_chain(n: int) -> dict:
    """n definitions, each only a $ref to the next, the last an integer."""
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(n)}
    defs[f"d{n}"] = {"type": "integer"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def nested(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


NEVER_ENDS = {"$defs": {"n": {"type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}, "required": ["x"]}},
              "$ref": "#/$defs/n"}


@pytest.mark.parametrize("schema, message", [
    (ref_chain(3000), f"chain of more than {MAX_REF_CHAIN} \\$refs"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "refers back to itself"),
    ({"type": "string", "pattern": "^a{1000000}$"}, f"over the limit of {MAX_PATTERN_REPEAT}"),
    ({"type": "string", "pattern": "^(a{100}){100}$"}, "repeats up to 10000 times"),
    (NEVER_ENDS, "no finite answer"),
    ({"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}, "no finite answer"),
    ({"type": "array", "items": {"$ref": "#"}, "minItems": 1}, "no finite answer"),
    (nested(600), f"nested deeper than {MAX_SCHEMA_DEPTH} levels"),
    ({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(10_000)}}, "256 KiB limit"),
    ({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(1000)}},
     "llguidance says: initial lexer configuration"),
    ({"enum": [{1, 2}]}, "not JSON data"),
    ({"const": float("nan")}, "not JSON data"),
    ({"type": "string", "description": "\ud800"}, "lone surrogate"),
])
def test_hostile_schemas_are_refused_naming_the_limit(schema, message):
    with pytest.raises(InvalidInput, match=message):
        schema_grammar(schema)


def test_a_self_referencing_dict_is_refused_not_a_recursion_error():
    schema: dict = {"type": "object", "properties": {}}
    schema["properties"]["me"] = schema
    with pytest.raises(InvalidInput, match="contains itself"):
        schema_grammar(schema)


def test_a_deep_or_huge_schema_file_is_refused(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)  # deeper than Python's JSON parser goes
    with pytest.raises(InvalidInput, match="nested deeper than"):
        load_schema(deep)
    deep.write_text("{\"a\": " * 200_000 + "1" + "}" * 200_000)
    with pytest.raises(InvalidInput, match="over the 256 KiB limit"):
        load_schema(deep)
    with pytest.raises(InvalidInput, match="not a regular file"):
        load_schema(tmp_path)


def test_what_stays_under_the_limits_compiles():
    schema_grammar(ref_chain(MAX_REF_CHAIN - 1))
    schema_grammar({"type": "string", "pattern": f"^a{{{MAX_PATTERN_REPEAT}}}$"})
    schema_grammar(nested(MAX_SCHEMA_DEPTH // 3))  # each level is 2 JSON levels (the object, its properties)
    schema_grammar({"$defs": {"n": {"type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}}},
                    "$ref": "#/$defs/n"})  # recursion through an optional property can end


def test_compilation_does_not_depend_on_the_callers_stack():
    """The chain llguidance needs most stack for, compiled from a thread with a 256 KiB stack: compilation runs
    on its own 256 MiB-stack thread, so this neither crashes nor fails."""
    result = {}

    def compile_it():
        try:
            result["grammar"] = schema_grammar(ref_chain(MAX_REF_CHAIN - 1))
        except BaseException as exc:  # reported below
            result["error"] = exc

    old = threading.stack_size(256 << 10)
    try:
        worker = threading.Thread(target=compile_it)
        worker.start()
    finally:
        threading.stack_size(old)
    worker.join()
    assert "error" not in result and isinstance(result["grammar"], Grammar)


@pytest.mark.parametrize("schema", [{"$ref": "#"}, {}, True, {"title": "anything", "$ref": "#"}])
def test_a_schema_every_json_satisfies_is_any_json(schema):
    grammar = schema_grammar(schema)
    assert grammar.source == schema_grammar({}).source
    expected = llguidance.LLMatcher.grammar_from_json_schema(ANY_JSON, defaults=JSON_OPTIONS)
    assert grammar.source == expected


def test_any_json_answers_json(smollm2):
    result = smollm2.generate("A JSON list of three numbers:", schema={"$ref": "#"}, max_tokens=40)
    assert result.text
    if result.finish_reason == "stop":
        assert result.parsed == json.loads(result.text)


@pytest.mark.parametrize("schema", [{"type": "integer", "minimum": 9007199254740993},
                                    {"type": "integer", "exclusiveMaximum": -9007199254740993}])
def test_no_bound_the_user_did_not_write_makes_a_schema_unsatisfiable(schema):
    schema_grammar(schema)  # before: "minimum (9007199254740992) is greater than maximum (9007199254740991)"


def test_a_format_with_a_long_min_length_is_not_refused_for_a_max_length_we_added():
    try:
        schema_grammar({"type": "string", "format": "email", "minLength": 200})
    except InvalidInput as exc:  # llguidance may still refuse the combination: then in its words, not ours
        assert "maxLength" not in str(exc) and "128" not in str(exc)


def test_llguidance_stopping_mid_answer_is_invalid_input_not_runtime_error(smollm2):
    """A grammar llguidance accepts but gives up on at the first token (bypassing our checks by handing a compiled
    Grammar straight in): before, "token ... was sampled outside the mask" as a RuntimeError."""
    source = llguidance.LLMatcher.grammar_from_json_schema(NEVER_ENDS, defaults=JSON_OPTIONS)
    with pytest.raises(InvalidInput, match="llguidance stopped mid-answer"):
        smollm2.generate("JSON:", schema=Grammar(source), max_tokens=8)
    assert smollm2.generate("The capital of France is", max_tokens=3).text  # the model still answers
