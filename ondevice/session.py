"""Conversations: the history and the model's KV cache in one object, saved to a file and resumed after a restart.

    chat = model.session(system="Answer briefly.")      # or ondevice.Chat(model, system=...)
    print(chat.send("What is the capital of France?").text)
    chat.save("trip.session")
    ...                                                 # a new process
    chat = ondevice.Chat.load("trip.session", model)    # the cache comes back: the history is not read again
    print(chat.send("And of Italy?").text)

Every turn renders the whole history, and the backend evaluates only what follows the prefix its cache already holds
(`ondevice.backends.text`), so a turn costs its own tokens, not the conversation's.

File format (version 1): the line `ONDEVICE-SESSION`, an 8-byte little-endian header length, a JSON header (model
name and content key, backend, n_ctx, kv_type, messages, the cached tokens, the state's length and SHA-256), then
the KV state bytes (libllama's per-sequence state; none for runtimes that cannot serialise their cache, such as
onnxruntime-genai: the first turn after loading then reads the history again).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ondevice.backends.cache import CacheState
from ondevice.backends.llama_state import BadState, check_seq_state
from ondevice.errors import InvalidInput, InvalidSession
from ondevice.files import atomic_output
from ondevice.decoding.messages import check_messages
from ondevice.models.store import content_key

if TYPE_CHECKING:
    from ondevice.backends.base import Generation
    from ondevice.model import Model, TextStream

MAGIC = b"ONDEVICE-SESSION\n"
VERSION = 1
MAX_HEADER = 64 << 20    # the JSON header (the messages make most of it)
MAX_TOKENS = 1 << 24     # cached tokens, and n_ctx: more than any context libllama allocates


class ChatStream:
    """A streamed answer of a Chat: iterate for text pieces; the answer joins the history when the stream ends
    (also when it is closed early: the part the user saw is what the conversation continues from)."""

    def __init__(self, inner: "TextStream", on_done: Callable[[str], None]):
        self._inner = inner
        self._on_done = on_done
        self._pieces: list[str] = []
        self._finished = False
        self._gen = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._gen

    def _run(self) -> Iterator[str]:
        try:
            for piece in self._inner:
                self._pieces.append(piece)
                yield piece
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._on_done("".join(self._pieces))

    @property
    def result(self) -> "Generation | None":
        return self._inner.result

    def close(self) -> None:
        """Stop early; the text streamed so far becomes the answer in the history."""
        self._gen.close()
        self._inner.close()
        self._finish()


class Chat:
    """A conversation with a model: `send` a user message, get the answer; `save` and `Chat.load` it."""

    def __init__(self, model: "Model", system: str | None = None, messages: list[dict] | None = None):
        self.model = model
        self.messages: list[dict] = check_messages(messages) if messages else []
        if system is not None:
            if self.messages and self.messages[0]["role"] == "system":
                raise InvalidInput("give the system prompt either as `system` or as the first message, not both")
            self.messages.insert(0, {"role": "system", "content": system})

    def send(self, content: str | list[dict], stream: bool = False, **sampling) -> "Generation | ChatStream":
        """Add a user message and answer it (sampling keywords as `Model.chat`). The answer joins the history."""
        self.messages.append(check_messages([{"role": "user", "content": content}])[0])
        try:
            result = self.model.chat(self.messages, stream=stream, **sampling)
        except BaseException:
            self.messages.pop()  # a refused turn (bad option, context full) leaves the conversation as it was
            raise
        if stream:
            return ChatStream(result, self._add_answer)
        self._add_answer(result.text)
        return result

    def _add_answer(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})

    # --- save / load ------------------------------------------------------------------------------------------
    def _cache_state(self) -> CacheState | None:
        """The context holding this conversation's history (brought up to date first: another conversation may
        have used the model since), or None where the backend cannot export its cache."""
        backend = self.model.backend
        if not self.messages or not hasattr(backend, "export_cache"):
            return None
        backend.prefill(self.model.render_chat(self.messages))
        return backend.export_cache()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the history and the KV cache to `path` (atomically: never a half-written file).

        Raises InvalidInput when `path` cannot be a session file (a folder, in a folder that does not exist)."""
        path = check_save_path(path)
        state = self._cache_state()
        data = (state.data if state else None) or b""
        header = {
            "version": VERSION, "model": self.model.name, "model_key": content_key(self.model.ref.path, name=self.model.ref.name),
            "backend": self.model.backend_name, "n_ctx": self.model.n_ctx,
            "kv_type": self.model.backend.options.kv_type, "messages": self.messages,
            "tokens": list(state.tokens) if state and data else [],
            "state_bytes": len(data), "state_sha256": hashlib.sha256(data).hexdigest(),
        }
        blob = json.dumps(header).encode()
        try:
            with atomic_output(path) as tmp:
                with open(tmp, "wb") as fh:
                    fh.write(MAGIC + struct.pack("<Q", len(blob)) + blob)
                    fh.write(data)
        except OSError as exc:
            raise InvalidInput(f"cannot save the session to {path}: {exc.strerror or exc}") from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: "Model") -> "Chat":
        """Resume a saved conversation on `model` (the same model file, backend and KV type it was saved with).

        Raises InvalidSession for another model or setting, or a truncated, corrupt or impossible file (limits:
        docs/limits.md)."""
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidInput(f"a session path must be a string or a path, got {type(path).__name__}")
        path = Path(path)
        header, data = _read(path)
        _check_matches(path, header, model)
        chat = cls(model)
        try:
            chat.messages = check_messages(header["messages"]) if header["messages"] else []
        except InvalidInput as exc:
            raise InvalidSession(f"{path}: corrupt session file ({exc})") from None
        if data:
            tokens = header["tokens"]
            if len(tokens) >= model.n_ctx:
                raise InvalidSession(f"{path}: the session holds {len(tokens)} tokens but this model was loaded "
                                     f"with n_ctx {model.n_ctx} (it was saved with {header['n_ctx']})")
            vocab = getattr(model.info, "vocab_size", 0) or 0
            if vocab and any(t >= vocab for t in tokens):
                raise InvalidSession(f"{path}: corrupt session file (a token id beyond the vocabulary of {vocab})")
            if model.backend_name == "gguf":  # libllama checks too little itself (ondevice.backends.llama_state)
                try:
                    check_seq_state(data, len(tokens))
                except BadState as exc:
                    raise InvalidSession(f"{path}: corrupt session file (the saved KV cache: {exc})") from None
            if not model.backend.import_cache(CacheState(tuple(tokens), data)):
                raise InvalidSession(f"{path}: the saved KV cache does not load into this context "
                                     f"(corrupt, or saved with other settings)")
        return chat


