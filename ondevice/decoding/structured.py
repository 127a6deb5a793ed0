"""Structured output: JSON Schemas and grammars enforced token by token while decoding.

One engine serves every backend: llguidance (the library onnxruntime-genai's own guidance is built on). A schema is
compiled once into a `Grammar`; each generation gets a `TokenConstraint` that, before every sampling step, sets the
logits of tokens the grammar cannot accept to -inf, and after it advances by the token actually sampled. So the
answer is valid by construction, not by retrying (docs/structured-output.md has the measurements behind the choice).

    grammar = schema_grammar({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    constraint = grammar.constraint(vocabulary)       # vocabulary: a backend's `Vocabulary`
    constraint.apply(logits); token = sample(logits); done = constraint.accept(token)

A schema keyword the engine cannot enforce raises `InvalidInput` naming the keyword: never an answer that only
looks constrained.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ondevice.errors import InvalidInput
# Limits checked before llguidance sees a schema, and isolated compilation: ondevice/decoding/schema_check.py.
from ondevice.decoding.schema_check import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, check_schema, is_any_json, isolated

# Compact JSON (no free whitespace between tokens): a small model given flexible whitespace can spend its whole
# token budget on newlines and indentation; compact output is also fewer tokens to decode.
JSON_OPTIONS = {"whitespace_flexible": False}
ANY_JSON_OBJECT = {"type": "object"}
ANY_JSON: dict = {}  # the schema of any JSON value

_UNIMPLEMENTED = re.compile(r'Unimplemented keys: \[(.*?)\]')


def _llg():
    try:
        import llguidance
    except ImportError:  # a core dependency; only a broken install lacks it
        raise InvalidInput("structured output needs the llguidance package (pip install llguidance)") from None
    return llguidance


@dataclass(frozen=True)
class Grammar:
    """A compiled constraint: the llguidance grammar, and how to read the answer it produces.

    `schema` is the JSON Schema the answer validates against (None for grammars that are not plain JSON, such as
    tool calls); `model_class` is the pydantic class the schema came from, if any.
    """

    source: str
    kind: str = "json_schema"
    schema: dict | None = None
    model_class: type | None = None
    name: str | None = None
    call_open: str | None = None  # tool grammars: the text that opens a call (the JSON that follows is enforced)

    def constraint(self, vocabulary: "Vocabulary") -> "TokenConstraint":
        """Fresh per-generation state for this grammar over `vocabulary`."""
        return TokenConstraint(self, vocabulary)

    def finish(self, result):
        """Set `result.parsed` from its text (left None when max_tokens cut the answer short)."""
        if result.finish_reason == "stop":
            result.parsed = self.parse(result.text)
        return result

    def parse(self, text: str) -> Any:
        """The answer as Python data: the pydantic instance when the schema came from a class, else the JSON."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"the answer is not complete JSON ({exc.msg} at character {exc.pos}); "
                               f"was max_tokens too small?") from None
        if self.model_class is not None:
            return self.model_class.model_validate(value)
        return value


def _is_pydantic_class(obj: Any) -> bool:
    return isinstance(obj, type) and hasattr(obj, "model_json_schema") and hasattr(obj, "model_validate")


def check(source: str, what: str = "schema") -> None:
    """Raise InvalidInput (naming the keyword where it is one) if llguidance cannot enforce `source`."""
    llg = _llg()
    is_error, messages = isolated(llg.LLMatcher.validate_grammar_with_warnings, source)
    if not messages:
        return
    # A warning means "accepted but not enforced" (an unknown string format): for us that is an error too.
    message = messages[0].strip().splitlines()
    found = _UNIMPLEMENTED.search(messages[0])
    if found:
        keys = ", ".join(k.strip().strip('"') for k in found.group(1).split(","))
        raise InvalidInput(f"{what} keyword {keys} cannot be enforced during decoding; remove it from the "
                           f"{what} (supported keywords: docs/structured-output.md)")
    detail = " ".join(line.strip() for line in message if line.strip())
    if len(detail) > 400:
        detail = detail[:400] + " ..."
    raise InvalidInput(f"{what} cannot be enforced during decoding (llguidance says: {detail})")


MAX_FORMAT_LENGTH = 128
SAFE_INTEGER = 2 ** 53 - 1  # the largest integer every JSON parser reads exactly (RFC 8259, section 6)
_DATA_KEYS = {"enum", "const", "default", "examples", "required"}  # values that are data, not subschemas


