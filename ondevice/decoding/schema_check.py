"""What a JSON Schema may be before llguidance sees it, and compiling it where a native crash cannot happen.

llguidance (ondevice.decoding.structured's engine) takes schemas from untrusted requests (`response_format`, tool
parameters). Some of those it handles badly: a ~3,000-long `$ref` chain overflows its stack and kills the process,
`a{1000000}` or a schema with no finite answer pass its check and fail at the first token. `check_schema` refuses
them first, each with a line naming the limit (docs/limits.md says why each is where it is), without recursion, so a
100,000-deep schema cannot raise RecursionError here either; `isolated` runs every compilation on a thread with a
fixed, large stack.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Iterator

try:  # Python's own regex parser: used only to count a pattern's repetitions
    import re._constants as _sre_constants
    import re._parser as _sre_parser
except ImportError:  # Python < 3.11
    import sre_constants as _sre_constants
    import sre_parse as _sre_parser

from ondevice.errors import InvalidInput

_DATA_KEYS = {"enum", "const", "default", "examples", "required"}  # values that are data, not subschemas

MAX_SCHEMA_BYTES = 256 << 10    # the schema as compact JSON
MAX_SCHEMA_DEPTH = 64           # nested objects/arrays of the schema document
MAX_REF_CHAIN = 256             # $ref -> $ref -> ... hops before a schema with content is reached
MAX_PATTERN_REPEAT = 5000       # the largest repetition a `pattern` can ask for ({n,m} counts, nested ones multiplied)
COMPILE_STACK_BYTES = 256 << 20  # the stack of the thread every llguidance compilation runs on

_stack_lock = threading.Lock()


def isolated(func, *args, **kwargs):
    """Run `func` (an llguidance call that compiles or checks a grammar) on a fresh thread with a 256 MiB stack.

    llguidance's grammar check recurses along `$ref` chains: on the 8 MiB stack of a main thread a chain of about
    3,000 definitions overflows it and kills the process (SIGSEGV, docs/limits.md). `MAX_REF_CHAIN` keeps far below
    that, and a fixed, large stack makes the margin independent of the caller's thread (server worker threads, or
    platforms whose threads get 512 KiB). The stack is reserved, not committed: only the pages used cost memory.
    """
    box: dict = {}

    def run():
        try:
            box["value"] = func(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    with _stack_lock:  # threading.stack_size is process-wide: set it only around this one thread's start
        old = threading.stack_size(COMPILE_STACK_BYTES)
        try:
            worker = threading.Thread(target=run, name="ondevice-grammar", daemon=True)
            worker.start()
        finally:
            threading.stack_size(old)
    worker.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


_REPEATS = tuple(getattr(_sre_constants, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(_sre_constants, name))


def _pattern_repeat(pattern: str) -> int:
    """The largest number of repetitions `pattern` asks for (nested counts multiplied; 0 if Python's regex parser
    cannot read it: llguidance then judges it)."""
    try:
        parsed = _sre_parser.parse(pattern)
    except Exception:  # not Python syntax (llguidance reports what it cannot read); no count to bound here
        return 0
    worst = 0
    stack = [(parsed, 1)]
    while stack:
        items, factor = stack.pop()
        for op, av in items:
            if op in _REPEATS:
                low, high, sub = av
                count = low if high == _sre_constants.MAXREPEAT else max(low, high)
                worst = max(worst, factor * max(count, 1))
                stack.append((sub, factor * max(count, 1)))
            elif op == _sre_constants.SUBPATTERN:
                stack.append((av[-1], factor))
            elif op == _sre_constants.BRANCH:
                stack.extend((sub, factor) for sub in av[1])
            elif op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
                stack.append((av[1], factor))
    return worst


def check_schema(schema: Any, what: str = "schema") -> None:
    """Refuse, with a line naming the limit, a schema that is not JSON data or exceeds the limits above (depth,
    size, cycles in a Python dict, `$ref` chains, pattern repetition): before llguidance or any recursive code
    (ours included) reads it."""
    # 1. Depth and cycles, without recursion (a 100,000-deep dict must not raise RecursionError here).
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(schema, 1, False)]
    while stack:
        node, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if isinstance(node, (dict, list, tuple)):
            if depth > MAX_SCHEMA_DEPTH:
                raise InvalidInput(f"{what} is nested deeper than {MAX_SCHEMA_DEPTH} levels (ondevice's limit, "
                                   f"docs/limits.md)")
            if id(node) in on_path:
                raise InvalidInput(f"{what} contains itself (a Python object that refers to itself is not JSON; "
                                   f"use \"$ref\" for recursion)")
            on_path.add(id(node))
            stack.append((node, depth, True))
            if isinstance(node, dict):
                for key, value in node.items():
                    if not isinstance(key, str):
                        raise InvalidInput(f"{what} has a key that is not a string: {key!r}")
                    stack.append((value, depth + 1, False))
            else:
                stack.extend((value, depth + 1, False) for value in node)
    # 2. Plain JSON data (no sets, bytes, NaN) and the size.
    try:
        text = json.dumps(schema, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON data: {exc}") from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCHEMA_BYTES:
        raise InvalidInput(f"{what} is {len(text) >> 10} KiB as JSON, over the {MAX_SCHEMA_BYTES >> 10} KiB limit "
                           f"(ondevice's limit, docs/limits.md)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} contains a lone surrogate (not valid Unicode text)") from None
    # 3. $ref chains, answers that can never end, and patterns.
    if isinstance(schema, dict):
        _check_refs(schema, what)
        _check_finite(schema, what)
    stack2: list[Any] = [schema]
    while stack2:
        node = stack2.pop()
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str) and _pattern_repeat(pattern) > MAX_PATTERN_REPEAT:
                raise InvalidInput(f"{what} pattern {pattern[:60]!r} repeats up to {_pattern_repeat(pattern)} "
                                   f"times, over the limit of {MAX_PATTERN_REPEAT} (ondevice's limit, "
                                   f"docs/limits.md)")
            stack2.extend(v for k, v in node.items() if k not in _DATA_KEYS)
        elif isinstance(node, list):
            stack2.extend(node)


def _resolve_pointer(root: dict, ref: str) -> Any:
    """The node a local `$ref` ("#", "#/$defs/a", ...) points at, or None (llguidance reports the missing ones)."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _check_refs(root: dict, what: str) -> None:
    """Follow every `$ref` chain (a schema that is nothing but a `$ref` pointing at another): refuse one longer
    than MAX_REF_CHAIN hops, and a chain that comes back to where it started (it defines nothing)."""
    stack: list[Any] = [root]
    lengths: dict[int, int] = {}
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(v for k, v in node.items() if k not in _DATA_KEYS)
        ref = node.get("$ref")
        if not isinstance(ref, str) or id(node) in lengths:
            continue
        seen, hops, current = [id(node)], 0, node
        while isinstance(current, dict) and isinstance(current.get("$ref"), str):
            target = _resolve_pointer(root, current["$ref"])
            if target is None or target is root:  # the root has content (or is_any_json took it)
                break
            hops += 1
            if id(target) in seen:
                if target is root:  # {"$ref": "#"}: whatever the root allows, which _any_json decides
                    break
                raise InvalidInput(f"{what} $ref {current['$ref']!r} refers back to itself through {hops} "
                                   f"$ref(s) and so defines nothing")
            if hops > MAX_REF_CHAIN:
                raise InvalidInput(f"{what} has a chain of more than {MAX_REF_CHAIN} $refs that only point at "
                                   f"other $refs (ondevice's limit, docs/limits.md: llguidance 1.9 overflows "
                                   f"its stack on about 3,000)")
            if id(target) in lengths:
                hops += lengths[id(target)]
                if hops > MAX_REF_CHAIN:
                    raise InvalidInput(f"{what} has a chain of more than {MAX_REF_CHAIN} $refs that only point "
                                       f"at other $refs (ondevice's limit, docs/limits.md: llguidance 1.9 "
                                       f"overflows its stack on about 3,000)")
                break
            seen.append(id(target))
            current = target
        lengths[id(node)] = hops


