"""How the ONNX LLM backend sets up onnxruntime-genai: the `threads` option reaches onnxruntime's intra-op pool
(onnxruntime-genai alone picks half the logical CPUs: one thread on a 2-core machine, which made int4 decode 0.89x
of GGUF's), and runtime settings never change what the model answers. A tiny random-weight llama exported once."""

from __future__ import annotations

import os

import pytest

import ondevice


def _threads_started_by_load(folder, threads: int) -> tuple[int, object]:
    before = len(os.listdir("/proc/self/task"))
    model = ondevice.load(folder, n_ctx=64, threads=threads)
    return len(os.listdir("/proc/self/task")) - before, model


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc (Linux)")
def test_threads_option_sizes_onnxruntimes_pool(tiny_onnx_int4_dir):
    first = ondevice.load(tiny_onnx_int4_dir, n_ctx=64, threads=1)  # process-wide pools start with the first model
    one, m1 = _threads_started_by_load(tiny_onnx_int4_dir, 1)
    three, m3 = _threads_started_by_load(tiny_onnx_int4_dir, 3)
    try:
        assert three - one == 2  # an intra-op pool of n threads is the caller plus n - 1 workers
    finally:
        for m in (first, m1, m3):
            m.close()


def test_greedy_answer_is_the_same_on_one_and_two_threads(tiny_onnx_int4_dir):
    answers = []
    for threads in (1, 2):
        model = ondevice.load(tiny_onnx_int4_dir, n_ctx=64, threads=threads)
        try:
            answers.append(model.generate("The function returns", max_tokens=12).tokens)
        finally:
            model.close()
    assert answers[0] == answers[1]
    assert len(answers[0]) > 0


def test_prompt_with_nothing_in_common_rewinds_to_the_cold_start_answer(tiny_onnx_int4_dir):
    # No common prefix: the generator is rewound to 0 and kept (its KV buffers are not allocated again); the
    # answer must be the one a fresh generator gives.
    model = ondevice.load(tiny_onnx_int4_dir, n_ctx=64, threads=2)
    try:
        first, other = "Numbers 1, 2 and 3 are", "def add(a, b):"
        assert model.tokenize(first)[0] != model.tokenize(other)[0]
        model.clear_cache()
        cold = model.generate(other, max_tokens=10)
        model.generate(first, max_tokens=10)
        warm = model.generate(other, max_tokens=10)
        assert warm.timings.reused_tokens == 0
        assert warm.tokens == cold.tokens
        assert warm.text == cold.text
    finally:
        model.close()