def close_objects(schema: Any, in_all_of: bool = False) -> Any:
    """A copy of `schema` where objects that list `properties` but say nothing about other keys get
    `additionalProperties: false`, integers without bounds get +-(2**53 - 1), and strings with a `format` but
    no `maxLength` get 128.

    Every answer to the narrowed schema also validates against the original (it only forbids extra keys the user
    did not ask for, integers no JSON parser reads exactly, and very long formatted strings), and it keeps small
    models from inventing key after key, or digit after digit, until max_tokens runs out. Members of an `allOf`
    stay open: narrowing each part separately could make their combination unsatisfiable.
    """
    if isinstance(schema, list):
        return [close_objects(item, in_all_of) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in _DATA_KEYS:
            out[key] = value
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: close_objects(sub) for name, sub in value.items()}
        elif key in ("$defs", "definitions", "patternProperties", "dependentSchemas") and isinstance(value, dict):
            out[key] = {name: close_objects(sub) for name, sub in value.items()}
        else:
            out[key] = close_objects(value, key == "allOf")
    if "properties" in out and not in_all_of and not {"additionalProperties", "patternProperties",
                                                         "unevaluatedProperties", "allOf"} & out.keys():
        out["additionalProperties"] = False
    kinds = out.get("type") if isinstance(out.get("type"), list) else [out.get("type")]
    # The narrowing never adds a bound the user's own bounds contradict (a minLength of 200, a minimum beyond
    # 2**53): such a schema is left as written, so an error can only name limits the user wrote.
    if "format" in out and "maxLength" not in out and not in_all_of \
            and _number(out.get("minLength"), 0) <= MAX_FORMAT_LENGTH:  # an e-mail, URI, ... of at most 128
        out["maxLength"] = MAX_FORMAT_LENGTH                              # characters: it can always still end
    if "integer" in kinds and not in_all_of:  # at most 16 digits: a small model can repeat a digit forever
        low = max(_number(out.get("minimum"), -SAFE_INTEGER), _number(out.get("exclusiveMinimum"), -SAFE_INTEGER))
        high = min(_number(out.get("maximum"), SAFE_INTEGER), _number(out.get("exclusiveMaximum"), SAFE_INTEGER))
        if "minimum" not in out and "exclusiveMinimum" not in out and high >= -SAFE_INTEGER:
            out["minimum"] = -SAFE_INTEGER
        if "maximum" not in out and "exclusiveMaximum" not in out and low <= SAFE_INTEGER:
            out["maximum"] = SAFE_INTEGER
    return out


def _number(value: Any, default: float) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def schema_grammar(schema: Any, name: str | None = None) -> Grammar:
    """Compile `schema`: a JSON Schema dict (or `true`), a pydantic model class, or "json" (any JSON object).

    A schema every JSON value satisfies (`{}`, `true`, `{"$ref": "#"}`) compiles to "any JSON value"; one over a
    limit of docs/limits.md is refused with a line naming it."""
    model_class = None
    if isinstance(schema, Grammar):
        return schema
    if isinstance(schema, str):
        if schema != "json":
            raise InvalidInput(f"schema must be a JSON Schema dict, a pydantic model class or \"json\", "
                               f"got the string {schema!r}")
        schema, kind = dict(ANY_JSON_OBJECT), "json_object"
    elif _is_pydantic_class(schema):
        model_class, name = schema, name or schema.__name__
        schema, kind = schema.model_json_schema(), "json_schema"
    elif isinstance(schema, dict) or schema is True:
        kind = "json_schema"
    else:
        raise InvalidInput(f"schema must be a JSON Schema dict, a pydantic model class or \"json\", "
                           f"got {type(schema).__name__}")
    check_schema(schema)
    compiled = ANY_JSON if is_any_json(schema) else close_objects(schema)
    try:
        source = isolated(_llg().LLMatcher.grammar_from_json_schema, compiled, defaults=JSON_OPTIONS)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"schema is not a JSON object: {exc}") from None
    check(source)
    return Grammar(source, kind, schema if isinstance(schema, dict) else {}, model_class, name)