_ALTERNATIVES = ("anyOf", "oneOf", "enum", "const", "not", "if", "$dynamicRef")


def _must(root: dict, node: Any) -> list:
    """The subschemas every answer to `node` must also satisfy inside it: its `$ref` target, `allOf` members,
    required properties and, for arrays of at least one item, `items`. A node offering alternatives (anyOf, a type
    list, ...) has none: one of them may end."""
    if not isinstance(node, dict) or any(k in node for k in _ALTERNATIVES) or isinstance(node.get("type"), list):
        return []
    out = []
    if isinstance(node.get("$ref"), str):
        target = _resolve_pointer(root, node["$ref"])
        if isinstance(target, dict) and target is not node:  # a schema referring to itself adds nothing
            out.append(target)
    if isinstance(node.get("allOf"), list):
        out.extend(member for member in node["allOf"] if isinstance(member, dict))
    properties, required = node.get("properties"), node.get("required")
    if isinstance(properties, dict) and isinstance(required, list):
        out.extend(properties[name] for name in required if isinstance(name, str)
                   and isinstance(properties.get(name), dict))
    if isinstance(node.get("items"), dict) and isinstance(node.get("minItems"), int) and node["minItems"] > 0:
        out.append(node["items"])
    return out


def _check_finite(root: dict, what: str) -> None:
    """Refuse a schema whose every answer would be infinite: following only what must be present (required
    properties, $refs, allOf, non-empty arrays) from the root comes back to a schema already on the way
    (`{"$defs": {"n": {"properties": {"x": {"$ref": "#/$defs/n"}}, "required": ["x"]}}, "$ref": "#/$defs/n"}`).
    llguidance accepts such a schema and gives up mid-answer."""
    if is_any_json(root):
        return
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    stack: list[tuple[Any, Iterator]] = [(root, iter(_must(root, root)))]
    state[id(root)] = 1
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            state[id(node)] = 2
            stack.pop()
        elif state.get(id(child)) == 1:
            raise InvalidInput(f"{what} has no finite answer: a required property (through $ref, allOf or a "
                               f"non-empty array) contains a schema that contains it again, without end")
        elif id(child) not in state:
            state[id(child)] = 1
            stack.append((child, iter(_must(root, child))))


_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "examples", "$defs",
                "definitions", "readOnly", "writeOnly", "deprecated", "$anchor"}


def is_any_json(schema: Any) -> bool:
    """True for a schema every JSON value satisfies: `true`, `{}`, only annotations, or only `$ref`s that end at
    such a schema (`{"$ref": "#"}` points at itself: it constrains nothing)."""
    if schema is True:
        return True
    if not isinstance(schema, dict):
        return False
    node, seen = schema, set()
    while isinstance(node, dict):
        keys = set(node) - _ANNOTATIONS
        if not keys:
            return True
        if keys != {"$ref"} or not isinstance(node["$ref"], str) or id(node) in seen:
            return False
        seen.add(id(node))
        target = _resolve_pointer(schema, node["$ref"])
        if target is node or target is None and node["$ref"] == "#":
            return True
        node = target
    return node is True
