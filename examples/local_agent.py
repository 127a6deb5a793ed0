"""A small local agent: the embedded model answers questions by calling two real tools, fully offline.

    python examples/local_agent.py                                  # sample questions over examples/sample_notes
    python examples/local_agent.py --question "What is 12 * (3 + 4)?"

Tools: `search_notes` searches a RAG index of the example notes (ondevice.rag, hybrid BM25 + vector search) and
`calculator` evaluates arithmetic exactly. Each question runs as OpenAI-style tool calling through `Model.chat`:
first the model must call a tool (`tool_choice="required"`; the call's name and arguments are constrained to the
tools' JSON Schemas, so they always parse and validate), the program runs the tool, and the result goes back as a
`role: "tool"` message; then the model answers (`tool_choice="none"`). A 135M model picks tools and phrases
answers weakly; the loop is the same for a larger model (`--model`).
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import tempfile
from pathlib import Path

import ondevice
from ondevice.rag import Index

SAMPLE = Path(__file__).parent / "sample_notes"
QUESTIONS = ["What is 45 + 17?", "Where do we stay in Lisbon?"]

TOOLS = [
    {"type": "function", "function": {
        "name": "search_notes",
        "description": "Search the user's personal notes (garden, health, home, trips, recipes, insurance).",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "minLength": 3, "maxLength": 60}}, "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression exactly, e.g. 12 * (3 + 4). Use it for any math.",
        "parameters": {"type": "object", "properties": {
            "expression": {"type": "string", "pattern": "^[0-9+*/(). -]{1,40}$"}}, "required": ["expression"]}}},
]

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculator(expression: str) -> str:
    """Arithmetic on numbers with + - * / and parentheses (no names, no calls: safe to run on model output)."""
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.operand))
        raise ValueError("not arithmetic")
    try:
        result = value(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"
    return str(int(result) if float(result).is_integer() else round(result, 6))


def search_notes(index: Index, query: str, question: str) -> str:
    """The model's query together with the user's question: a 135M model often writes a weak query (even the
    tool's own name), and the question keeps the search on topic."""
    hits = index.search(f"{query} {question}", k=2)
    if not hits:
        return "nothing found"
    return "\n".join(f"[{Path(h.path).name}] {h.text.strip()[:300]}" for h in hits)


def ask(llm, index: Index, question: str, max_tokens: int) -> str:
    """One question: a required tool call, the tool's result, then the answer."""
    messages = [{"role": "user", "content": question}]
    step = llm.chat(messages, tools=TOOLS, tool_choice="required", max_tokens=80)
    if not step.tool_calls:  # max_tokens cut the call short: answer without a tool
        print(f"  (no complete tool call: {step.text[:80]!r})")
        return llm.chat(messages, max_tokens=max_tokens).text.strip()
    messages.append({"role": "assistant", "content": None, "tool_calls": [c.to_openai() for c in step.tool_calls]})
    for call in step.tool_calls:
        args = call.args
        result = calculator(args["expression"]) if call.name == "calculator" \
            else search_notes(index, args["query"], question)
        print(f"  -> {call.name}({json.dumps(args)}) = {result.splitlines()[0][:100]}")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    answer = llm.chat(messages, tools=TOOLS, tool_choice="none", max_tokens=max_tokens)
    return answer.text.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--question", action="append", help="question to ask (repeatable)")
    parser.add_argument("--notes", type=Path, default=SAMPLE, help="folder the search tool indexes")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Index(Path(tmp) / "notes.sqlite") as index:
        summary = index.add([args.notes])
        print(f"indexed {summary.added} files ({summary.total_chunks} chunks)")
        with ondevice.load(args.model, n_ctx=2048) as llm:
            for question in args.question or QUESTIONS:
                print(f"\nQ: {question}")
                print(f"A: {ask(llm, index, question, args.max_tokens)}")


if __name__ == "__main__":
    main()
