"""llama.cpp's own tools — llama-bench, llama-quantize, llama-imatrix — built from the installed libllama's source.

The GGUF runtime is llama-cpp-python, which vendors llama.cpp; its source distribution is the source of truth.
These tools are *not* part of the install (they would double the 2-core compile): the first call that needs one
downloads that source distribution with pip (the package registry, not a model), compiles llama.cpp's tools with
the same ISA flags the installed wheel was built with (read from the wheel folder's build record that
`install/llama_build.py` writes, else computed as it computes them), and keeps only the three static binaries in the
store, in a folder keyed by version + flags. 8.4 CPU-minutes (about 5 minutes on 2 idle cores), once; later calls
find the folder.

Used by `bench.native` (llama-bench beside `ondevice bench`) and `quantize.imatrix` (llama-imatrix); llama-quantize
is there to cross-check our quantiser. Build them ahead with `make native-tools` or `ondevice bench native --build`.

The same source distribution carries llama.cpp's own `convert_hf_to_gguf.py` (with its `conversion/` package and the
matching `gguf-py`): `ensure_converter` unpacks just those, and `quantize.llama_convert` runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ondevice.errors import BackendUnavailable, InvalidInput, OnDeviceError

TOOLS = ("llama-bench", "llama-quantize", "llama-imatrix")
# Built like the wheel's libllama, but standalone and static: self-contained binaries, nothing else compiled.
SCOPE_ARGS = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
              "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"]
BUILD_RECORD = "build.json"
_NEEDED_BYTES = 1_500_000_000  # source (220 MB) + objects + binaries, with room to spare
Progress = Callable[[str], None]


@dataclass
class NativeTools:
    """A built set of llama.cpp's tools."""

    bin_dir: Path
    version: str            # llama-cpp-python version whose vendored llama.cpp they were built from
    cmake_args: list[str]   # the ISA flags (same as the installed wheel's)
    flags_from: str         # "wheel build record" or "computed from this CPU"

    def tool(self, name: str) -> Path:
        """Path of one tool (`llama-bench`, `llama-quantize`, `llama-imatrix`)."""
        if name not in TOOLS:
            raise InvalidInput(f"unknown native tool {name!r}; built: {', '.join(TOOLS)}")
        return self.bin_dir / name


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        raise BackendUnavailable("llama-cpp-python is not installed (run `make install`)") from None


def _store() -> Path:
    from ondevice.models.store import store_dir

    return store_dir()


def build_flags() -> tuple[list[str], str]:
    """(CMake ISA args, where they came from): the installed wheel's build record, else this CPU's safe flags."""
    stamp = Path(sys.prefix) / "ondevice-llama-wheel.txt"  # written by install/llama_build.py
    if stamp.exists():
        record = _store() / "wheels" / stamp.read_text().strip() / BUILD_RECORD
        if record.exists():
            return list(json.loads(record.read_text())["cmake_args"]), "wheel build record"
    from ondevice.machine.cpu import detect_cpu, llama_cmake_args

    return llama_cmake_args(detect_cpu()), "computed from this CPU"


def _tools_dir(version: str, cmake_args: list[str]) -> Path:
    key = "|".join([version, sys.platform, *cmake_args, *SCOPE_ARGS])
    return _store() / "native" / f"llama.cpp-{version}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def find_tools() -> NativeTools | None:
    """The tools for the installed libllama if already built, else None (never builds)."""
    version = _version()
    args, source = build_flags()
    folder = _tools_dir(version, args)
    if all((folder / "bin" / t).exists() for t in TOOLS):
        return NativeTools(folder / "bin", version, args, source)
    return None


def ensure_tools(progress: Progress | None = None) -> NativeTools:
    """The tools for the installed libllama, building them first if needed (minutes; `progress` gets messages)."""
    found = find_tools()
    if found is not None:
        return found
    from ondevice.files import atomic_dir

    say = progress or (lambda message: None)
    if shutil.which("cmake") is None:
        raise BackendUnavailable("building llama.cpp's tools needs cmake and a C++ compiler (apt install cmake g++)")
    version = _version()
    args, source = build_flags()
    folder = _tools_dir(version, args)
    say(f"building llama.cpp's own tools ({', '.join(TOOLS)}) from llama-cpp-python {version}'s source with the "
        f"installed wheel's flags, once (about 5 minutes on 2 idle cores) -> {folder}")
    start = time.monotonic()
    with atomic_dir(folder, _NEEDED_BYTES) as staging:
        src = _unpack_source(version, staging / "src", say)
        _compile(src / "vendor" / "llama.cpp", staging / "build", args, say)
        (staging / "bin").mkdir()
        for tool in TOOLS:
            shutil.copy2(staging / "build" / "bin" / tool, staging / "bin" / tool)
        shutil.rmtree(staging / "src")
        shutil.rmtree(staging / "build")
        (staging / BUILD_RECORD).write_text(json.dumps(
            {"llama_cpp_python": version, "cmake_args": args, "flags_from": source, "scope_args": SCOPE_ARGS,
             "seconds": round(time.monotonic() - start, 1)}, indent=1) + "\n")
    say(f"built in {time.monotonic() - start:.0f} s")
    return NativeTools(folder / "bin", version, args, source)


