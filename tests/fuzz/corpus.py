"""The hostile inputs, generated (no fixture files of hostile data): the cases issue 23 lists, then seeded random
mutations of good inputs. Each case is JSON data a driver child process turns into the real input (markers such as
{"$deep": n} stand for values JSON text cannot carry: deep nesting, self-reference, Python sets).

Surfaces: "session" (saved chat files), "schema" (JSON Schemas), "tools" (tool definitions, tool_choice, messages),
"onnx" (onnxruntime-genai folders), "body" (raw server request bodies), "protocol" (bodies for the Ollama,
Anthropic Messages and Responses endpoints, answered in each protocol's own error shape).
"""

from __future__ import annotations

import copy
import json
import random

# Values a hostile user puts where another type belongs (JSON data; "\ud800" is a lone surrogate).
HOSTILE = [None, True, False, 0, -1, 1.5, 2 ** 31, 10 ** 12, -(10 ** 12), "", "x", "\ud800", [], [1, "a"], {},
           {"a": 1}, {"$deep": 2000}, "x" * 5000, [None] * 50, 1e308]

FULL_SIZES = {"session": 200, "schema": 220, "tools": 200, "onnx": 120, "body": 200, "protocol": 200}  # 1140
FAST_SIZES = {"session": 24, "schema": 28, "tools": 26, "onnx": 14, "body": 30, "protocol": 24}       # 146


def _pick(rng: random.Random) -> object:
    return copy.deepcopy(rng.choice(HOSTILE))  # a copy: later mutations must not change the pool


# --- sessions ------------------------------------------------------------------------------------------------------
SESSION_FIELDS = ["version", "model", "model_key", "backend", "n_ctx", "kv_type", "messages", "tokens", "state_bytes",
                  "state_sha256"]


def session_cases(n: int, seed: int = 23) -> list[dict]:
    """Operations on a good saved session (made by the driver): header fields replaced, the state's cells edited
    with a consistent checksum, truncation, bit flips, trailing bytes, special files."""
    listed = [
        {"op": "header", "field": "messages", "value": 5}, {"op": "header", "field": "tokens", "value": ["1", "2"]},
        {"op": "header", "field": "tokens", "value": None}, {"op": "header", "field": "tokens", "value": {"a": 1}},
        {"op": "deep_header", "depth": 200_000}, {"op": "fifo"}, {"op": "dir"}, {"op": "none_path"},
        {"op": "cell", "index": 1, "field": "pos", "value": 100_000}, {"op": "cell", "index": 2, "field": "seq",
                                                                       "value": 99},
        {"op": "append", "bytes": 16, "fix": False}, {"op": "append", "bytes": 64, "fix": True},
        {"op": "nan", "where": "k"}, {"op": "nan", "where": "v"}, {"op": "save_missing_dir"}, {"op": "save_onto_dir"},
    ]
    rng = random.Random(seed)
    cases = list(listed)
    while len(cases) < n:
        kind = rng.randrange(6)
        if kind == 0:
            cases.append({"op": "header", "field": rng.choice(SESSION_FIELDS), "value": _pick(rng)})
        elif kind == 1:
            cases.append({"op": "truncate", "fraction": rng.random()})
        elif kind == 2:
            cases.append({"op": "flip", "fraction": rng.random(), "bit": rng.randrange(8)})
        elif kind == 3:
            cases.append({"op": "cell", "index": rng.randrange(8), "field": rng.choice(["pos", "n_seq", "seq"]),
                          "value": rng.choice([-1, 0, 1, 7, 99, 2 ** 31 - 1, -(2 ** 31)])})
        elif kind == 4:
            cases.append({"op": "state_i32", "fraction": rng.random(), "value": rng.choice([0, -1, 2 ** 31 - 1])})
        else:
            cases.append({"op": "random", "size": rng.choice([0, 1, 17, 25, 100, 4096]), "seed": rng.randrange(10 ** 6),
                          "magic": rng.random() < 0.5})
    return cases[:n]


