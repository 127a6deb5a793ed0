"""Back a freshly loaded model's memory with transparent huge pages (Linux).

Decoding streams every weight once per token, so the CPU walks the whole weight buffer page by page. libllama
allocates that buffer (and the KV cache) with the C allocator in 4 KiB pages; on most Linux systems transparent
huge pages are on only where a program asks for them (`/sys/kernel/mm/transparent_hugepage/enabled` = madvise),
and ggml does not ask. With 2 MiB pages the TLB covers the weights and decode is faster: measured on the 2-core
development machine (SmolLM2 Q4_1, 2 threads, flash attention, quiet), 100 -> 127 tok/s in one process before and
after; the same gain that `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` gives a C program, without asking users to set
an environment variable before Python starts.

How: `huge_pages()` wraps a model load. It notes the anonymous mappings that existed before; afterwards, every new
one of at least `MIN_REGION` bytes is collapsed onto huge pages, 2 MiB chunk by 2 MiB chunk, by the kernel
(`madvise(MADV_COLLAPSE)`, Linux 6.1 and later): the kernel copies each chunk onto a huge page under its own page
locks, so a native thread of the process that writes or frees that memory at the same time (an onnxruntime or
libllama worker, a server's or Ray's threads sharing the C heap) loses nothing. Addresses do not change, so no
pointer held by libllama moves. Only chunks whose every page is already resident are collapsed (`mincore`), so
memory use does not grow (an untouched compute buffer stays untouched; thread stacks are never fully resident).

Kernels without `MADV_COLLAPSE` get the same result by hand: a new aligned chunk is mapped, advised
(`MADV_HUGEPAGE`), filled with a copy of the old chunk, and moved onto the old address with
`mremap(MREMAP_FIXED)`. That copy is only safe when nothing else writes the chunk between the copy and the remap,
so it is done only while the process has a single thread (`/proc/self/task`); with any other thread it is skipped.
(It used to run with only the GIL held, and native threads do not take the GIL: a write landing between a chunk's
copy and its remap was lost. Three clean-clone CI runs crashed on memory corrupted earlier; this race was the
suspect, and `tests/ondevice/machine/test_hugepages.py` shows the by-hand path losing a native thread's writes.)

Loads of more than `MAX_TOTAL` bytes are left alone: large models are bound by memory bandwidth, not by page
walks (the Llama-3-8B shape probe, Q4_K_M, decoded at the same speed either way), and moving gigabytes costs
seconds of load time.

Anything unexpected (not Linux, THP off, a kernel that refuses) leaves the memory as it was: this is a speed-up,
never a requirement. `RuntimeOptions(huge_pages=False)` or `ONDEVICE_HUGE_PAGES=0` turns it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

MIN_REGION = 16 << 20      # below this a mapping is not a model buffer (and 8 MiB thread stacks stay out)
MAX_TOTAL = 1 << 30        # larger loads are left alone: an 8B Q4_K_M (4.7 GB) decoded no faster (bandwidth-bound)
                           # and the move cost about 2 s per GB
_THP = Path("/sys/kernel/mm/transparent_hugepage")
_PROT_RW, _MAP_PRIVATE_ANON = 0x3, 0x22
_MADV_HUGEPAGE = 14
_MADV_COLLAPSE = 25        # Linux 6.1+
_EINVAL = 22               # errno
_MREMAP_MAYMOVE_FIXED = 0x3


@dataclass
class HugePageReport:
    """What `huge_pages()` did for one load."""

    moved_bytes: int = 0      # bytes now backed by huge pages
    regions: int = 0          # new anonymous mappings looked at
    seconds: float = 0.0
    reason: str = ""          # why nothing was done, when nothing was


def huge_page_size() -> int | None:
    """The PMD huge page size when transparent huge pages can be used here (Linux, THP not "never"), else None."""
    if not sys.platform.startswith("linux") or os.environ.get("ONDEVICE_HUGE_PAGES", "1") == "0":
        return None
    try:
        if "[never]" in (_THP / "enabled").read_text():
            return None
        return int((_THP / "hpage_pmd_size").read_text())
    except (OSError, ValueError):
        return None


def _memory_map() -> tuple[set[tuple[int, int]], tuple[int, int] | None]:
    """One read of /proc/self/maps: the writable anonymous mappings, and the C heap's (start, end) (the brk area,
    where malloc puts small and medium blocks) or None."""
    regions, heap = set(), None
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if len(parts) == 5 and parts[1].startswith("rw") and parts[4] == "0":  # no path: anonymous memory
                regions.add((start, end))
            elif parts[-1] == "[heap]":
                heap = (start, end)
    return regions, heap


@functools.cache
def _libc() -> "_Libc":
    return _Libc()


class _Libc:
    """The few libc calls needed. The by-hand move goes through PyDLL, which keeps the GIL held (no Python thread
    runs during it); the kernel's collapse goes through CDLL, which releases it (safe, and a 1 GB collapse takes
    seconds that a server's other threads need not wait for)."""

    def __init__(self) -> None:
        libc = ctypes.PyDLL(None, use_errno=True)
        self.mmap = libc.mmap
        self.mmap.restype = ctypes.c_void_p
        self.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        self.munmap = libc.munmap
        self.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.madvise = libc.madvise
        self.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.mincore = libc.mincore
        self.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self.memmove = libc.memmove  # not ctypes.memmove: that one releases the GIL
        self.memmove.restype = ctypes.c_void_p
        self.memmove.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self.mremap = libc.mremap
        self.mremap.restype = ctypes.c_void_p
        self.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
        self.collapse_call = ctypes.CDLL(None, use_errno=True).madvise
        self.collapse_call.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.can_collapse = self._probe_collapse()

    def _probe_collapse(self) -> bool:
        """Whether this kernel has MADV_COLLAPSE: tried once on a private chunk of our own (the call's EINVAL
        also means "not this kind of memory", so a refusal on some other range proves nothing)."""
        hp = huge_page_size() or 2 << 20
        raw = self.mmap(None, 2 * hp, _PROT_RW, _MAP_PRIVATE_ANON, -1, 0)
        if raw is None or raw == ctypes.c_void_p(-1).value:
            return False
        try:
            chunk = (raw + hp - 1) & ~(hp - 1)
            ctypes.memset(chunk, 1, hp)
            return self.collapse_call(chunk, hp, _MADV_COLLAPSE) == 0 or ctypes.get_errno() != _EINVAL
        finally:
            self.munmap(raw, 2 * hp)

    def collapse(self, start: int, size: int) -> bool | None:
        """True when the kernel collapsed the range onto huge pages, False when it refused this range, None when
        this kernel has no MADV_COLLAPSE."""
        if not self.can_collapse:
            return None
        return self.collapse_call(start, size, _MADV_COLLAPSE) == 0


