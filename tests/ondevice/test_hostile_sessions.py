"""Saved sessions from hostile or broken files: every one is a clear InvalidSession / InvalidInput, never a
traceback, a hang or a cache that loads and answers garbage (issue 23). A good session still loads afterwards, and a
failed load never changes the file."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys

import pytest

import ondevice
from ondevice.errors import InvalidInput, InvalidSession

MAGIC_LEN = 17  # b"ONDEVICE-SESSION\n"


@pytest.fixture(scope="module")
def saved(smollm2, tmp_path_factory):
    chat = smollm2.session()
    chat.send("Hi!", max_tokens=4)
    return chat.save(tmp_path_factory.mktemp("sessions") / "hi.session").read_bytes()


def split(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[MAGIC_LEN:MAGIC_LEN + 8])[0]
    return json.loads(raw[MAGIC_LEN + 8:MAGIC_LEN + 8 + n]), raw[MAGIC_LEN + 8 + n:]


def join(header: dict, state: bytes, fix_checksum: bool = True) -> bytes:
    if fix_checksum:  # a consistent file: only its contents are impossible
        header = {**header, "state_bytes": len(state), "state_sha256": hashlib.sha256(state).hexdigest()}
    blob = json.dumps(header).encode()
    return b"ONDEVICE-SESSION\n" + struct.pack("<Q", len(blob)) + blob + state


def with_header(raw: bytes, **changes) -> bytes:
    header, state = split(raw)
    return join({**header, **changes}, state, fix_checksum=False)


def with_state(raw: bytes, edit) -> bytes:
    header, state = split(raw)
    state = bytearray(state)
    edit(state, len(header["tokens"]))
    return join(header, bytes(state))


def cell(i: int) -> int:
    """Offset of cell i's (pos, n_seq_id, seq_id) in libllama's sequence state (magic, seq, n_stream, cells)."""
    return 16 + 12 * i


def set_i32(state: bytearray, offset: int, value: int) -> None:
    state[offset:offset + 4] = struct.pack("<i", value)


def nan_in_k(state: bytearray, cells: int) -> None:
    k = cell(cells) + 8 + 12  # after the cells: v_trans, n_layer, then layer 0's K type and row size
    state[k:k + 2] = struct.pack("<H", 0x7E00)  # an f16 NaN


def deep_json(depth: int) -> bytes:
    blob = b"[" * depth + b"]" * depth
    return b"ONDEVICE-SESSION\n" + struct.pack("<Q", len(blob)) + blob


@pytest.mark.parametrize("make, message", [
    (lambda raw: with_header(raw, messages=5), "'messages' is int"),
    (lambda raw: with_header(raw, tokens=["a", "b"]), "'tokens'"),
    (lambda raw: with_header(raw, tokens=None), "'tokens' is NoneType"),
    (lambda raw: with_header(raw, tokens={"a": 1}), "'tokens' is dict"),
    (lambda raw: with_header(raw, n_ctx="512"), "'n_ctx' is str"),
    (lambda raw: with_header(raw, state_bytes=-5), "state bytes"),
    (lambda raw: with_header(raw, messages=[{"role": "user", "content": 5}]), "corrupt session"),
    (lambda raw: deep_json(200_000), "header"),
    (lambda raw: raw + b"\0" * 16, "16 bytes after the KV state"),
    (lambda raw: with_state(raw, lambda s, n: set_i32(s, cell(1), 10_000)), "position 10000"),
    (lambda raw: with_state(raw, lambda s, n: set_i32(s, cell(0), -3)), "position -3"),
    (lambda raw: with_state(raw, lambda s, n: set_i32(s, cell(2) + 8, 99)), "sequence 99"),
    (lambda raw: with_state(raw, lambda s, n: set_i32(s, 4, 7)), "sequence 7"),
    (lambda raw: with_state(raw, nan_in_k), "NaN or infinite"),
    (lambda raw: join(split(raw)[0], split(raw)[1] + b"\0" * 64), "the saved KV cache: cache 1"),
    (lambda raw: with_header(raw, tokens=[10 ** 6] * len(split(raw)[0]["tokens"])), "vocabulary"),
])
def test_impossible_sessions_are_refused(smollm2, saved, tmp_path, make, message):
    path = tmp_path / "bad.session"
    path.write_bytes(make(saved))
    before = path.read_bytes()
    with pytest.raises(InvalidSession, match=message):
        ondevice.Chat.load(path, smollm2)
    assert path.read_bytes() == before  # a failed load never changes the file
    good = tmp_path / "good.session"
    good.write_bytes(saved)
    assert len(ondevice.Chat.load(good, smollm2).messages) == 2  # and a good one still loads after it


def test_a_named_pipe_is_refused_without_blocking(smollm2, tmp_path):
    fifo = tmp_path / "pipe.session"
    os.mkfifo(fifo)
    with pytest.raises(InvalidSession, match="not a regular file"):
        ondevice.Chat.load(fifo, smollm2)
    with pytest.raises(InvalidSession, match="not a regular file"):
        ondevice.Chat.load(tmp_path, smollm2)  # a folder


def test_load_needs_a_path(smollm2):
    with pytest.raises(InvalidInput, match="must be a string or a path, got NoneType"):
        ondevice.Chat.load(None, smollm2)


def test_saving_into_a_missing_folder_or_onto_a_folder_is_a_clear_error(smollm2, tmp_path):
    chat = smollm2.session()
    with pytest.raises(InvalidInput, match="does not exist"):
        chat.save(tmp_path / "no_such_dir" / "x.session")
    with pytest.raises(InvalidInput, match="folder or a special file"):
        chat.save(tmp_path)


def test_cli_chat_with_an_unsavable_session_fails_before_answering(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    run = subprocess.run([sys.executable, "-m", "ondevice", "chat", "smollm2-135m", "--session",
                          str(tmp_path / "no_such_dir" / "x.session")], input="Hi\n", capture_output=True,
                         text=True, timeout=120, env=env)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "does not exist" in run.stderr
    assert run.stdout == ""


def test_cli_chat_on_a_named_pipe_does_not_block(tmp_path):
    fifo = tmp_path / "pipe.session"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    run = subprocess.run([sys.executable, "-m", "ondevice", "chat", "smollm2-135m", "--session", str(fifo)],
                         input="", capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "special file" in run.stderr
