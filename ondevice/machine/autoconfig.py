"""Choose runtime settings for this machine: threads, context length and device."""

from __future__ import annotations

from dataclasses import dataclass

from ondevice.machine.cpu import detect_cpu
from ondevice.models.memory import context_that_fits
from ondevice.models.model_info import ModelInfo


@dataclass
class Memory:
    total_bytes: int
    available_bytes: int


def memory() -> Memory:
    import psutil

    vm = psutil.virtual_memory()
    return Memory(total_bytes=int(vm.total), available_bytes=int(vm.available))


def default_threads() -> int:
    """Physical cores: hyper-threads share the same vector units and memory bus, and add little to decode."""
    return max(1, detect_cpu().physical_cores)


def choose_context(info: ModelInfo, requested: int | None, available_bytes: int | None = None,
                   kv_type: str = "f16", mmap: bool = False) -> int:
    """The requested context, or the trained length capped so the model fits in available RAM.

    The fit is `ondevice.models.memory.context_that_fits` with the same KV cache type and mmap setting the model will run
    with, so a q8_0 cache (about half of f16) buys about twice the tokens.
    """
    if requested is not None:
        return int(requested)
    available = memory().available_bytes if available_bytes is None else available_bytes
    return context_that_fits(info, available, kv_type, mmap)


# ONNX Runtime execution providers that put work on an NPU or GPU, in order of preference.
ACCELERATOR_PROVIDERS = ("QNNExecutionProvider", "OpenVINOExecutionProvider", "CoreMLExecutionProvider",
                         "DmlExecutionProvider", "CUDAExecutionProvider")
PROVIDER_ALIASES = {
    "qnn": "QNNExecutionProvider", "npu": "QNNExecutionProvider", "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider", "dml": "DmlExecutionProvider", "directml": "DmlExecutionProvider",
    "cuda": "CUDAExecutionProvider", "gpu": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider",
}


def onnx_providers() -> list[str]:
    """onnxruntime's providers here, plugin EPs that offer a device included (ondevice.machine.providers)."""
    try:
        from ondevice.machine.providers import available_providers

        return available_providers()
    except Exception:
        return []


@dataclass
class OnnxDevice:
    """Where an ONNX model will run: the provider, the plugin device kind ("CPU"/"GPU"/"NPU", or None for the
    provider's default) and, when a request fell back to the CPU provider, the one-line reason."""

    provider: str
    kind: str | None = None
    note: str = ""


def resolve_onnx_device(device: str, available: list[str] | None = None) -> OnnxDevice:
    """`choose_onnx_provider`, plus a device kind ("openvino:gpu") and the fallback of an installed plugin EP that
    offers no device on this machine: that runs on the CPU provider with a ProviderFallback warning. "auto" takes a
    plugin EP only when it offers a GPU or NPU."""
    from ondevice.machine.providers import CPU, fallback_warning, plugin_providers, unusable_plugin

    name, _, kind = device.partition(":")
    wanted = PROVIDER_ALIASES.get(name.lower(), name)
    if wanted == CPU:
        return OnnxDevice(CPU)  # always there; and a CPU run never loads (or trips on) a plugin library
    available = onnx_providers() if available is None else available
    if name == "auto":
        # A plugin EP that offers only the CPU runs on the same silicon as the CPU provider: measured slower on
        # int8/int4 graphs and not bit-identical (docs/npu.md), so "auto" takes it only for a GPU or an NPU.
        plugins = plugin_providers()
        available = [p for p in available if p not in plugins or set(plugins[p].devices) - {"CPU"}]
    if name != "auto" and wanted not in available:
        plugin = unusable_plugin(wanted)
        if plugin is not None:
            return OnnxDevice(CPU, None, fallback_warning(wanted, plugin.note))
    kind = kind.upper() or None
    plugin = plugin_providers().get(wanted)
    if kind and plugin is not None and plugin.usable and kind not in plugin.devices:
        return OnnxDevice(CPU, None, fallback_warning(wanted, f"it offers no {kind} here (it offers: "
                                                              f"{', '.join(plugin.devices)})"))
    return OnnxDevice(choose_onnx_provider(name, available), kind)


def choose_onnx_provider(device: str, available: list[str] | None = None) -> str:
    """Map a device request onto an available ONNX Runtime provider; "auto" prefers an accelerator."""
    from ondevice.errors import BackendUnavailable

    available = onnx_providers() if available is None else available
    if device == "auto":
        for provider in ACCELERATOR_PROVIDERS:
            if provider in available:
                return provider
        return "CPUExecutionProvider"
    wanted = PROVIDER_ALIASES.get(device.lower(), device)
    if wanted not in available:
        hint = " (install it with `pip install ondevice-toolkit[openvino]`)" if wanted == "OpenVINOExecutionProvider" \
            else ""
        raise BackendUnavailable(f"device {device!r} ({wanted}) is not offered by this onnxruntime; "
                                 f"available: {', '.join(available) or 'none'}{hint}")
    return wanted


def llama_gpu_offload_supported() -> bool:
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        return False
