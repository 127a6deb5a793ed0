"""Huge pages under a loaded model: memory moves in place, contents and answers do not change."""

from __future__ import annotations

import ctypes
import mmap

import pytest

import ondevice
from ondevice.machine.hugepages import huge_page_size, huge_pages, promote, resident_chunks

HP = huge_page_size()
needs_thp = pytest.mark.skipif(HP is None, reason="no transparent huge pages on this system (not Linux, or THP off)")


def _anon_huge_kb(start: int, end: int) -> int:
    """AnonHugePages of the mappings inside [start, end), from /proc/self/smaps."""
    inside, total = False, 0
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = start <= lo and hi <= end
            elif inside and head == "AnonHugePages:":
                total += int(line.split()[1])
    return total


@needs_thp
def test_resident_chunks_move_in_place_with_their_contents():
    buf = mmap.mmap(-1, 4 * HP)  # anonymous; fill two aligned chunks, leave the rest untouched
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    start = (addr + HP - 1) & ~(HP - 1)
    offset = start - addr
    pattern = bytes(range(256)) * (HP // 256)
    for i in range(2):
        buf[offset + i * HP:offset + (i + 1) * HP] = pattern
    chunks = resident_chunks({(addr, addr + 4 * HP)}, HP)
    assert chunks == [start, start + HP]  # the untouched chunks are not resident, so they are not moved
    assert promote(chunks, HP) == 2 * HP
    assert buf[offset:offset + HP] == pattern and buf[offset + HP:offset + 2 * HP] == pattern
    assert _anon_huge_kb(start, start + 2 * HP) >= 2 * HP // 1024
    buf[offset:offset + 4] = b"same"  # still our mapping, still writable at the same address
    assert buf[offset:offset + 4] == b"same"
    del buf


@needs_thp
def test_a_chunk_unmapped_after_the_scan_is_skipped_not_copied():
    """Another thread of the process may unmap a region between the scan and the move; copying from it would
    crash the process (SIGSEGV in memmove, seen once in CI), so the move checks the chunk again and skips it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    raw = libc.mmap(None, 3 * HP, 0x3, 0x22, -1, 0)
    start = (raw + HP - 1) & ~(HP - 1)
    ctypes.memset(start, 7, HP)  # resident: the scan picks it
    chunks = resident_chunks({(raw, raw + 3 * HP)}, HP)
    assert start in chunks
    libc.munmap(raw, 3 * HP)  # gone before the move, as when another thread frees it
    assert promote([start], HP) == 0


def test_off_by_option_or_environment(monkeypatch):
    with huge_pages(enabled=False) as report:
        pass
    assert report.moved_bytes == 0 and report.reason == "off"
    monkeypatch.setenv("ONDEVICE_HUGE_PAGES", "0")
    assert huge_page_size() is None


@needs_thp
def test_a_loaded_model_answers_the_same_on_huge_pages(smollm2_path):
    answers, moved = {}, {}
    for enabled in (True, False):
        with ondevice.load(smollm2_path, n_ctx=512, huge_pages=enabled) as model:
            moved[enabled] = model._backend.huge_pages.moved_bytes
            answers[enabled] = model.chat([{"role": "user", "content": "Name three colours."}], max_tokens=24,
                                          temperature=0).text
    assert moved[True] >= 64 << 20 and moved[False] == 0  # the 94 MB of weights at least
    assert answers[True] == answers[False] and answers[True]