def single_threaded() -> bool:
    """Whether this process has one thread, native ones included (threading only knows Python's)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _resident(libc: _Libc, start: int, size: int, page: int) -> bool:
    vec = (ctypes.c_ubyte * (size // page))()
    if libc.mincore(start, size, vec) != 0:
        return False
    return all(v & 1 for v in vec)


def _move_chunk(libc: _Libc, start: int, size: int, page: int | None = None) -> bool:
    """Put [start, start+size) (huge-page aligned) onto a huge page in place: the kernel's collapse, or by hand
    while the process has one thread."""
    # Checked again right before: a native thread of the process (a server's, Ray's) may have unmapped a region
    # since the scan (copying from it crashed the process once in CI; collapsing it would fault memory back in).
    if not _resident(libc, start, size, page or os.sysconf("SC_PAGE_SIZE")):
        return False
    collapsed = libc.collapse(start, size)
    if collapsed is not None:
        return collapsed
    if not single_threaded():  # another thread could write the chunk between the copy and the remap
        return False
    raw = libc.mmap(None, 2 * size, _PROT_RW, _MAP_PRIVATE_ANON, -1, 0)
    if raw is None or raw == ctypes.c_void_p(-1).value:
        return False
    new = (raw + size - 1) & ~(size - 1)
    if new > raw:
        libc.munmap(raw, new - raw)
    if raw + 2 * size > new + size:
        libc.munmap(new + size, raw + 2 * size - (new + size))
    libc.madvise(new, size, _MADV_HUGEPAGE)
    libc.memmove(new, start, size)
    if libc.mremap(new, size, size, _MREMAP_MAYMOVE_FIXED, start) != start:
        libc.munmap(new, size)  # the old pages are untouched: nothing lost
        return False
    return True


def resident_chunks(regions: set[tuple[int, int]], hp: int) -> list[int]:
    """Start addresses of the huge-page-aligned chunks of `regions` whose every page is resident."""
    libc, page = _libc(), os.sysconf("SC_PAGE_SIZE")
    chunks = []
    for start, end in sorted(regions):
        chunk = (start + hp - 1) & ~(hp - 1)
        while chunk + hp <= end:
            if _resident(libc, chunk, hp, page):
                chunks.append(chunk)
            chunk += hp
    return chunks


def promote(chunks: list[int], hp: int) -> int:
    """Put each chunk onto huge pages (see the module docstring); returns the bytes now on huge pages."""
    libc, page = _libc(), os.sysconf("SC_PAGE_SIZE")
    return sum(hp for chunk in chunks if _move_chunk(libc, chunk, hp, page))


@contextlib.contextmanager
def huge_pages(enabled: bool = True, heap: bool = False) -> Iterator[HugePageReport]:
    """Wrap a model load: the large anonymous mappings it creates end up on huge pages where the system allows.

    heap: also what the load added to the C heap, when it grew by at least `MIN_REGION` (onnxruntime keeps its
    pre-packed weights in many malloc blocks of under a megabyte, which land there, not in mappings of their own).
    Only for a load on the main thread: the heap is the main thread's malloc arena, shared by the whole process;
    on the main thread its growth during the load is the load's own, while a load on another thread (an app
    loading in the background while its main thread works) cannot tell its growth from others' and leaves it.
    Yields the `HugePageReport`, filled in when the block ends without an exception."""
    report = HugePageReport()
    heap = heap and threading.current_thread() is threading.main_thread()
    hp = huge_page_size() if enabled else None
    if hp is None:
        report.reason = "off" if not enabled else "no transparent huge pages here"
        yield report
        return
    try:
        before, heap_before = _memory_map()
        heap_before = heap_before if heap else None
    except OSError:
        report.reason = "/proc/self/maps unreadable"
        yield report
        return
    yield report
    try:
        t0 = time.perf_counter()
        after, heap_after = _memory_map()
        new = {r for r in after - before if r[1] - r[0] >= MIN_REGION}
        if heap_before and heap_after and heap_after[0] == heap_before[0] \
                and heap_after[1] - heap_before[1] >= MIN_REGION:
            new.add((heap_before[1], heap_after[1]))  # only the growth: what was there before is not the model's
        chunks = resident_chunks(new, hp)
        report.regions = len(new)
        if len(chunks) * hp > MAX_TOTAL:
            report.reason = f"left as is: {len(chunks) * hp >> 20} MiB resident is over {MAX_TOTAL >> 20} MiB"
            return
        report.moved_bytes = promote(chunks, hp)
        report.seconds = time.perf_counter() - t0
    except (OSError, AttributeError, ValueError) as exc:  # a speed-up only: never fail a load for it
        report.reason = f"not moved: {exc}"
