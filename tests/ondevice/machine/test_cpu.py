"""The llama.cpp build flags follow the CPU and never enable the crashing AMX path."""

from ondevice.machine.cpu import CpuInfo, detect_cpu, llama_cmake_args


def _cpu(flags, arch="x86_64"):
    return CpuInfo("test", arch, 4, 8, flags)


def test_amx_cpu_gets_explicit_flags_with_native_and_amx_off():
    args = llama_cmake_args(_cpu(["avx", "avx2", "fma", "f16c", "avx512f", "amx_tile", "amx_int8"]))
    assert "-DGGML_NATIVE=OFF" in args
    assert "-DGGML_AMX_INT8=OFF" in args and "-DGGML_AMX_TILE=OFF" in args
    assert "-DGGML_AVX512=ON" in args and "-DGGML_AVX2=ON" in args


def test_cpu_without_avx512_gets_no_avx512_flags():
    args = llama_cmake_args(_cpu(["avx", "avx2", "fma", "f16c"]))
    assert "-DGGML_AVX512=OFF" in args and "-DGGML_AVX512_VNNI=OFF" in args
    assert "-DGGML_AVX2=ON" in args


def test_arm_gets_no_x86_flags():
    assert llama_cmake_args(_cpu(["asimd"], arch="aarch64")) == []


def test_detect_cpu_reads_this_machine():
    cpu = detect_cpu()
    assert cpu.logical_cores >= cpu.physical_cores >= 1
    assert cpu.model
