"""The ONNX LLM backend puts onnxruntime's pre-packed weights on transparent huge pages (most of them live on the C
heap, hence `huge_pages(heap=True)`), and the answers stay the same: the move copies memory, it changes no number.

Each load runs in a fresh process, as a CLI, server or benchmark process loads its model: only what a load adds to
the heap is moved, and this test process's heap already has room from the export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ondevice.machine.hugepages import huge_page_size

needs_thp = pytest.mark.skipif(huge_page_size() is None, reason="no transparent huge pages on this system")

CHILD = """
import json, sys, ondevice
with ondevice.load(sys.argv[1], n_ctx=512, threads=2, huge_pages=sys.argv[2] == "on") as m:
    out = m.chat([{"role": "user", "content": "Name three colours."}], max_tokens=16, temperature=0)
    print(json.dumps({"moved": m._backend.huge_pages.moved_bytes, "tokens": out.tokens, "text": out.text}))
"""


def _load_in_fresh_process(folder, huge: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), huge], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_thp
def test_onnx_weights_move_to_huge_pages_and_answers_stay_the_same(smollm2_onnx_int4):
    on = _load_in_fresh_process(smollm2_onnx_int4.info.path, "on")
    off = _load_in_fresh_process(smollm2_onnx_int4.info.path, "off")
    assert on["moved"] >= 64 << 20  # most of the ~100 MB of weights (new mappings alone: 32 MB)
    assert off["moved"] == 0
    assert on["tokens"] == off["tokens"] and on["text"]


@needs_thp
def test_a_load_off_the_main_thread_leaves_the_shared_heap_alone(monkeypatch):
    """The C heap is the main thread's arena: grown during another thread's load, it may hold memory that other
    threads are writing, so a load off the main thread never offers the heap's growth for moving
    (ondevice.machine.hugepages.huge_pages); on the main thread it does."""
    import threading

    import ondevice.machine.hugepages as hugepages

    offered = {}  # thread name -> the regions huge_pages handed on for moving
    heaps = []    # the heap's extent at each look at the memory map
    real_chunks, real_map = hugepages.resident_chunks, hugepages._memory_map

    def chunks(regions, hp):
        offered[threading.current_thread().name] = set(regions)
        return real_chunks(regions, hp)

    def memory_map():
        regions, heap = real_map()
        heaps.append(heap)
        return regions, heap

    monkeypatch.setattr(hugepages, "resident_chunks", chunks)
    monkeypatch.setattr(hugepages, "_memory_map", memory_map)

    def grow_heap():
        """Small malloc blocks, as onnxruntime makes, until the heap has grown by 40 MB (free room left in it by
        earlier tests is used up first)."""
        end, blocks = real_map()[1][1], []
        while real_map()[1][1] - end < 40 << 20:
            blocks += [bytearray(1 << 16) for _ in range(64)]
            assert len(blocks) < 1 << 15, "the heap did not grow"  # 2 GiB without growing: not a brk heap
        return blocks

    def load(during=grow_heap):
        with hugepages.huge_pages(True, heap=True):
            return during()

    # The hazard: a background load while the main thread grows the heap with memory of its own.
    inside, grown = threading.Event(), threading.Event()
    worker = threading.Thread(target=load, name="worker", args=(lambda: inside.set() or grown.wait(30),))
    worker.start()
    inside.wait(30)
    mine = grow_heap()
    grown.set()
    worker.join()
    held = load()  # `mine` stays allocated, so this load has to grow the heap further
    assert mine and held

    def in_heap(regions):  # the regions that lie in the heap as any look at the memory map saw it
        return [r for r in regions if any(h and r[0] < h[1] and h[0] < r[1] for h in heaps)]

    assert in_heap(offered["worker"]) == []
    assert in_heap(offered[threading.main_thread().name]) == [(heaps[-2][1], heaps[-1][1])]  # the growth only
