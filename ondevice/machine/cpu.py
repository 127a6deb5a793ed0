"""CPU facts read from the operating system, with the standard library only.

This module is imported by the install step (before any dependency exists), by `doctor` and by the
auto-configuration of threads, so it must stay free of third-party imports.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

# ISA extensions we report, by the name /proc/cpuinfo uses on x86 Linux.
X86_FLAGS_OF_INTEREST = (
    "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512vbmi", "avx512_vnni", "avx512_bf16",
    "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
)
ARM_FLAGS_OF_INTEREST = ("asimd", "asimddp", "sve", "sve2", "i8mm", "bf16", "fphp", "asimdhp")


@dataclass
class CpuInfo:
    """What the CPU is and which vector extensions it has."""

    model: str
    arch: str
    physical_cores: int
    logical_cores: int
    flags: list[str] = field(default_factory=list)

    @property
    def has_amx(self) -> bool:
        return any(f.startswith("amx") for f in self.flags)

    @property
    def has_avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def has_neon(self) -> bool:
        return self.arch in ("arm64", "aarch64") and ("asimd" in self.flags or platform.system() == "Darwin")


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _physical_cores(text: str, logical: int) -> int:
    """Count distinct (physical id, core id) pairs; fall back to logical count."""
    pairs: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines():
        if line.startswith("physical id"):
            phys = line.split(":", 1)[1].strip()
        elif line.startswith("core id"):
            core = line.split(":", 1)[1].strip()
        elif not line.strip():
            if phys is not None and core is not None:
                pairs.add((phys, core))
            phys = core = None
    if phys is not None and core is not None:
        pairs.add((phys, core))
    if pairs:
        return min(len(pairs), logical)
    return logical


def detect_cpu() -> CpuInfo:
    """Read model name, core counts and ISA flags of this machine's CPU."""
    arch = platform.machine().lower()
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    text = _read_cpuinfo()
    model = platform.processor() or arch
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Hardware", "Model") and value.strip():
            model = value.strip()
        elif key in ("flags", "Features"):
            flags.update(value.split())
    wanted = X86_FLAGS_OF_INTEREST if arch in ("x86_64", "amd64") else ARM_FLAGS_OF_INTEREST
    return CpuInfo(
        model=model,
        arch=arch,
        physical_cores=_physical_cores(text, logical) if text else logical,
        logical_cores=logical,
        flags=sorted(f for f in flags if f in wanted),
    )


def llama_cmake_args(cpu: CpuInfo) -> list[str]:
    """CMake options for building llama.cpp safely on this CPU.

    On x86 we never use GGML_NATIVE: on CPUs that report AMX, a native build enables the AMX kernels and the first
    decode segfaults (llama.cpp issue #20824). Instead every extension the CPU has is named explicitly and AMX is
    left out. Other architectures keep llama.cpp's defaults (NEON/Metal are safe there).
    """
    if cpu.arch not in ("x86_64", "amd64"):
        return []
    option_for_flag = {
        "avx": "GGML_AVX", "avx2": "GGML_AVX2", "fma": "GGML_FMA", "f16c": "GGML_F16C", "bmi2": "GGML_BMI2",
        "avx512f": "GGML_AVX512", "avx512vbmi": "GGML_AVX512_VBMI", "avx512_vnni": "GGML_AVX512_VNNI",
        "avx512_bf16": "GGML_AVX512_BF16", "avx_vnni": "GGML_AVX_VNNI",
    }
    args = ["-DGGML_NATIVE=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    for flag, option in option_for_flag.items():
        args.append(f"-D{option}={'ON' if flag in cpu.flags else 'OFF'}")
    return args