def _sdist(version: str, say: Progress) -> Path:
    """llama-cpp-python's source distribution, downloaded with pip once and cached in the store."""
    cache = _store() / "native" / "sdist"
    tarball = cache / f"llama_cpp_python-{version}.tar.gz"
    if not tarball.exists():
        say(f"downloading the llama-cpp-python {version} source distribution with pip")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", tmp,
                  f"llama-cpp-python=={version}"], "pip download of the llama-cpp-python source")
            os.replace(next(Path(tmp).glob("llama_cpp_python-*.tar.gz")), tarball)
    return tarball


def _extract(tar: tarfile.TarFile, dest: Path, members=None) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members=members, filter="data")
    else:
        tar.extractall(dest, members=members)


def _unpack_source(version: str, dest: Path, say: Progress) -> Path:
    """Download llama-cpp-python's source distribution with pip (cached in the store) and unpack it to `dest`."""
    tarball = _sdist(version, say)
    dest.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        _extract(tar, dest)
    return next(dest.iterdir())


# The parts of the vendored llama.cpp that convert HF folders: the script, its per-family package, its gguf-py.
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/")
CONVERTER_SCRIPT = "convert_hf_to_gguf.py"


def find_converter() -> Path | None:
    """The folder holding llama.cpp's `convert_hf_to_gguf.py` for the installed libllama if unpacked, else None."""
    folder = _store() / "native" / f"llama.cpp-convert-{_version()}"
    return folder if (folder / CONVERTER_SCRIPT).exists() else None


def ensure_converter(progress: Progress | None = None) -> Path:
    """llama.cpp's own HF -> GGUF converter from the installed libllama's vendored source: the folder holding
    `convert_hf_to_gguf.py`, its `conversion/` package and the matching `gguf-py/` (the script puts that gguf first on
    its path). Unpacked from the same source distribution the tools are built from (a pip download, once, seconds
    when the tools were built already); only these parts (about 3 MB) are kept."""
    found = find_converter()
    if found is not None:
        return found
    from ondevice.files import atomic_dir

    say = progress or (lambda message: None)
    version = _version()
    folder = _store() / "native" / f"llama.cpp-convert-{version}"
    tarball = _sdist(version, say)
    say(f"unpacking llama.cpp's convert_hf_to_gguf.py from llama-cpp-python {version}'s source -> {folder}")
    with atomic_dir(folder, 64_000_000) as staging, tarfile.open(tarball) as tar:
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        wanted = [m for m in tar.getmembers() if m.name.startswith(prefix)
                  and any(m.name[len(prefix):].startswith(part) for part in CONVERTER_PARTS)]
        if not any(m.name.endswith(CONVERTER_SCRIPT) for m in wanted):
            raise BackendUnavailable(f"{tarball.name} carries no vendor/llama.cpp/{CONVERTER_SCRIPT}")
        for m in wanted:
            m.name = m.name[len(prefix):]
        _extract(tar, staging, wanted)
    return folder


def _compile(source: Path, build: Path, cmake_args: list[str], say: Progress) -> None:
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run(["cmake", "-S", str(source), "-B", str(build), *generator, *cmake_args, *SCOPE_ARGS],
         "cmake configure of llama.cpp")
    cmd = ["cmake", "--build", str(build), "--target", *TOOLS, "-j", str(os.cpu_count() or 2)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    shown = -10
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        step = re.search(r"\[\s*(\d+)/(\d+)\]|\[\s*(\d+)%\]", line)  # ninja: [12/170]; make: [ 7%]
        if step:
            pct = int(step.group(1)) * 100 // int(step.group(2)) if step.group(1) else int(step.group(3))
            if pct >= shown + 10:
                say(f"compiling: {pct}%")
                shown = pct
    if proc.wait() != 0:
        raise OnDeviceError("compiling llama.cpp's tools failed:\n" + "".join(tail[-15:]))


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OnDeviceError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
