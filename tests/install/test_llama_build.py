"""The install script: what pip installs while llama.cpp compiles, and which flags key a cached wheel."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def llama_build():
    # Loaded by path, as `make install` runs it: install/ is not a package.
    spec = importlib.util.spec_from_file_location("_llama_build_under_test", ROOT / "install" / "llama_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("_ondevice_cpu", None)


def test_requirements_are_the_projects_without_llama_cpp_python(llama_build):
    reqs = llama_build.requirements()
    assert not any(r.lower().startswith(("llama-cpp-python", "llama_cpp_python")) for r in reqs)
    assert "torch==2.13.0" in reqs and "onnxruntime==1.32.0" in reqs  # pins kept verbatim
    assert "fastapi" in reqs and "pytest" in reqs  # extras of `all` expanded
    assert not any(r.startswith("ondevice-toolkit") for r in reqs)


def test_requirements_of_no_extras_are_the_core_only(llama_build):
    core = llama_build.requirements(extras=())
    assert "gguf==0.19.0" in core and "torch==2.13.0" not in core


def test_wheel_key_follows_isa_flags_but_not_build_scope(llama_build, tmp_path, monkeypatch):
    monkeypatch.setenv("ONDEVICE_HOME", str(tmp_path))
    avx2 = ["-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON"]
    assert llama_build._wheel_dir(avx2) != llama_build._wheel_dir(["-DGGML_NATIVE=OFF", "-DGGML_AVX2=OFF"])
    assert llama_build._wheel_dir(avx2).parent == tmp_path / "wheels"
    assert "-DLLAVA_BUILD=OFF" in llama_build.SCOPE_ARGS  # no multimodal library in the wheel


def test_first_candidate_is_this_cpus_safe_flags(llama_build):
    from ondevice.machine.cpu import detect_cpu, llama_cmake_args

    assert llama_build._candidates()[0] == llama_cmake_args(detect_cpu())


HOLDER = r"""
import fcntl, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
out.parent.mkdir(parents=True, exist_ok=True)
handle = open(str(out) + ".lock", "w")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(2)
out.mkdir()
(out / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl").write_text("a built wheel")
"""


def test_install_step_waits_for_the_background_build_and_reuses_its_wheel(llama_build, tmp_path, monkeypatch, capsys):
    import subprocess
    import time

    pytest.importorskip("fcntl")
    monkeypatch.setenv("ONDEVICE_HOME", str(tmp_path))
    args = ["-DGGML_NATIVE=OFF"]
    out = llama_build._wheel_dir(args)
    log = tmp_path / "build.log"
    log.write_text("[41/170] Building CXX object ...\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"  # the "background build" holds the lock
    start = time.monotonic()
    with llama_build._build_lock(out, log):
        wheel = llama_build._build_wheel(args, out)  # finds the wheel: no compile
    assert time.monotonic() - start >= 1 and holder.wait() == 0
    assert wheel.read_text() == "a built wheel"
    printed = capsys.readouterr().out
    assert "waiting for the background compile (step 41/170" in printed and "reusing wheel" in printed
