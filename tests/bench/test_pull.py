"""`ondevice pull hf:...`: the real huggingface_hub client (in a child process, as a user runs it) against a local
server that speaks the hub's file API over loopback (tests/hub_server.py), serving repos made from tiny models.

Every failure is one `error:` line and exit code 2, and nothing is left under a final name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ondevice
from ondevice.errors import ModelNotFound
from tests.hub_server import HubServer, Repo, repo_from_folder

ROOT = Path(__file__).resolve().parents[2]
# The root CLI with `pull` joined the way its entry point joins it in an installed package.
CLI = ("import sys, ondevice.cli.main as m; m.COMMANDS.setdefault('pull', 'bench.pull_cmd:pull_command'); "
       "sys.exit(m.cli())")


@pytest.fixture(scope="module")
def tiny_gguf(tiny_llama_hf, tmp_path_factory) -> Path:
    """The tiny llama as a Q8_0 GGUF (our converter, then libllama's quantiser): a GGUF repo's file."""
    from quantize.gguf_quantize import quantize_gguf
    from quantize.hf_to_gguf import convert_hf_to_gguf

    folder = tmp_path_factory.mktemp("tiny-gguf")
    f16 = convert_hf_to_gguf(tiny_llama_hf, folder / "tiny-f16.gguf", "f16").path
    return quantize_gguf(f16, folder / "tiny-llama-Q8_0.gguf", "Q8_0", progress=False).path


def gguf_repo(tiny_gguf: Path, **faults) -> Repo:
    return Repo({tiny_gguf.name: tiny_gguf.read_bytes(), "README.md": b"# tiny\n"}, **faults)


@pytest.fixture
def env(tmp_path, llama_converter):
    """A fresh store and HF cache per test; the hub reached only through HF_ENDPOINT."""
    home = tmp_path / "store"
    (home / "native").mkdir(parents=True)
    (home / "native" / llama_converter.name).symlink_to(llama_converter.resolve(), target_is_directory=True)
    return {**os.environ, "ONDEVICE_HOME": str(home), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "30", "PYTHONPATH": str(ROOT),
            "NO_COLOR": "1", "COLUMNS": "200"}


def pull(env: dict, hub: HubServer, *args: str, wait: bool = True):
    cmd = [sys.executable, "-c", CLI, "pull", *args]
    run_env = {**env, "HF_ENDPOINT": hub.endpoint}
    if not wait:
        return subprocess.Popen(cmd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    return subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=300)


def error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def final_files(env: dict) -> list[Path]:
    """Every model file under a final name: the store's pulled names and the HF cache's snapshot files."""
    store = Path(env["ONDEVICE_HOME"]) / "models"
    cache = Path(env["HF_HOME"]) / "hub"
    named = [p for p in store.rglob("*.gguf") if not p.name.startswith(".")] if store.exists() else []
    snap = [p for p in cache.rglob("snapshots/*/*") if p.suffix in (".gguf", ".safetensors")] if cache.exists() else []
    return named + snap


def in_store(env: dict, monkeypatch):
    monkeypatch.setenv("ONDEVICE_HOME", env["ONDEVICE_HOME"])


def test_pull_a_gguf_repo_predicts_then_downloads_and_runs(tiny_gguf, env, monkeypatch):
    with HubServer({"test/tiny-GGUF": gguf_repo(tiny_gguf)}) as hub:
        proc = pull(env, hub, "hf:test/tiny-GGUF:Q8_0")
    assert proc.returncode == 0, proc.stderr
    assert "this machine" in proc.stderr and "fits" in proc.stderr  # the prediction came before the download
    assert "pulled hf:test/tiny-GGUF:Q8_0" in proc.stdout
    in_store(env, monkeypatch)
    ref = ondevice.resolve("hf:test/tiny-GGUF")  # one pulled file: the bare repo name finds it
    assert ref.format == "gguf" and ref.path.name == tiny_gguf.name
    assert ref.path.resolve().read_bytes() == tiny_gguf.read_bytes()
    assert str(Path(env["HF_HOME"])) in str(ref.path.resolve())  # one copy, in the shared HF cache
    with ondevice.load("hf:test/tiny-GGUF:Q8_0", n_ctx=64, threads=1) as model:
        assert len(model.generate("class", max_tokens=3, temperature=0.0).tokens) == 3
    listed = subprocess.run([sys.executable, "-m", "ondevice", "models", "list", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    entry = next(e for e in json.loads(listed.stdout) if e["name"] == "hf:test/tiny-GGUF:Q8_0")
    assert entry["format"] == "gguf" and entry["quant"] == "Q8_0" and entry["size_bytes"] == tiny_gguf.stat().st_size


def test_interrupted_download_resumes_where_it_stopped(env):
    """The pull process is killed mid-file; the next pull asks only for the rest (a Range request) and the file it
    ends with is the listed one. huggingface_hub writes 10 MiB at a time, so the file is 24 MiB and the server
    stalls after 12 MiB: the first 10 MiB reach the disk, the rest never comes until the process is killed."""
    import random

    chunk = 10 * 1024 * 1024
    data = b"GGUF" + random.Random(0).randbytes(24 * 1024 * 1024)
    repo = Repo({"big-Q4_K_M.gguf": data}, stall_after=12 * 1024 * 1024)
    with HubServer({"test/big-GGUF": repo}) as hub:
        proc = pull(env, hub, "hf:test/big-GGUF", "--device", "apple-m4-max", wait=False)
        blobs = Path(env["HF_HOME"]) / "hub" / "models--test--big-GGUF" / "blobs"
        deadline = time.monotonic() + 120
        partial = []
        while time.monotonic() < deadline:
            partial = [p for p in blobs.glob("*.incomplete") if p.stat().st_size >= chunk] if blobs.exists() else []
            if partial:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert partial, "the download never reached the stall point"
        os.killpg(proc.pid, signal.SIGKILL)  # a real interruption: the process dies mid-file
        proc.wait()
        assert final_files(env) == []  # half a file is never under a final name
        done = partial[0].stat().st_size
        assert chunk <= done < len(data)
        again = pull(env, hub, "hf:test/big-GGUF", "--device", "apple-m4-max")
        assert again.returncode == 0, again.stderr
        ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(".gguf") and r]
        assert f"bytes={done}-" in ranges  # the second run asked only for the rest
    pulled = [p for p in final_files(env) if p.parent.name == "test--big-GGUF"]
    assert len(pulled) == 1 and pulled[0].resolve().read_bytes() == data


def test_corrupt_file_is_refused_and_deleted(tiny_gguf, env):
    with HubServer({"test/tiny-GGUF": gguf_repo(tiny_gguf, corrupt={tiny_gguf.name})}) as hub:
        line = error_line(pull(env, hub, "hf:test/tiny-GGUF"))
    assert "sha256 check" in line and tiny_gguf.name in line
    assert final_files(env) == []
    assert not [p for p in (Path(env["HF_HOME"]) / "hub").rglob("blobs/*") if p.stat().st_size > 1000]


def test_missing_file_is_one_line(tiny_gguf, env):
    with HubServer({"test/tiny-GGUF": gguf_repo(tiny_gguf, missing={tiny_gguf.name})}) as hub:
        line = error_line(pull(env, hub, "hf:test/tiny-GGUF"))
    assert "missing" in line and final_files(env) == []


def test_gated_repo_says_how_to_get_access_and_hf_token_opens_it(tiny_gguf, env):
    with HubServer({"test/gated": gguf_repo(tiny_gguf, gated=True, token="hf_test_token")}) as hub:
        line = error_line(pull({k: v for k, v in env.items() if k != "HF_TOKEN"}, hub, "hf:test/gated"))
        assert "gated" in line and "HF_TOKEN" in line and final_files(env) == []
        assert pull({**env, "HF_TOKEN": "hf_test_token"}, hub, "hf:test/gated").returncode == 0


def test_unknown_repo_and_repo_without_weights(tiny_gguf, env):
    with HubServer({"test/docs": Repo({"README.md": b"# nothing\n", "notes.txt": b"x"})}) as hub:
        assert "no repository 'test/nope'" in error_line(pull(env, hub, "hf:test/nope"))
        line = error_line(pull(env, hub, "hf:test/docs"))
    assert "no weights" in line and "README.md" in line and final_files(env) == []


def test_bad_names_and_offline_mode(env, tiny_gguf):
    with HubServer({"test/tiny-GGUF": gguf_repo(tiny_gguf)}) as hub:
        assert "hf:ORG/REPO" in error_line(pull(env, hub, "hf:not-a-repo"))
        assert "offline mode" in error_line(pull({**env, "HF_HUB_OFFLINE": "1"}, hub, "hf:test/tiny-GGUF"))
        assert not [r for r in hub.requests if r[1].startswith("/api/models/test")]  # offline: nothing asked


def test_no_disk_space_is_checked_before_downloading(tiny_gguf, env):
    """The listing says the file is 50 TB: the free-disk check refuses it before any byte is fetched."""
    repo = gguf_repo(tiny_gguf)
    with HubServer({"test/huge": repo}) as hub:
        info = hub._info
        hub._info = lambda name, r: {**info(name, r), "siblings": [
            {**s, "size": 50 * 10 ** 12, "lfs": {**s["lfs"], "size": 50 * 10 ** 12}} if "lfs" in s else s
            for s in info(name, r)["siblings"]]}
        line = error_line(pull(env, hub, "hf:test/huge", "--force"))  # --force: past the RAM check
        assert "not enough free disk" in line
        assert not [r for r in hub.requests if r[0] == "GET" and r[1].endswith(".gguf")]
    assert final_files(env) == []


def test_a_model_that_cannot_fit_is_refused_before_download(tiny_llama_hf, env):
    """config.json says 80 layers x 8192: the prediction refuses it, no weight is fetched, --force overrides."""
    folder_files = {p.name: p.read_bytes() for p in tiny_llama_hf.iterdir() if p.is_file()}
    config = json.loads(folder_files["config.json"])
    config.update(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                  num_key_value_heads=8, vocab_size=128256)
    folder_files["config.json"] = json.dumps(config).encode()
    with HubServer({"test/huge": Repo(folder_files)}) as hub:
        line = error_line(pull(env, hub, "hf:test/huge", "--device", "raspberry-pi-5"))
        assert "not downloaded" in line and "--force" in line
        assert not [r for r in hub.requests if r[1].endswith(".safetensors")]


def test_unsupported_architecture_is_refused_before_download(tiny_llama_hf, env):
    files = {p.name: p.read_bytes() for p in tiny_llama_hf.iterdir() if p.is_file()}
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, "architectures": ["TinyFooForCausalLM"],
                                       "model_type": "tinyfoo"}).encode()
    with HubServer({"test/foo": Repo(files)}) as hub:
        line = error_line(pull(env, hub, "hf:test/foo"))
        assert "'TinyFooForCausalLM'" in line and "LlamaForCausalLM" in line and "Qwen3ForCausalLM" in line
        assert not [r for r in hub.requests if r[1].endswith(".safetensors")]
    assert final_files(env) == []


def test_safetensors_repo_converts_and_quantises_on_pull(tiny_llama_hf, env, monkeypatch):
    with HubServer({"test/tiny-llama": repo_from_folder(tiny_llama_hf)}) as hub:
        proc = pull(env, hub, "hf:test/tiny-llama", "--quant", "Q8_0")
    assert proc.returncode == 0, proc.stderr
    assert "converted" in proc.stdout and "ondevice converter" in proc.stderr  # its BPE is one llama.cpp's lacks
    in_store(env, monkeypatch)
    ref = ondevice.resolve("hf:test/tiny-llama:Q8_0")
    assert ref.path.name == "Q8_0.gguf" and not ref.path.is_symlink()
    from ondevice.models.model_info import read_info

    assert read_info(ref).quant == "Q8_0"
    leftovers = [p.name for p in ref.path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the f16 intermediate and partial files are gone


def test_models_rm_frees_the_store_and_hf_cache(tiny_gguf, env, monkeypatch):
    with HubServer({"test/tiny-GGUF": gguf_repo(tiny_gguf)}) as hub:
        assert pull(env, hub, "hf:test/tiny-GGUF").returncode == 0
    rm = subprocess.run([sys.executable, "-m", "ondevice", "models", "rm", "hf:test/tiny-GGUF", "--json"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert rm.returncode == 0, rm.stderr
    out = json.loads(rm.stdout)
    assert out["removed"]["freed_bytes"] >= tiny_gguf.stat().st_size
    assert set(out["disk_use_bytes"]) >= {"store models", "hf cache (models)"}
    assert final_files(env) == []
    in_store(env, monkeypatch)
    with pytest.raises(ModelNotFound, match="not pulled: run `ondevice pull hf:test/tiny-GGUF`"):
        ondevice.resolve("hf:test/tiny-GGUF")
    again = subprocess.run([sys.executable, "-m", "ondevice", "models", "rm", "hf:test/tiny-GGUF"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "is not pulled" in again.stderr
