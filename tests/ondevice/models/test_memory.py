"""The one memory estimator: KV cache types, the terms of an estimate, and context sizing from available RAM."""

from __future__ import annotations

import pytest

from ondevice.machine.autoconfig import choose_context
from ondevice.errors import InvalidInput
from ondevice.models.memory import context_that_fits, estimate_memory, kv_bytes
from ondevice.models.model_info import ModelInfo, read_info
from ondevice.models.store import resolve

GB = 1024 ** 3


@pytest.fixture(scope="module")
def smollm2_info(smollm2_path):
    return read_info(resolve(smollm2_path))


def test_quantised_kv_cache_is_smaller_by_exactly_the_block_ratio(smollm2_info):
    f16 = kv_bytes(smollm2_info, 4096, "f16")
    assert f16 == 23040 * 4096  # 30 layers x 3 KV heads x 64 dims x 2 (K, V) x 2 bytes
    assert kv_bytes(smollm2_info, 4096, "q8_0") * 64 == f16 * 34  # 34 bytes per 32 elements vs 64
    assert kv_bytes(smollm2_info, 4096, "q4_0") * 64 == f16 * 18  # 18 bytes per 32 elements vs 64


def test_unknown_kv_type_is_a_user_error(smollm2_info):
    with pytest.raises(InvalidInput, match="q4_0"):
        kv_bytes(smollm2_info, 1024, "q4")


def test_estimate_is_the_sum_of_its_terms_and_grows_with_context(smollm2_info):
    short, long = estimate_memory(smollm2_info, 1024), estimate_memory(smollm2_info, 4096)
    assert short.total_bytes == (short.weights_bytes + short.kv_bytes + short.compute_bytes
                                 + short.runtime_bytes)
    assert short.weights_bytes == smollm2_info.size_bytes and short.mapped_bytes == 0
    assert long.kv_bytes == 4 * short.kv_bytes and long.total_bytes > short.total_bytes
    # a quantised cache needs flash attention, which has no heads x context score matrix
    assert estimate_memory(smollm2_info, 4096, "q8_0").compute_bytes < long.compute_bytes


def test_context_sizing_buys_more_tokens_with_a_quantised_cache(smollm2_info):
    available = GB + smollm2_info.size_bytes + 100 * 1024 * 1024
    f16 = choose_context(smollm2_info, None, available_bytes=available)
    q8 = choose_context(smollm2_info, None, available_bytes=available, kv_type="q8_0")
    q4 = choose_context(smollm2_info, None, available_bytes=available, kv_type="q4_0")
    assert f16 == 4352 and q8 == 8192 and q4 == 8192  # q8_0/q4_0 reach the trained length
    tight = GB + smollm2_info.size_bytes + 40 * 1024 * 1024
    assert choose_context(smollm2_info, None, available_bytes=tight) < \
        choose_context(smollm2_info, None, available_bytes=tight, kv_type="q8_0") < \
        choose_context(smollm2_info, None, available_bytes=tight, kv_type="q4_0")


def test_the_chosen_context_fits_and_the_next_step_does_not():
    big = ModelInfo.from_shapes("wide", "llama", n_layers=32, n_embd=4096, n_ff=14336, n_heads=32, n_kv_heads=32,
                                head_dim=128, vocab_size=32000, context_length=32768, size_bytes=4 * GB)
    available = 8 * GB
    ctx = context_that_fits(big, available)
    e, more = estimate_memory(big, ctx), estimate_memory(big, ctx + 256)
    assert 256 < ctx < 32768 and ctx % 256 == 0
    assert e.model_bytes + max(GB, e.compute_bytes + e.runtime_bytes) <= available
    assert more.model_bytes + max(GB, more.compute_bytes + more.runtime_bytes) > available
