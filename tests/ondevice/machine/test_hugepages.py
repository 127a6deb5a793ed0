"""Huge pages under a loaded model: memory moves in place, contents and answers do not change."""

from __future__ import annotations

import contextlib
import ctypes
import threading

import pytest

import ondevice
from ondevice.machine import hugepages
from ondevice.machine.hugepages import _libc, huge_page_size, huge_pages, promote, resident_chunks

HP = huge_page_size()
needs_thp = pytest.mark.skipif(HP is None, reason="no transparent huge pages on this system (not Linux, or THP off)")


def _anon_huge_kb(start: int, end: int) -> int:
    """AnonHugePages of the mappings that overlap [start, end), from /proc/self/smaps."""
    inside, total = False, 0
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo < end and start < hi  # overlapping: a collapse does not split the mapping
            elif inside and head == "AnonHugePages:":
                total += int(line.split()[1])
    return total


@contextlib.contextmanager
def _private_memory(size: int):
    """A private anonymous mapping, as malloc gives libllama (Python's mmap.mmap(-1) is shared memory, which the
    kernel's collapse treats differently); yields its address."""
    libc = ctypes.CDLL(None)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    addr = libc.mmap(None, size, 0x3, 0x22, -1, 0)  # PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
    try:
        yield addr
    finally:
        libc.munmap(addr, size)


@needs_thp
def test_resident_chunks_move_in_place_with_their_contents():
    pattern = bytes(range(256)) * (HP // 256)
    with _private_memory(4 * HP) as addr:  # fill two aligned chunks, leave the rest untouched
        start = (addr + HP - 1) & ~(HP - 1)
        for i in range(2):
            ctypes.memmove(start + i * HP, pattern, HP)
        chunks = resident_chunks({(addr, addr + 4 * HP)}, HP)
        assert chunks == [start, start + HP]  # the untouched chunks are not resident, so they are not moved
        assert promote(chunks, HP) == 2 * HP
        assert ctypes.string_at(start, HP) == pattern and ctypes.string_at(start + HP, HP) == pattern
        assert _anon_huge_kb(start, start + 2 * HP) >= 2 * HP // 1024
        ctypes.memmove(start, b"same", 4)  # still our mapping, still writable at the same address
        assert ctypes.string_at(start, 4) == b"same"


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


def _native_writer(dest: int, source: ctypes.Array, size: int) -> threading.Thread:
    """A thread that copies source over dest in one native call (the GIL released), as libllama's or onnxruntime's
    worker threads write their buffers."""
    libc = ctypes.CDLL(None)
    libc.memcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    started = threading.Event()

    def run():
        started.set()
        libc.memcpy(dest, source, size)

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    return thread


def _writes_survive(chunks_of: int) -> bool:
    """Promote a buffer while a native thread writes it; whether the buffer ends up holding what was written."""
    size = chunks_of * HP
    source = (ctypes.c_char * size).from_buffer_copy(b"\x05" * size)
    with _private_memory(size + HP) as addr:
        start = (addr + HP - 1) & ~(HP - 1)
        ctypes.memset(start, 0, size)  # resident, so every chunk is a candidate
        chunks = resident_chunks({(start, start + size)}, HP)
        writer = _native_writer(start, source, size)
        promote(chunks[::-1], HP)  # from the far end, so the promotion meets the writer inside some chunk
        writer.join()
        return ctypes.string_at(start, size) == bytes(source)


@needs_thp
def test_a_native_thread_writing_during_the_promotion_loses_nothing():
    """The kernel's collapse (MADV_COLLAPSE) takes the chunk's page locks while it copies, so a native thread
    writing the buffer meanwhile loses nothing; this is what every promotion does when the kernel has it."""
    if not _libc().can_collapse:
        pytest.skip("this kernel has no MADV_COLLAPSE (before Linux 6.1)")
    assert all(_writes_survive(64) for _ in range(5))


@needs_thp
def test_without_madv_collapse_the_copy_is_refused_while_other_threads_run(monkeypatch):
    """On a kernel without MADV_COLLAPSE (simulated), moving a chunk by hand races with native writers, so it is
    done only while the process has a single thread; here a second thread exists, so nothing moves."""
    monkeypatch.setattr(_libc(), "can_collapse", False)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    with _private_memory(2 * HP) as addr:
        start = (addr + HP - 1) & ~(HP - 1)
        ctypes.memset(start, 9, HP)
        try:
            assert promote([start], HP) == 0
            assert ctypes.string_at(start, 4) == b"\t\t\t\t"
        finally:
            stop.set()
            other.join()


@needs_thp
def test_the_by_hand_copy_would_lose_a_native_threads_writes(monkeypatch):
    """Why the by-hand copy needs a single thread: forced to run beside a native writer (simulated old kernel,
    the thread check bypassed), the writes that land between a chunk's copy and its remap are lost (measured: in 17
    of 20 tries; here at least one of 5)."""
    monkeypatch.setattr(_libc(), "can_collapse", False)
    monkeypatch.setattr(hugepages, "single_threaded", lambda: True)
    assert not all(_writes_survive(64) for _ in range(5))
