"""The child process of the fuzz suite: turns each case into its real input and runs it through the Python API or
the CLI (click's runner, in this process), printing one line per case:

    @@FUZZ START <key>
    @@FUZZ DONE {"key": ..., "outcome": "ok" | "error" | "failure", "detail": ...}

The parent (tests/fuzz/runner.py) sets the memory limit, times each case and notices a crash (the process dies
between START and DONE) or a hang (no DONE in time).

    python -m tests.fuzz.driver CASES.json WORKDIR [ONNX_FOLDER]
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import traceback
from pathlib import Path

import ondevice
from ondevice.errors import OnDeviceError

# Messages that are errors but wrong about the cause (issue 23's "misleading errors").
MISLEADING = [r"sampled outside the mask", r"was max_tokens too small", r"has no chat template",
              r"maximum \(9007199254740991\)", r"maxLength.*128"]


def emit(kind: str, payload) -> None:
    sys.stdout.write(f"@@FUZZ {kind} {payload if isinstance(payload, str) else json.dumps(payload)}\n")
    sys.stdout.flush()


def classify_message(message: str, case_text: str) -> tuple[str, str]:
    if not message.strip():
        return "failure", "an error with an empty message"
    if "Traceback (most recent call last)" in message:
        return "failure", "a traceback in the message"
    for pattern in MISLEADING:
        if re.search(pattern, message) and not re.search(pattern, case_text):
            return "failure", f"misleading: {message[:300]}"
    return "error", message.splitlines()[0][:300]


def classify_exception(exc: BaseException, case_text: str) -> tuple[str, str]:
    if isinstance(exc, OnDeviceError):
        return classify_message(str(exc), case_text)
    return "failure", "traceback: " + "".join(traceback.format_exception_only(type(exc), exc)).strip()[:400]


# --- markers -> Python values -----------------------------------------------------------------------------------
def materialize(value):
    """Expand {"$deep": n} (n-deep nesting), {"$self": ...} (a dict containing itself), {"$set": [...]}."""
    if isinstance(value, dict):
        if "$deep" in value and len(value) <= 2:
            node: object = {"type": "integer"} if value.get("kind") == "schema" else []
            for _ in range(int(value["$deep"])):
                node = {"type": "object", "properties": {"a": node}} if value.get("kind") == "schema" else [node]
            return node
        if "$self" in value and len(value) == 1:
            me: dict = {"type": "object", "properties": {}}
            me["properties"]["me"] = me
            return me
        if "$set" in value and len(value) == 1:
            return set(value["$set"])
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [materialize(v) for v in value]
    return value


# --- sessions ------------------------------------------------------------------------------------------------------
MAGIC = b"ONDEVICE-SESSION\n"


def split(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[len(MAGIC):len(MAGIC) + 8])[0]
    return json.loads(raw[len(MAGIC) + 8:len(MAGIC) + 8 + n]), raw[len(MAGIC) + 8 + n:]


def join(header: dict, state: bytes, fix: bool = True) -> bytes:
    if fix:
        header = {**header, "state_bytes": len(state), "state_sha256": hashlib.sha256(state).hexdigest()}
    blob = json.dumps(header).encode()
    return MAGIC + struct.pack("<Q", len(blob)) + blob + state


def session_input(case: dict, good: bytes, work: Path):
    """The path (or object) `Chat.load` gets for this case, or ("save", path) for the save cases."""
    op = case["op"]
    path = work / "case.session"
    for old in (path, work / "case.fifo", work / "case.dir"):
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    header, state = split(good)
    cells = len(header["tokens"])
    if op == "fifo":
        os.mkfifo(work / "case.fifo")
        return work / "case.fifo"
    if op == "dir":
        (work / "case.dir").mkdir()
        return work / "case.dir"
    if op == "none_path":
        return None
    if op == "save_missing_dir":
        return ("save", work / "no_such_dir" / "x.session")
    if op == "save_onto_dir":
        (work / "case.dir").mkdir()
        return ("save", work / "case.dir")
    if op == "header":
        data = join({**header, case["field"]: materialize(case["value"])}, state, fix=False) \
            if case["value"] != {"$deep": 2000} else join({**header, case["field"]: [[[]]]}, state, fix=False)
    elif op == "deep_header":
        blob = b"[" * case["depth"] + b"]" * case["depth"]
        data = MAGIC + struct.pack("<Q", len(blob)) + blob
    elif op == "cell":
        s = bytearray(state)
        i = min(case["index"], cells - 1)
        offset = 16 + 12 * i + {"pos": 0, "n_seq": 4, "seq": 8}[case["field"]]
        s[offset:offset + 4] = struct.pack("<i", case["value"])
        data = join(header, bytes(s))
    elif op == "append":
        data = join(header, state + b"\0" * case["bytes"]) if case["fix"] else good + b"\0" * case["bytes"]
    elif op == "nan":
        s = bytearray(state)
        k = 16 + 12 * cells + 8 + 12
        offset = k if case["where"] == "k" else len(s) - 2
        s[offset:offset + 2] = struct.pack("<H", 0x7E00)
        data = join(header, bytes(s))
    elif op == "truncate":
        data = good[:int(len(good) * case["fraction"])]
    elif op == "flip":
        i = int((len(good) - 1) * case["fraction"])
        data = good[:i] + bytes([good[i] ^ (1 << case["bit"])]) + good[i + 1:]
    elif op == "state_i32":
        s = bytearray(state)
        i = int((len(s) - 4) * case["fraction"]) & ~3
        s[i:i + 4] = struct.pack("<i", case["value"])
        data = join(header, bytes(s))
    elif op == "random":
        import random

        noise = random.Random(case["seed"]).randbytes(case["size"])
        data = (MAGIC + noise) if case["magic"] else noise
    else:
        raise ValueError(op)
    path.write_bytes(data)
    return path


def run_session(case, channel, model, good, work, text):
    target = session_input(case, good, work)
    if channel == "python":
        if isinstance(target, tuple):
            model.session().save(target[1])
            return "ok", "saved"
        before = target.read_bytes() if isinstance(target, Path) and target.is_file() else None
        try:
            chat = ondevice.Chat.load(target, model)
        except BaseException:
            if before is not None and target.read_bytes() != before:
                return "failure", "a failed load changed the file"
            raise
        return "ok", f"loaded {len(chat.messages)} messages"
    path = target[1] if isinstance(target, tuple) else target
    if path is None:
        return "ok", "no CLI form"
    return cli(["chat", "smollm2-135m", "--ctx", "512", "--session", str(path)], text, input="")


# --- schemas -------------------------------------------------------------------------------------------------------
def schema_file(case, work: Path) -> Path:
    path = work / "schema.json"
    if case.get("file") == "deep":
        path.write_text("[" * case["depth"] + "]" * case["depth"])
    elif case.get("file") == "bytes":
        path.write_bytes(case["content"].encode("utf-8", "surrogateescape"))
    elif case.get("file") == "missing":
        return work / "no_such_schema.json"
    else:
        schema = materialize(case["schema"])
        try:
            path.write_text(json.dumps(schema))
        except (ValueError, TypeError, RecursionError):  # a set, itself: no file form; the JSON it would be
            path.write_text("{\"not\": ")
    return path


def run_schema(case, channel, model, work, text):
    from ondevice.decoding.structured import load_schema

    if channel == "python":
        schema = load_schema(schema_file(case, work)) if "file" in case else materialize(case["schema"])
        result = model.generate("JSON:", schema=schema, max_tokens=6)
        return "ok", repr(result.text[:40])
    return cli(["run", "smollm2-135m", "JSON:", "--ctx", "512", "-n", "4", "--schema", str(schema_file(case, work))],
               text)


# --- tools ---------------------------------------------------------------------------------------------------------
def run_tools(case, model):
    request = materialize(case)
    result = model.chat(request.get("messages"), tools=request.get("tools"), tool_choice=request.get("tool_choice"),
                        max_tokens=4)
    return "ok", repr(result.text[:40])


# --- ONNX folders --------------------------------------------------------------------------------------------------
def onnx_folder(case, base: Path, work: Path) -> Path:
    folder = work / "onnx"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(base, folder)
    edit = case["edit"]
    if edit == "genai":
        config = json.loads((folder / "genai_config.json").read_text())
        section, key = case["path"]
        owner = config["model"] if section == "model" else config["model"]["decoder"] if section == "decoder" \
            else config.setdefault("search", {})
        value = materialize(case["value"]) if case["value"] != {"$deep": 2000} else [[[]]]
        owner[key] = value
        (folder / "genai_config.json").write_text(json.dumps(config))
    elif edit == "file":
        target = folder / case["name"]
        if "bytes" in case:
            target.write_bytes(bytes.fromhex(case["bytes"]))
        else:
            target.write_text(case["text"])
    elif edit == "drop_model":
        config = json.loads((folder / "genai_config.json").read_text())
        del config["model"]
        (folder / "genai_config.json").write_text(json.dumps(config))
    elif edit == "delete":
        (folder / case["name"]).unlink()
    return folder


def run_onnx(case, channel, base, work, text):
    folder = onnx_folder(case, base, work)
    if channel == "python":
        with ondevice.load(folder, n_ctx=64) as m:
            result = m.chat([{"role": "user", "content": "Hi"}], max_tokens=2)
        return "ok", repr(result.text[:40])
    if channel == "cli-info":
        return cli(["models", "info", str(folder)], text)
    return cli(["run", str(folder), "Hi", "-n", "2", "--ctx", "64"], text)


# --- the CLI, in this process ---------------------------------------------------------------------------------------
def cli(args: list[str], text: str, input: str | None = None) -> tuple[str, str]:
    from click.testing import CliRunner

    from ondevice.cli.main import cli as command

    result = CliRunner().invoke(command, args, input=input)
    stderr = result.stderr
    if "Traceback" in stderr or "Traceback" in result.stdout:
        return "failure", f"CLI traceback: {stderr[-300:]}"
    if result.exit_code == 0:
        return "ok", "exit 0"
    if result.exit_code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        if not lines or not lines[-1].startswith("error:"):
            return "failure", f"exit 2 without an error line: {stderr[-300:]}"
        return classify_message(lines[-1], text)
    exc = result.exception
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip() if exc else stderr[-300:]
    return "failure", f"CLI exit {result.exit_code}: {detail[:300]}"


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    work = Path(sys.argv[2])
    base = Path(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
    work.mkdir(parents=True, exist_ok=True)
    model = ondevice.load("smollm2-135m", n_ctx=512)
    good_path = work / "good.session"
    if not good_path.exists():
        chat = model.session()
        chat.send("Hi!", max_tokens=4)
        chat.save(good_path)
    good = good_path.read_bytes()
    for item in cases:
        key, surface, channel, case = item["key"], item["surface"], item["channel"], item["case"]
        text = json.dumps(case)
        emit("START", key)
        try:
            if surface == "session":
                outcome, detail = run_session(copy.deepcopy(case), channel, model, good, work, text)
            elif surface == "schema":
                outcome, detail = run_schema(case, channel, model, work, text)
            elif surface == "tools":
                outcome, detail = run_tools(case, model)
            elif surface == "onnx":
                outcome, detail = run_onnx(case, channel, base, work, text)
            else:
                raise ValueError(surface)
        except BaseException as exc:  # noqa: BLE001 - every outcome is classified, none escapes
            outcome, detail = classify_exception(exc, text)
        if surface == "session" and outcome != "failure":  # a good session still loads after every bad one
            try:
                ondevice.Chat.load(good_path, model)
            except BaseException as exc:  # noqa: BLE001
                outcome, detail = "failure", f"the good session no longer loads: {exc}"
        emit("DONE", {"key": key, "outcome": outcome, "detail": detail})
    model.close()


if __name__ == "__main__":
    main()
