"""Structured output through every protocol: the 50 schemas of `bench.structured_schemas` sent to a running server
as chat completions `response_format`, Responses `text.format`, Ollama `format` and Anthropic
`output_config.format`, each answer checked with
jsonschema (Draft 2020-12 with its format checker, as `ondevice bench structured`).

    ondevice bench protocol-structured --url http://127.0.0.1:8080 [--limit 50] [--max-tokens 256]

The schema is "hidden": the prompt says only "Answer in JSON.", so validity comes from the grammar the request
carries, whichever protocol carried it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from bench.structured import _validator
from bench.structured_schemas import SCHEMAS
from ondevice.errors import InvalidInput


def _bodies(model: str, prompt: str, schema: dict, max_tokens: int, seed: int) -> dict[str, tuple[str, dict, str]]:
    """protocol -> (path, body, how to read the answer's text)."""
    messages = [{"role": "user", "content": f"{prompt} Answer in JSON."}]
    return {
        "chat completions": ("/v1/chat/completions", {
            "model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "seed": seed,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}},
            "chat"),
        "responses": ("/v1/responses", {
            "model": model, "input": messages, "max_output_tokens": max_tokens, "temperature": 0, "seed": seed,
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema}}}, "responses"),
        "ollama /api/chat": ("/api/chat", {
            "model": model, "messages": messages, "stream": False, "format": schema,
            "options": {"temperature": 0, "seed": seed, "num_predict": max_tokens}}, "ollama"),
        "anthropic messages": ("/v1/messages", {  # temperature defaults to 0 here; Anthropic has no seed
            "model": model, "messages": messages, "max_tokens": max_tokens,
            "output_config": {"format": {"type": "json_schema", "schema": schema}}}, "anthropic"),
    }


def _text(kind: str, reply: dict) -> str:
    if kind == "chat":
        return reply["choices"][0]["message"]["content"]
    if kind == "responses":
        return "".join(part["text"] for item in reply["output"] if item["type"] == "message"
                       for part in item["content"])
    if kind == "anthropic":
        return "".join(block["text"] for block in reply["content"] if block["type"] == "text")
    return reply["message"]["content"]


@dataclass
class ProtocolCheck:
    """How many answers validated per protocol, the first error of each invalid one, and how many schemas got the
    same text through every protocol."""

    schemas: int
    valid: dict[str, int] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    identical: int = 0


def check(url: str = "http://127.0.0.1:8080", model: str = "smollm2-135m", limit: int = len(SCHEMAS),
          max_tokens: int = 256) -> ProtocolCheck:
    """Send the first `limit` schemas through every protocol to the server at `url` and validate each answer."""
    result = ProtocolCheck(min(limit, len(SCHEMAS)))
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            for i, (name, prompt, schema) in enumerate(SCHEMAS[:limit]):
                texts = []
                for protocol, (path, body, kind) in _bodies(model, prompt, schema, max_tokens, i).items():
                    response = client.post(path, json=body)
                    response.raise_for_status()
                    text = _text(kind, response.json())
                    texts.append(text)
                    try:
                        errors = list(_validator(schema).iter_errors(json.loads(text)))
                    except json.JSONDecodeError:
                        errors = ["not JSON"]
                    result.valid[protocol] = result.valid.get(protocol, 0) + (not errors)
                    if errors:
                        result.failures.setdefault(protocol, []).append(f"{name}: {str(errors[0])[:100]}")
                result.identical += len(set(texts)) == 1
    except httpx.HTTPError as exc:
        raise InvalidInput(f"{url}: {exc} (start one with `ondevice serve {model}`)") from None
    return result


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("protocol-structured")