def check_save_path(path: str | os.PathLike) -> Path:
    """`path` as a Path if a session file can be written there (its folder exists, it is not a folder or a
    special file); else InvalidInput. The CLI calls it before the first turn, so a bad path fails before answering."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInput(f"a session path must be a string or a path, got {type(path).__name__}")
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInput(f"cannot save the session to {path}: the folder {parent} does not exist")
    if path.exists() and not path.is_file():
        raise InvalidInput(f"cannot save the session to {path}: it is a folder or a special file, not a file")
    return path


def _header_error(path: Path, what: str) -> InvalidSession:
    return InvalidSession(f"{path}: corrupt session file (header: {what})")


def _check_header(path: Path, header: Any) -> dict:
    """The header's fields, each of the type and range it must have."""
    fields = {"version": int, "model_key": str, "backend": str, "n_ctx": int, "kv_type": str, "messages": list,
              "tokens": list, "state_bytes": int, "state_sha256": str}
    if not isinstance(header, dict):
        raise _header_error(path, "not an object")
    for name, kind in fields.items():
        if name not in header:
            raise _header_error(path, f"no {name!r}")
        if not isinstance(header[name], kind) or isinstance(header[name], bool):
            raise _header_error(path, f"{name!r} is {type(header[name]).__name__}, not {kind.__name__}")
    if header["version"] != VERSION:
        raise InvalidSession(f"{path}: session format version {header['version']!r}; this ondevice reads "
                             f"version {VERSION}")
    if "model" in header and not isinstance(header["model"], (str, type(None))):
        raise _header_error(path, "'model' is not a string")
    if not 0 < header["n_ctx"] <= MAX_TOKENS:
        raise _header_error(path, f"n_ctx {header['n_ctx']}")
    tokens = header["tokens"]
    if len(tokens) > MAX_TOKENS or not all(type(t) is int and 0 <= t < 2 ** 31 for t in tokens):
        raise _header_error(path, "'tokens' must be at most 2**24 token ids (integers from 0)")
    if header["state_bytes"] < 0 or (header["state_bytes"] == 0) != (not tokens):
        raise _header_error(path, f"{len(tokens)} tokens with {header['state_bytes']} state bytes")
    if not re.fullmatch(r"[0-9a-f]{64}", header["state_sha256"]):
        raise _header_error(path, "'state_sha256' is not a SHA-256 hex digest")
    return header


