"""Reading libllama's per-sequence state bytes (what `llama_state_seq_get_data` writes) to check them before
`llama_state_seq_set_data` sees them.

libllama checks little on the way in: a saved cache whose cells claim positions out of range or another sequence
id, bytes left over after the last layer, or NaN/inf in the K or V rows loads "successfully" and then answers with
garbage (an empty string, for NaN). A saved session comes from a file a user can edit, so `check_seq_state` reads
the whole layout and refuses anything but a cache of exactly `n_tokens` cells at positions below `n_tokens`, of
sequence 0, with finite values.

The layout (llama.cpp as vendored by llama-cpp-python 0.3.36, `llama-context.cpp` / `llama-kv-cache.cpp`): a u32
magic 0xaf143cd8 and the i32 sequence id, then one KV-cache section per cache (two for interleaved sliding-window
models such as Gemma 3): u32 n_stream, and per stream a u32 cell count, then per cell i32 pos, u32 n_seq_id and the
i32 sequence ids, then u32 v_trans, u32 n_layer, per layer i32 K type, u64 K row size and the rows, then the V rows
(per layer: i32 type, u64 row size and rows; or, transposed: i32 type, u32 element size, u32 rows and the elements).
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = 0xAF143CD8

# ggml type id -> (bytes per block, values per block, byte offsets of the f16 scales in a block). Floats are checked
# value by value; quantised blocks by their f16 scale (and min): their integer parts are finite by construction.
_F32, _F16, _BF16 = 0, 1, 30
_QUANTISED = {2: (18, 32, (0,)), 3: (20, 32, (0, 2)), 6: (22, 32, (0,)), 7: (24, 32, (0, 2)),
              8: (34, 32, (0,)), 20: (18, 32, (0,))}  # q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl
_ELEMENT = {_F32: 4, _F16: 2, _BF16: 2}


class BadState(ValueError):
    """The bytes are not a sound cache of the tokens they are saved with (the message says what is wrong)."""


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = memoryview(data), 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise BadState("the state ends early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _finite(kind: int, rows: memoryview, what: str) -> None:
    """Refuse NaN or inf in `rows` of ggml type `kind`."""
    raw = np.frombuffer(rows, dtype=np.uint8)
    if kind == _F32:
        values = raw.view(np.float32)
    elif kind == _F16:
        values = raw.view(np.float16)
    elif kind == _BF16:
        values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif kind in _QUANTISED:
        block, _, scales = _QUANTISED[kind]
        if raw.size % block:
            raise BadState(f"{what}: {raw.size} bytes is not a whole number of blocks")
        blocks = raw.reshape(-1, block)
        values = np.concatenate([blocks[:, o:o + 2].copy().view(np.float16).reshape(-1) for o in scales])
    else:
        raise BadState(f"{what}: ggml type {kind} is not a KV cache type ondevice writes")
    if not np.isfinite(values).all():
        raise BadState(f"{what} holds NaN or infinite values")


def _section(r: _Reader, n_tokens: int, index: int) -> None:
    (n_stream,) = r.unpack("<I")
    if n_stream != 1:
        raise BadState(f"cache {index}: {n_stream} streams (a saved sequence has 1)")
    (cells,) = r.unpack("<I")
    if cells == 0:
        return
    if cells > n_tokens:
        raise BadState(f"cache {index}: {cells} cells for {n_tokens} tokens")
    last = -1
    for _ in range(cells):
        pos, n_seq = r.unpack("<iI")
        if not last < pos < n_tokens:
            raise BadState(f"cache {index}: a cell at position {pos} (positions must rise, below {n_tokens})")
        last = pos
        if n_seq != 1:
            raise BadState(f"cache {index}: a cell in {n_seq} sequences (a saved sequence's cells are in 1)")
        (seq,) = r.unpack("<i")
        if seq != 0:
            raise BadState(f"cache {index}: a cell of sequence {seq} (sessions save sequence 0)")
    if last != n_tokens - 1:
        raise BadState(f"cache {index}: its last cell is at position {last}, not {n_tokens - 1}")
    v_trans, n_layer = r.unpack("<II")
    if v_trans not in (0, 1) or not 0 < n_layer <= 4096:
        raise BadState(f"cache {index}: a layer count of {n_layer}")
    for layer in range(n_layer):
        kind, row = r.unpack("<iQ")
        if row == 0 or row * cells > r.left:
            raise BadState(f"cache {index}: layer {layer}'s K rows run past the end")
        _finite(kind, r.take(row * cells), f"cache {index}: layer {layer}'s K rows")
    for layer in range(n_layer):
        if not v_trans:
            kind, row = r.unpack("<iQ")
            size = row * cells
        else:
            kind, element, rows = r.unpack("<iII")
            size = element * rows * cells
            if element != _ELEMENT.get(kind, -1):
                raise BadState(f"cache {index}: layer {layer}'s V element size {element} for ggml type {kind}")
        if size == 0 or size > r.left:
            raise BadState(f"cache {index}: layer {layer}'s V rows run past the end")
        _finite(kind, r.take(size), f"cache {index}: layer {layer}'s V rows")


def check_seq_state(data: bytes, n_tokens: int) -> None:
    """Raise BadState unless `data` is libllama's state of sequence 0 holding exactly `n_tokens` cells (positions
    rising below n_tokens, ending at n_tokens - 1), with finite K and V values and no bytes left over."""
    if n_tokens < 1:
        raise BadState("a cache without tokens")
    r = _Reader(data)
    magic, seq = r.unpack("<Ii")
    if magic != MAGIC:
        raise BadState("not libllama's sequence state (wrong magic)")
    if seq != 0:
        raise BadState(f"the state of sequence {seq} (sessions save sequence 0)")
    index = 0
    while r.left:
        if index == 2:
            raise BadState(f"{r.left} bytes left over after the cache")
        _section(r, n_tokens, index)
        index += 1
