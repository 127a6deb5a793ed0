"""`ondevice doctor`: what this machine is, what the runtimes can use on it, and what could go wrong."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable

from ondevice.machine.autoconfig import llama_gpu_offload_supported, memory, onnx_providers
from ondevice.machine.bandwidth import BandwidthReport, machine_bandwidth
from ondevice.machine.cpu import detect_cpu
from ondevice.machine.providers import PluginProvider, plugin_providers

GB = 1024 ** 3


@dataclass
class LlamaCppFacts:
    installed: bool
    version: str | None = None
    system_info: str = ""
    gpu_offload: bool = False
    features: dict[str, bool] = field(default_factory=dict)  # "AVX2": True, "AMX_INT8": False, ...


@dataclass
class DoctorReport:
    """Everything `doctor` found. JSON keys are the field names."""

    os: str
    python: str
    cpu: str
    arch: str
    cores: dict
    isa: list[str]
    ram_total_gb: float
    ram_available_gb: float
    bandwidth_gbps: float            # the anchor: `bandwidth.gbps` (read, best pass, physical cores)
    bandwidth: BandwidthReport       # every kernel and thread count, the spread, the date, cached or not
    llama_cpp: LlamaCppFacts
    onnxruntime_version: str | None
    onnxruntime_genai_version: str | None
    onnxruntime_providers: list[str]
    hazards: list[str]
    onnxruntime_plugins: list[PluginProvider] = field(default_factory=list)  # plugin EP packages (the openvino extra)

    def to_dict(self) -> dict:
        return asdict(self)


def _parse_system_info(text: str) -> dict[str, bool]:
    """llama.cpp prints "CPU : SSE3 = 1 | AVX = 1 | ... |"; keep each feature as a bool."""
    features: dict[str, bool] = {}
    for part in text.replace("\n", "|").split("|"):
        name, sep, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if sep and name:
            features[name] = value.strip() not in ("0", "")
    return features


def llama_cpp_facts() -> LlamaCppFacts:
    try:
        import llama_cpp
    except Exception:
        return LlamaCppFacts(installed=False)
    info = llama_cpp.llama_print_system_info()
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return LlamaCppFacts(installed=True, version=getattr(llama_cpp, "__version__", None), system_info=text.strip(),
                         gpu_offload=llama_gpu_offload_supported(), features=_parse_system_info(text))


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def find_hazards(cpu, llama: LlamaCppFacts, ram_available_gb: float,
                 plugins: list[PluginProvider] | None = None) -> list[str]:
    """Known ways this machine + these builds can crash or run badly, each as one sentence."""
    hazards = []
    for plugin in plugins or []:
        if not plugin.usable:
            hazards.append(f"{plugin.name} ({plugin.package}) is installed but not usable here (see its row): ONNX "
                           f"models asked to run on it run on CPUExecutionProvider")
    if cpu.has_amx and any(v for k, v in llama.features.items() if k.startswith("AMX")):
        hazards.append("AMX present and the installed libllama has AMX kernels: decode may crash "
                       "(llama.cpp #20824); rebuild with `make install` (it turns AMX off)")
    if not llama.installed:
        hazards.append("llama-cpp-python is not installed: GGUF models cannot run (run `make install`)")
    if llama.installed and "avx2" in cpu.flags and llama.features and not llama.features.get("AVX2", False):
        hazards.append("the CPU has AVX2 but libllama was built without it: decode will be several times slower")
    if ram_available_gb < 2:
        hazards.append(f"only {ram_available_gb:.1f} GB RAM available: models above ~1B parameters will not fit")
    return hazards


def diagnose(refresh_bandwidth: bool = False, progress: Callable[[str], None] | None = None) -> DoctorReport:
    """Collect the machine's facts. The bandwidth comes from this machine's cache (`ondevice.machine.bandwidth`); it is
    measured (a few seconds) when there is none yet or `refresh_bandwidth`."""
    cpu = detect_cpu()
    bandwidth = machine_bandwidth(refresh=refresh_bandwidth, progress=progress)
    mem = memory()
    llama = llama_cpp_facts()
    avail_gb = round(mem.available_bytes / GB, 2)
    plugins = list(plugin_providers().values())
    return DoctorReport(
        os=f"{platform.system()} {platform.release()}", python=sys.version.split()[0], cpu=cpu.model, arch=cpu.arch,
        cores={"physical": cpu.physical_cores, "logical": cpu.logical_cores}, isa=cpu.flags,
        ram_total_gb=round(mem.total_bytes / GB, 2), ram_available_gb=avail_gb,
        bandwidth_gbps=bandwidth.gbps, bandwidth=bandwidth,
        llama_cpp=llama, onnxruntime_version=_version("onnxruntime"),
        onnxruntime_genai_version=_version("onnxruntime-genai"), onnxruntime_providers=onnx_providers(),
        hazards=find_hazards(cpu, llama, avail_gb, plugins), onnxruntime_plugins=plugins,
    )
