"""The ONNX LLM backend puts onnxruntime's pre-packed weights on transparent huge pages (most of them live on the C
heap, hence `huge_pages(heap=True)`), and the answers stay the same: the move copies memory, it changes no number.

Each load runs in a fresh process, as a CLI, server or benchmark process loads its model: only what a load adds to
the heap is moved, and this test process's heap already has room from the export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ondevice.hugepages import huge_page_size

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
    threads are writing, so a load off the main thread does not even look at it (ondevice.hugepages.huge_pages);
    on the main thread it does."""
    import threading

    import ondevice.hugepages as hugepages

    looked = []
    real_heap = hugepages._heap
    monkeypatch.setattr(hugepages, "_heap", lambda: looked.append(threading.current_thread().name) or real_heap())

    def load(label):
        with hugepages.huge_pages(True, heap=True):
            blocks = [bytearray(1 << 16) for _ in range(64)]
        return label, len(blocks)

    worker = threading.Thread(target=load, args=("worker",), name="worker")
    worker.start()
    worker.join()
    assert looked == []
    load("main")
    assert looked and set(looked) == {threading.main_thread().name}