def _read(path: Path) -> tuple[dict, bytes]:
    try:
        # A named pipe, device or folder is refused before it is opened: opening a FIFO blocks until a writer comes.
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise InvalidSession(f"{path}: not a regular file (a session is a file written by Chat.save)")
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(len(MAGIC) + 8)
            if not head.startswith(MAGIC):
                if head and MAGIC.startswith(head):
                    raise InvalidSession(f"{path}: truncated session file")
                raise InvalidSession(f"{path}: not an ondevice session file")
            if len(head) < len(MAGIC) + 8:
                raise InvalidSession(f"{path}: truncated session file")
            (n,) = struct.unpack("<Q", head[len(MAGIC):])
            if n > MAX_HEADER or len(head) + n > size:
                raise InvalidSession(f"{path}: truncated or corrupt session file (header)")
            blob = fh.read(n)
            try:
                header = _check_header(path, json.loads(blob))
            except (ValueError, RecursionError):  # not JSON, or nested past what the parser takes
                raise _header_error(path, "not JSON") from None
            expected = len(head) + n + header["state_bytes"]
            if size != expected:
                raise InvalidSession(f"{path}: truncated session file ({size - len(head) - n} of "
                                     f"{header['state_bytes']} state bytes)" if size < expected else
                                     f"{path}: corrupt session file ({size - expected} bytes after the KV state)")
            data = fh.read(header["state_bytes"])
    except FileNotFoundError:
        raise InvalidSession(f"{path}: no such session file") from None
    except OSError as exc:
        raise InvalidSession(f"{path}: cannot read the session file ({exc.strerror or exc})") from None
    if len(data) != header["state_bytes"]:
        raise InvalidSession(f"{path}: truncated session file (the file changed while it was read)")
    if hashlib.sha256(data).hexdigest() != header["state_sha256"]:
        raise InvalidSession(f"{path}: corrupt session file (the KV state does not match its checksum)")
    return header, data


def _check_matches(path: Path, header: dict, model: "Model") -> None:
    saved = header.get("model") or "another model"
    if header["model_key"] != content_key(model.ref.path, name=model.ref.name):
        raise InvalidSession(f"{path} was saved with {saved}, not {model.name} (a session continues only on the "
                             f"model file it was saved with)")
    if header["backend"] != model.backend_name:
        raise InvalidSession(f"{path} was saved with the {header['backend']} backend, not {model.backend_name}")
    kv_type = model.backend.options.kv_type
    if header["kv_type"] != kv_type:
        raise InvalidSession(f"{path} was saved with kv_type {header['kv_type']}, not {kv_type}: load the model "
                             f"with kv_type={header['kv_type']!r}")