def load_schema(path: str | Path) -> dict | str:
    """A JSON Schema from a file (the CLI's --schema); the literal "json" means any JSON object."""
    if str(path) == "json":
        return "json"
    path = Path(path)
    try:
        if path.is_dir() or (path.exists() and not path.is_file()):
            raise InvalidInput(f"schema file {path} is not a regular file")
        size = path.stat().st_size
        if size > MAX_SCHEMA_BYTES * 4:  # compact limit x4 for indentation; check_schema measures it exactly
            raise InvalidInput(f"schema file {path} is {size >> 10} KiB, over the {MAX_SCHEMA_BYTES >> 10} KiB "
                               f"limit (ondevice's limit, docs/limits.md)")
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read schema file {path}: {exc.strerror}") from None
    except RecursionError:
        raise InvalidInput(f"schema file {path} is nested deeper than {MAX_SCHEMA_DEPTH} levels (ondevice's "
                           f"limit, docs/limits.md)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"schema file {path} is not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise InvalidInput(f"schema file {path} must hold a JSON object (a JSON Schema)")
    return schema


def lark_grammar(lark: str, kind: str = "lark") -> Grammar:
    """Compile a grammar in llguidance's Lark syntax (it may embed JSON Schemas with `%json {...}`)."""
    source = isolated(_llg().LLMatcher.grammar_from_lark, lark)
    check(source, "grammar")
    return Grammar(source, kind)


def json_in_lark(schema: dict) -> str:
    """`schema` as a `%json {...}` Lark fragment with the same compact-JSON options as `schema_grammar`."""
    body = ANY_JSON if is_any_json(schema) else close_objects(schema)
    return "%json " + json.dumps({**body, "x-guidance": JSON_OPTIONS})


class Vocabulary:
    """A model's tokens as the engine sees them (built once per loaded model: about 0.3 s for 49k tokens)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.words = (tokenizer.vocab_size + 31) // 32

    def token_bytes(self) -> list[bytes]:
        """Each token's bytes (built on first use: about 50 ms for 49k tokens)."""
        if getattr(self, "_bytes", None) is None:
            decode = self.tokenizer.decode_bytes
            self._bytes = [decode([t]) for t in range(self.tokenizer.vocab_size)]
        return self._bytes

    def closers(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(tokens that are only closing JSON and start with `"`, those made of `]`/`}` only, the id of the token
        "q"): what `ConstrainedSampler` uses to end an answer near its budget ("q" is allowed only inside a
        string)."""
        if getattr(self, "_closers", None) is None:
            pieces = self.token_bytes()
            only = np.array([bool(b) and not b.strip(b'"]}') for b in pieces], dtype=bool)
            quote = only & np.array([b.startswith(b'"') for b in pieces], dtype=bool)
            letter = pieces.index(b"q") if b"q" in pieces else 0
            self._closers = (quote, only & ~quote & np.array([b'"' not in b for b in pieces], dtype=bool), letter)
        return self._closers

    def openers(self) -> np.ndarray:
        """Tokens whose bytes contain `{` or `[` (outside a string they open an object or array)."""
        if getattr(self, "_openers", None) is None:
            self._openers = np.array([b"{" in b or b"[" in b for b in self.token_bytes()], dtype=bool)
        return self._openers

    @classmethod
    def from_llama(cls, vocab) -> "Vocabulary":
        """From a libllama vocabulary: each token's bytes via llama_token_to_piece, control tokens marked as
        special (llguidance's `llamacpp` helper does the same through an API libllama has deprecated)."""
        import ctypes

        import llama_cpp as lc

        buffer = ctypes.create_string_buffer(16 * 1024)
        pieces = []
        for token in range(lc.llama_vocab_n_tokens(vocab)):
            n = lc.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)
            piece = buffer.raw[:max(n, 0)]
            attr = lc.llama_vocab_get_attr(vocab, token)
            if attr & lc.LLAMA_TOKEN_ATTR_CONTROL or (attr & lc.LLAMA_TOKEN_ATTR_USER_DEFINED
                                                      and piece.startswith(b"<") and piece.endswith(b">")):
                piece = b"\xff" + piece  # llguidance's marker for a special token
            pieces.append(piece)
        tokenize = ctypes.cast(lc.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
        tokenizer = _llg().LLTokenizer.from_llamacpp(tokens=pieces, vocab_ptr=vocab, tokenize_fptr=tokenize,
                                                     eos_token=lc.llama_vocab_eos(vocab),
                                                     slices=_llg().LLTokenizer.json_slices())
        return cls(tokenizer)

    @classmethod
    def from_tokenizer_json(cls, path: Path, eos_ids: Sequence[int]) -> "Vocabulary":
        """From an HF `tokenizer.json` (ONNX model folders carry one)."""
        text = Path(path).read_text(encoding="utf-8")
        llg = _llg()
        tokenizer = llg.LLTokenizer(text, eos_token=sorted(eos_ids), slices=llg.LLTokenizer.json_slices())
        return cls(tokenizer)


@dataclass
class TokenConstraint:
    """Per-generation state: masks logits before each sampling step and follows the sampled tokens."""

    grammar: Grammar
    vocabulary: Vocabulary
    _matcher: Any = field(init=False, repr=False)
    _bits: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self._matcher = isolated(_llg().LLMatcher, self.vocabulary.tokenizer, self.grammar.source, log_level=0)
        if self._matcher.is_error():
            raise InvalidInput(f"grammar rejected: {self._first_line()}")
        self._bits = np.zeros(self.vocabulary.words, dtype=np.int32)

    def _first_line(self) -> str:
        return (self._matcher.get_error() or "").strip().splitlines()[0] if self._matcher.get_error() else ""

    def _stopped(self) -> InvalidInput:
        """The error for a grammar llguidance gave up on mid-answer (one of its own limits, such as the size of a
        pattern's automaton or the parser's item count, or a schema no finite answer satisfies)."""
        return InvalidInput(f"the schema cannot be enforced: llguidance stopped mid-answer ({self._first_line()}); "
                            f"a schema with no finite answer (a required property whose $ref never ends) or a "
                            f"pattern too large for its limits does this (docs/limits.md)")

    def allowed(self, n: int) -> np.ndarray:
        """Boolean mask over a logits row of `n` entries: True where the grammar accepts the token next (a row
        longer than the tokenizer's vocabulary, as some exports pad it, has its padding forbidden).

        Raises InvalidInput when the engine stopped (one of its limits) or allows no token at all."""
        self._matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        if self._matcher.is_error() or not self._bits.any():
            raise self._stopped()
        allowed = np.unpackbits(self._bits.view(np.uint8), bitorder="little").view(bool)
        if allowed.size < n:
            allowed = np.concatenate([allowed, np.zeros(n - allowed.size, dtype=bool)])
        return allowed[:n]

    def apply(self, logits: np.ndarray) -> None:
        """Set (in place) the logits of every token the grammar forbids next to -inf."""
        logits[~self.allowed(logits.size)] = -np.inf

    def accept(self, token: int) -> bool:
        """Advance by the sampled token; True when the grammar is complete (nothing but end-of-text may follow)."""
        if not self._matcher.consume_token(int(token)):
            raise self._stopped()
        return self._matcher.is_stopped()

    @property
    def complete(self) -> bool:
        """True when the text so far is a whole answer of the grammar."""
        return self._matcher.is_accepting()


class ConstrainedSampler:
    """Wraps a backend's sampler (anything with `sample()` and `close()`): before each draw, the grammar's mask is
    applied in place to the logits row that sampler reads (`logits()` returns it, writable); after, the grammar
    advances by the drawn token. Once the grammar is complete only end-of-text tokens stay allowed, so the decode
    loop ends the answer through its usual end-of-generation check.

    The guards below (closing near the budget, breaking cycles, capping nesting) steer a small model through JSON.
    They apply only inside the JSON being enforced: from the first token of a schema answer, and in a tool grammar
    only once the answer has opened a call (`<tool_call>` then JSON) or, with a schema answer, its JSON. A free-text
    answer under `tools` (tool_choice auto/none) is never touched by them: it is the model's own text, cut by
    max_tokens like any other (never forced to end in quotes or brackets).
    """

    # A small model can loop where the grammar allows it (a number's digits, a recursive schema's nesting) and
    # never finish the JSON. A cycle is the last `period` tokens repeated: 12 times for one token, 3 times for
    # 2-32 tokens.
    MAX_PERIOD, SINGLE_REPEATS, REPEATS = 32, 12, 3

    CLOSING_MARGIN = 24  # tokens before the budget ends (at most a quarter of it) when the answer starts closing
    # A recursive schema lets a small model nest without end (objects in arrays in objects ...), each level adding
    # required keys it must write before it could close: deeper than this, no NEW object or array is opened where
    # the grammar allows anything else. Deeper than any of the 50 benchmark schemas needs; never makes a schema
    # unsatisfiable (the mask applies only when another allowed token remains).
    MAX_NESTING = 8

    def __init__(self, inner, constraint: TokenConstraint, logits, budget: int | None = None):
        self.inner = inner
        self.constraint = constraint
        self._logits = logits
        self._eos = np.asarray(constraint.vocabulary.tokenizer.eos_tokens, dtype=np.int64)
        self.complete = False
        self.budget = budget  # max_tokens, when known: near it, prefer tokens that close strings/arrays/objects
        self._history: list[int] = []
        self._depth, self._in_string, self._escaped = 0, False, False  # a JSON scanner over the answer so far
        kind = constraint.grammar.kind
        # Whether the answer so far is inside the enforced JSON: from the start for a schema; decided by the
        # answer's first bytes for a tool grammar; never for other grammars (lark: not JSON).
        self._inside: bool | None = True if kind in ("json_schema", "json_object") else \
            None if kind == "tool_calls" else False
        self._answer_json = constraint.grammar.schema is not None
        self._head = b""  # the answer's first bytes, until `_inside` is decided

    def _enter(self, piece: bytes) -> bytes:
        """Decide from the answer's first bytes whether it is a tool call or JSON answer (inside) or free text;
        returns the part of `piece` the JSON scanner should read."""
        self._head += piece
        head = self._head.lstrip()
        call = (self.constraint.grammar.call_open or "").encode()
        if not call:  # a format whose calls start with the JSON itself: inside exactly when the answer does
            if head[:1] in (b"{", b"["):
                self._inside = True
                return head
            self._inside = False if head else None
            return b""
        if head[:1] in (b"{", b"[") and self._answer_json:
            self._inside = True
            return head
        if head.startswith(call):
            self._inside = True
            return head[len(call):]
        if head and not call.startswith(head[:len(call)]):
            self._inside = False
        return b""

    def _scan(self, piece: bytes) -> None:
        """Track the nesting depth of the JSON written so far (brackets inside strings do not count)."""
        for byte in piece:
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif byte == 0x5C:  # backslash
                    self._escaped = True
                elif byte == 0x22:  # quote
                    self._in_string = False
            elif byte == 0x22:
                self._in_string = True
            elif byte in (0x7B, 0x5B):  # { [
                self._depth += 1
            elif byte in (0x7D, 0x5D):  # } ]
                self._depth -= 1

    def _no_deeper(self, row: np.ndarray) -> None:
        """At MAX_NESTING, forbid allowed tokens that open an object or array, if any other token is allowed."""
        openers = self.constraint.vocabulary.openers()
        n = min(row.size, openers.size)
        allowed = np.isfinite(row[:n])
        opening = allowed & openers[:n]
        if opening.any() and (allowed & ~openers[:n]).any():
            row[:n][opening] = -np.inf

    def _cycle_period(self) -> int:
        """The period of a cycle at the end of the history, or 0."""
        h = self._history
        for period in range(1, self.MAX_PERIOD + 1):
            repeats = self.SINGLE_REPEATS if period == 1 else self.REPEATS
            span = period * repeats
            if len(h) < span:
                break
            tail = h[-span:]
            if tail == tail[-period:] * repeats:
                return period
        return 0

    def _break_cycle(self, row: np.ndarray, period: int) -> None:
        """Forbid every allowed token that would start the cycle's text again (however it is tokenized), as long
        as the grammar leaves another way on: the answer stays valid."""
        pieces = self.constraint.vocabulary.token_bytes()
        cycle = b"".join(pieces[t] for t in self._history[-period:])
        allowed = np.flatnonzero(np.isfinite(row))
        looping = [t for t in allowed if t < len(pieces) and pieces[t]
                   and (cycle.startswith(pieces[t]) or pieces[t].startswith(cycle))]
        if 0 < len(looping) < len(allowed):
            row[looping] = -np.inf

    def _close(self, row: np.ndarray) -> None:
        """Near the end of the budget, end what is open while the grammar allows it: a string with a token that
        starts with `"`, else (outside a string) a number, array or object with `]`/`}` tokens. A string that
        cannot end yet (a format or pattern still incomplete) is left alone."""
        quote, bracket, letter = self.constraint.vocabulary.closers()
        n = min(row.size, quote.size)
        allowed = np.isfinite(row[:n])
        for group in (quote[:n], None if allowed[letter] else bracket[:n]):
            if group is not None and (allowed & group).any():
                keep = np.zeros(row.size, dtype=bool)
                keep[:n] = allowed & group
                row[~keep] = -np.inf
                return

    def sample(self) -> int:
        row = self._logits()
        if self.complete:
            keep = row[self._eos].copy()
            row[:] = -np.inf
            row[self._eos] = keep
        else:
            self.constraint.apply(row)
            if self._inside:
                period = self._cycle_period()
                if period:
                    self._break_cycle(row, period)
                if self._depth >= self.MAX_NESTING and not self._in_string:
                    self._no_deeper(row)
                if self.budget is not None and (self._depth > 0 or self._in_string) and \
                        len(self._history) >= self.budget - min(self.CLOSING_MARGIN, self.budget // 4):
                    self._close(row)
        token = self.inner.sample()
        self._history.append(token)
        pieces = self.constraint.vocabulary.token_bytes()
        if token < len(pieces) and self._inside is not False:
            piece = pieces[token] if self._inside else self._enter(pieces[token])
            self._scan(piece)
        if not self.complete:
            self.complete = self.constraint.accept(token)
        return token

    def close(self) -> None:
        self.inner.close()