# --- schemas -------------------------------------------------------------------------------------------------------
def ref_chain(n: int) -> dict:
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(n)}
    defs[f"d{n}"] = {"type": "integer"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


GOOD_SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"]},
    {"type": "array", "items": {"type": "number"}, "maxItems": 3},
    {"type": "string", "enum": ["red", "green"]},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 5}}}},
]
KEYWORDS = ["type", "properties", "required", "items", "enum", "const", "pattern", "minimum", "maximum", "minLength",
            "maxLength", "format", "$ref", "anyOf", "oneOf", "allOf", "additionalProperties", "$defs", "minItems"]


def schema_cases(n: int, seed: int = 23) -> list[dict]:
    never_ends = {"$defs": {"n": {"type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}, "required": ["x"]}},
                  "$ref": "#/$defs/n"}
    listed = [
        {"schema": ref_chain(3000)}, {"schema": {"type": "string", "pattern": "^a{1000000}$"}},
        {"schema": never_ends}, {"schema": {"type": "object", "properties": {f"p{i}": {"type": "integer"}
                                                                           for i in range(10_000)}}},
        {"schema": {"$deep": 600, "kind": "schema"}}, {"schema": {"$self": True}}, {"schema": {"$ref": "#"}},
        {"schema": {"type": "integer", "minimum": 9007199254740993}},
        {"schema": {"type": "string", "format": "email", "minLength": 200}},
        {"schema": {"$set": [1, 2]}}, {"schema": True}, {"schema": 5}, {"schema": "yaml"},
        {"file": "deep", "depth": 200_000}, {"file": "bytes", "content": "\udcff\udcfe{"}, {"file": "missing"},
    ]
    rng = random.Random(seed)
    cases = list(listed)
    while len(cases) < n:
        schema = json.loads(json.dumps(rng.choice(GOOD_SCHEMAS)))
        for _ in range(rng.randrange(1, 4)):
            target = schema
            if isinstance(schema.get("properties"), dict) and schema["properties"] and rng.random() < 0.5:
                target = schema["properties"][rng.choice(list(schema["properties"]))]
                if not isinstance(target, dict):
                    break
            key = rng.choice(KEYWORDS)
            roll = rng.random()
            if roll < 0.5:
                target[key] = _pick(rng)
            elif roll < 0.7:
                target[key] = rng.choice(["#", "#/$defs/missing", "#/properties", "http://x/y.json", "#/$defs/d0"])
            elif roll < 0.85:
                target["pattern"] = rng.choice(["^(a+)+$", "[", "^a{2,1}$", "(?=a)b", "\\p{L}{9999}", "^(ab|c){5001}$",
                                                "a{4000}b{4000}"])
            else:
                target.pop(key, None)
        cases.append({"schema": schema})
    return cases[:n]


# --- tools and messages -------------------------------------------------------------------------------------------
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}


def _conversation() -> list[dict]:
    return [{"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [json.loads(json.dumps(CALL))]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 C"}]


def tools_cases(n: int, seed: int = 23) -> list[dict]:
    """{"messages", "tools", "tool_choice"} requests (markers: {"$set": [...]} for a Python set)."""
    base = {"messages": [{"role": "user", "content": "Hi"}]}
    listed = [
        {**base, "tools": 1}, {**base, "tools": True}, {**base, "tools": [TOOL], "tool_choice": {"function": "x"}},
        {**base, "tools": [TOOL], "tool_choice": {"type": "function", "function": None}},
        {"messages": _conversation()[:2] + [{"role": "tool", "tool_call_id": ["call_1"], "content": "1"}],
         "tools": [TOOL]},
        {"messages": [_conversation()[0], {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": None}]}], "tools": [TOOL]},
        {"messages": [_conversation()[0], {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": ["get_weather"], "arguments": "{}"}}]}]},
        {"messages": [_conversation()[0], {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": {"$set": [1]}}}]}]},
        {"messages": [{"role": "user", "content": "\ud800"}]},
        {"messages": _conversation(), "tools": [TOOL]},
    ]
    rng = random.Random(seed)
    cases = list(listed)
    while len(cases) < n:
        request = {"messages": _conversation(), "tools": [json.loads(json.dumps(TOOL))], "tool_choice": "auto"}
        for _ in range(rng.randrange(1, 3)):
            where = rng.randrange(7)
            messages = request["messages"] if isinstance(request["messages"], list) else []
            if where == 0:
                request["tools"] = _pick(rng)
            elif where == 1:
                request["tool_choice"] = rng.choice([_pick(rng), {"type": "function", "function": _pick(rng)},
                                                     {"function": {"name": "nope"}}, "required", "none"])
            elif where == 2 and isinstance(request["tools"], list) and request["tools"]:
                request["tools"][0]["function"][rng.choice(["name", "description", "parameters"])] = _pick(rng)
            elif where == 3 and messages and isinstance(messages[-1], dict):
                message = rng.choice([m for m in messages if isinstance(m, dict)])
                message[rng.choice(["role", "content", "tool_calls", "tool_call_id"])] = _pick(rng)
            elif where == 4 and len(messages) > 1 and isinstance(messages[1], dict):
                calls = messages[1].get("tool_calls")
                call = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else {}
                if isinstance(call.get("function"), dict):
                    call["function"][rng.choice(["name", "arguments"])] = _pick(rng)
            elif where == 5:
                request["messages"] = rng.choice([_pick(rng), [], [_pick(rng)]])
            elif messages:
                messages.insert(rng.randrange(len(messages) + 1),
                                {"role": rng.choice(["user", "tool", "assistant", "developer", "x"]),
                                 "content": _pick(rng)})
        cases.append(request)
    return cases[:n]


# --- ONNX folders ---------------------------------------------------------------------------------------------------
GENAI_KEYS = [("model", "context_length"), ("model", "vocab_size"), ("model", "eos_token_id"),
              ("model", "bos_token_id"), ("decoder", "head_size"), ("decoder", "hidden_size"),
              ("decoder", "num_attention_heads"), ("decoder", "num_hidden_layers"), ("decoder", "num_key_value_heads"),
              ("decoder", "filename"), ("decoder", "inputs"), ("decoder", "outputs"), ("search", "max_length")]


def onnx_cases(n: int, seed: int = 23) -> list[dict]:
    """Edits of a good tiny onnxruntime-genai folder: genai_config.json values, whole files, config.json."""
    listed = [
        {"edit": "genai", "path": ["decoder", "head_size"], "value": 1_000_000},
        {"edit": "genai", "path": ["decoder", "num_hidden_layers"], "value": 1_000_000_000},
        {"edit": "genai", "path": ["model", "context_length"], "value": 10 ** 12},
        {"edit": "genai", "path": ["model", "context_length"], "value": "512"},
        {"edit": "genai", "path": ["model", "context_length"], "value": None},
        {"edit": "genai", "path": ["decoder", "inputs"], "value": {"input_ids": "tokens"}},
        {"edit": "file", "name": "genai_config.json", "text": "[1, 2]"},
        {"edit": "file", "name": "genai_config.json", "bytes": "ff fe 00"},
        {"edit": "drop_model"}, {"edit": "delete", "name": "genai_config.json"},
        {"edit": "file", "name": "config.json", "text": "{\"num_attention_heads\": \"four\"}"},
        {"edit": "file", "name": "ondevice_onnx.json", "text": "{\"n_params\": [1]}"},
        {"edit": "file", "name": "model.onnx", "text": "not a model"},
    ]
    rng = random.Random(seed)
    cases = list(listed)
    while len(cases) < n:
        section, key = rng.choice(GENAI_KEYS)
        value = rng.choice([_pick(rng), rng.choice([0, 1, 3, 7, 100, 4096, 2 ** 31, 2 ** 40]), "%d"])
        cases.append({"edit": "genai", "path": [section, key], "value": value})
    return cases[:n]


# --- raw server bodies ---------------------------------------------------------------------------------------------
def body_cases(n: int, seed: int = 23) -> list[dict]:
    """Raw bytes for /v1/chat/completions and /v1/completions (as latin-1 text in the case)."""
    good = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    raw = json.dumps(good)
    listed = [raw[:20], "", "[]", "5", "null", "\"x\"", "{" * 100_000, "[" * 100_000, "\xff\xfe{}",
              raw.replace("Hi", "\\ud800"), raw.replace("Hi", "\\udc00\\ud800"), raw + "garbage",
              "{\"model\": \"smollm2-135m\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 1e400}",
              "{\"model\": \"smollm2-135m\", \"prompt\": \"\\ud800\", \"max_tokens\": 2}"]
    rng = random.Random(seed)
    cases = [{"path": "/v1/completions" if "prompt" in b else "/v1/chat/completions", "body": b} for b in listed]
    # /v1/rag/query (the fuzz server has no index: a well-formed body is a 400 too, after the same validation)
    cases += [{"path": "/v1/rag/query", "body": json.dumps(b).replace("{\"$deep\": 2000}", "[[[]]]")} for b in (
        {"query": "When is the dentist?", "rerank": "yes"}, {"query": "When is the dentist?", "rerank": {"$deep": 2000}},
        {"query": "When is the dentist?", "re_rank": True}, {"query": "\ud800", "rerank": True, "k": 10 ** 12},
        {"query": "When is the dentist?", "rerank": 1e308, "mode": None}, {"rerank": True})]
    fields = ["model", "messages", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", "n", "tools",
              "tool_choice", "response_format", "logprobs", "stream_options", "max_completion_tokens", "user",
              "top_k", "min_p", "logit_bias", "frequency_penalty", "presence_penalty", "repeat_penalty",
              "functions", "function_call", "top_logprobs"]
    rerank = {"model": "smollm2-135m", "query": "When is the dentist?", "documents": ["Tuesday at ten.", "Bread."]}
    while len(cases) < n:
        roll = rng.random()
        if roll < 0.55:
            body = dict(good)
            for _ in range(rng.randrange(1, 3)):
                value = _pick(rng)
                body[rng.choice(fields)] = value if value != {"$deep": 2000} else [[[[[]]]]]
            text = json.dumps(body)
        elif roll < 0.75:  # truncated or byte-edited JSON
            text = raw[:rng.randrange(len(raw))]
            if rng.random() < 0.5 and text:
                i = rng.randrange(len(text))
                text = text[:i] + rng.choice(["\\", "\"", "}", "\x00", "\\u12", "]", "é"]) + text[i + 1:]
        elif roll < 0.8:  # /v1/rerank: every field but the (short, valid) documents hostile
            body = dict(rerank)
            for _ in range(rng.randrange(1, 3)):
                body[rng.choice(["model", "query", "top_n", "return_documents"])] = _pick(rng)
            cases.append({"path": "/v1/rerank", "body": json.dumps(body).replace("{\"$deep\": 2000}", "[[[]]]")})
            continue
        elif roll < 0.9:
            body = dict(good, response_format={"type": rng.choice(["json_schema", "json_object", "text", 5]),
                                               "json_schema": rng.choice([_pick(rng), {"name": "x", "schema":
                                                                                       _pick(rng)}])})
            text = json.dumps(body)
        else:
            text = json.dumps({"model": "smollm2-135m", "prompt": _pick(rng) if rng.random() < 0.7 else ["a", 1],
                               "max_tokens": 2})
        text = text.replace("{\"$deep\": 2000}", "[[[]]]")
        cases.append({"path": "/v1/completions" if "\"prompt\"" in text else "/v1/chat/completions", "body": text})
    return cases[:n]


# --- the other protocols' bodies (Ollama, Anthropic Messages, OpenAI Responses) ---------------------------------
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
# path -> a good body and the fields to make hostile (each protocol's own names for the same things)
PROTOCOL_BODIES = {
    "/api/chat": ({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}], "stream": False,
                   "options": {"num_predict": 2}},
                  ["model", "messages", "stream", "format", "options", "tools", "tool_choice", "keep_alive", "think",
                   "options.temperature", "options.top_p", "options.top_k", "options.num_predict", "options.num_ctx",
                   "options.stop", "options.seed", "options.repeat_penalty", "options.min_p"]),
    "/api/generate": ({"model": "smollm2-135m", "prompt": "Hi", "stream": False, "options": {"num_predict": 2}},
                      ["model", "prompt", "system", "raw", "stream", "format", "options", "suffix", "template",
                       "images", "keep_alive", "options.num_predict", "options.temperature"]),
    "/api/embed": ({"model": "minilm-l6", "input": "Hi"}, ["model", "input", "dimensions", "truncate"]),
    "/api/show": ({"model": "smollm2-135m"}, ["model", "name", "verbose"]),
    "/v1/messages": ({"model": "smollm2-135m", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]},
                     ["model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p", "top_k",
                      "stream", "tools", "tool_choice", "thinking", "output_config", "metadata"]),
    "/v1/responses": ({"model": "smollm2-135m", "input": "Hi", "max_output_tokens": 2},
                      ["model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "top_k",
                       "seed", "stream", "store", "previous_response_id", "tools", "tool_choice",
                       "parallel_tool_calls", "text", "reasoning", "conversation", "background"]),
}
# Shapes that are nearly right, which a generic mutation rarely reaches: items and blocks of the wrong kind.
PROTOCOL_LISTED = [  # path, fields merged into the good body (None: the body is the empty string)
    ("/api/show", None), ("/api/chat", None), ("/v1/messages", None), ("/v1/responses", None),
    ("/api/chat", {"messages": [{"role": "tool", "content": "x"}]}),
    ("/api/chat", {"messages": [{"role": "assistant", "tool_calls": [{"function": None}]}]}),
    ("/api/chat", {"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]}),
    ("/api/chat", {"messages": [{"role": "user", "content": "Hi", "images": ["aGk="]}]}),
    ("/api/chat", {"format": WEATHER, "tools": [{"type": "function", "function": {"name": "w", "parameters": WEATHER}}],
                   "tool_choice": "required"}),
    ("/api/chat", {"format": {"type": "object", "properties": {"a": {"$ref": "#/nope"}}}}),
    ("/api/generate", {"raw": True, "prompt": "\ud800"}),
    ("/v1/messages", {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}),
    ("/v1/messages", {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": 5}]}]}),
    ("/v1/messages", {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": None,
                                                                      "input": []}]}]}),
    ("/v1/messages", {"tools": [{"name": "w", "input_schema": WEATHER}], "tool_choice": {"type": "tool", "name": "x"}}),
    ("/v1/messages", {"output_config": {"format": {"type": "json_schema", "schema": {"type": "nonsense"}}}}),
    ("/v1/responses", {"input": [{"type": "function_call", "call_id": "c", "name": None, "arguments": 5}]}),
    ("/v1/responses", {"input": [{"type": "function_call_output", "call_id": "c", "output": ["x", 1]}]}),
    ("/v1/responses", {"input": [{"type": "message", "role": "robot", "content": "x"}]}),
    ("/v1/responses", {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
    ("/v1/responses", {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 5}}}}),
    ("/v1/responses", {"previous_response_id": "resp_" + "x" * 5000}),
    ("/v1/responses", {"tools": [{"type": "function", "name": "w", "parameters": WEATHER}],
                       "tool_choice": {"type": "function", "name": "nope"}}),
]


def protocol_cases(n: int, seed: int = 23) -> list[dict]:
    """Bodies for the protocol adapters: the listed near-misses, then seeded mutations of each protocol's good
    body (a field or an option made hostile, truncated JSON)."""
    cases = [{"path": path, "body": "" if edit is None else json.dumps({**PROTOCOL_BODIES[path][0], **edit})}
             for path, edit in PROTOCOL_LISTED]
    rng = random.Random(seed)
    paths = sorted(PROTOCOL_BODIES)
    while len(cases) < n:
        path = paths[len(cases) % len(paths)]
        good, fields = PROTOCOL_BODIES[path]
        if rng.random() < 0.85:
            body = copy.deepcopy(good)
            for _ in range(rng.randrange(1, 3)):
                field = rng.choice(fields)
                value = _pick(rng)
                value = value if value != {"$deep": 2000} else [[[[[]]]]]
                if field.startswith("options."):
                    body["options"] = {**(body.get("options") if isinstance(body.get("options"), dict) else {}),
                                       field.split(".", 1)[1]: value}
                else:
                    body[field] = value
            text = json.dumps(body)
        else:
            text = json.dumps(good)
            text = text[:rng.randrange(len(text))]
        cases.append({"path": path, "body": text.replace("{\"$deep\": 2000}", "[[[]]]")})
    return cases[:n]


GENERATORS = {"session": session_cases, "schema": schema_cases, "tools": tools_cases, "onnx": onnx_cases,
              "body": body_cases, "protocol": protocol_cases}


def corpus(full: bool) -> dict[str, list[dict]]:
    """Every surface's cases: the whole corpus (`full`) or the fast default (the listed cases first, then a
    seeded sample of the mutations)."""
    sizes = FULL_SIZES if full else FAST_SIZES
    return {surface: GENERATORS[surface](sizes[surface]) for surface in sizes}
