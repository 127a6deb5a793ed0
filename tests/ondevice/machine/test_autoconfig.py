"""Auto-configuration: context sizing from RAM, and device choice among ONNX Runtime providers."""

from __future__ import annotations

import pytest

from ondevice.machine.autoconfig import choose_context, choose_onnx_provider
from ondevice.errors import BackendUnavailable
from ondevice.models.model_info import read_info
from ondevice.models.store import resolve

GB = 1024 ** 3


def test_context_is_trained_length_when_it_fits(smollm2_path):
    info = read_info(resolve(smollm2_path))
    assert choose_context(info, None, available_bytes=16 * GB) == 8192


def test_context_is_capped_to_what_fits_in_available_ram(smollm2_path):
    info = read_info(resolve(smollm2_path))
    # 1 GB headroom + 98 MB weights leave ~100 MB: 23 KiB of f16 KV per token (30 layers x 3 KV heads x 64 x 2 x 2)
    ctx = choose_context(info, None, available_bytes=GB + info.size_bytes + 100 * 1024 * 1024)
    assert info.kv_bytes_per_token() == 23040
    assert ctx == 4352  # 100 MiB / 23040 B = 4551 tokens, rounded down to a multiple of 256


def test_requested_context_wins(smollm2_path):
    assert choose_context(read_info(resolve(smollm2_path)), 512, available_bytes=1) == 512


# No NPU or GPU exists on this machine: these pass made-up provider lists (mocked availability) to the chooser.
def test_auto_prefers_npu_over_gpu_and_cpu_mocked_providers():
    available = ["CUDAExecutionProvider", "QNNExecutionProvider", "CPUExecutionProvider"]
    assert choose_onnx_provider("auto", available) == "QNNExecutionProvider"


def test_auto_falls_back_to_cpu_mocked_providers():
    assert choose_onnx_provider("auto", ["AzureExecutionProvider", "CPUExecutionProvider"]) == "CPUExecutionProvider"


def test_named_device_must_be_offered_mocked_providers():
    assert choose_onnx_provider("openvino", ["OpenVINOExecutionProvider", "CPUExecutionProvider"]) == \
        "OpenVINOExecutionProvider"
    with pytest.raises(BackendUnavailable, match="not offered"):
        choose_onnx_provider("qnn", ["CPUExecutionProvider"])
