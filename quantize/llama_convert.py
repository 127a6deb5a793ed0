"""Hugging Face folder -> GGUF through llama.cpp's own `convert_hf_to_gguf.py`, the one vendored in the installed
llama-cpp-python's source (so the converter and the runtime are the same llama.cpp revision).

The script runs in a child process (it imports torch, transformers and its ~125 per-family modules, and keeps large
buffers) with its own `gguf-py` first on its path. Around it: the architecture is checked against the script's own
table before anything starts (one line naming the architecture and what is supported), free disk is checked, the
file is written under a temporary name and renamed when complete (`ondevice.files.atomic_output`), the script's
per-tensor log becomes progress, and a failure becomes one line. `convert_many` converts several folders in one
child process, so the imports are paid once (the family parity table converts ~30 models).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ondevice.errors import InvalidInput, InvalidModelFile, OnDeviceError
from ondevice.files import atomic_output, check_free_space
from quantize.native_tools import ensure_converter

OUTTYPES = ("f32", "f16", "bf16", "q8_0")
_BYTES_PER_WEIGHT = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 1.07}
# "INFO:hf-to-gguf:blk.0.attn_q.weight, torch.float32 --> F16, shape = {256, 256}"
_TENSOR_LINE = re.compile(r"^INFO:hf-to-gguf:(\S+),\s+\S+ --> \S+, shape")
# Lines that carry the reason of a failure, most specific first.
_REASON = re.compile(r"^(?:\w*Error|NotImplementedError|KeyError|AssertionError|Exception)\b.*|"
                     r"^ERROR:hf-to-gguf:.*|.*BPE pre-tokenizer was not recognized.*")
Progress = Callable[[str, int, int], None]  # (description, tensors done, tensors total)


@dataclass
class LlamaConvertResult:
    """A GGUF file written by llama.cpp's converter."""

    path: Path
    architecture: str   # the HF architecture (config.json "architectures"[0])
    outtype: str
    size_bytes: int
    seconds: float
    converter: str = "llama.cpp convert_hf_to_gguf.py"


@lru_cache(maxsize=1)
def supported_architectures() -> tuple[str, ...]:
    """The HF architectures (config.json "architectures") llama.cpp's converter registers for text models, read
    from its own table (`conversion/__init__.py` TEXT_MODEL_MAP) without importing it."""
    text = (ensure_converter() / "conversion" / "__init__.py").read_text()
    table = text[text.index("TEXT_MODEL_MAP"):]
    table = table[:table.index("}")]
    return tuple(sorted(set(re.findall(r'"([A-Za-z0-9_]+)":\s*"', table))))


@lru_cache(maxsize=1)
def _known_bpe_hashes() -> frozenset[str]:
    text = (ensure_converter() / "conversion" / "base.py").read_text()
    return frozenset(re.findall(r'chkhsh == "([0-9a-f]{64})"', text))


def _check_text() -> str:
    text = (ensure_converter() / "conversion" / "base.py").read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith("chktxt = "))
    import ast

    return ast.literal_eval(line.split("=", 1)[1].strip())


def recognises_bpe(hf_dir: Path) -> bool | None:
    """Whether llama.cpp's converter will recognise the folder's byte-level BPE pre-tokenizer: the same test (its
    check text through the folder's tokenizer, hashed) against its own list, without running it. None when the
    folder has no tokenizer.json (SentencePiece models are not hashed) or the tokenizer cannot be loaded here."""
    import hashlib

    if not (Path(hf_dir) / "tokenizer.json").exists() or (Path(hf_dir) / "tokenizer.model").exists():
        return None
    try:
        from transformers import AutoTokenizer

        ids = AutoTokenizer.from_pretrained(str(hf_dir)).encode(_check_text())
    except Exception:
        return None
    return hashlib.sha256(str(ids).encode()).hexdigest() in _known_bpe_hashes()


def hf_architecture(hf_dir: Path) -> str:
    """config.json's first "architectures" entry (what llama.cpp's converter dispatches on)."""
    try:
        config = json.loads((Path(hf_dir) / "config.json").read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{hf_dir}: not a Hugging Face model folder (no config.json)") from None
    except json.JSONDecodeError as exc:
        raise InvalidModelFile(f"{Path(hf_dir) / 'config.json'}: invalid JSON ({exc})") from None
    archs = config.get("architectures") or []
    if not archs and isinstance(config.get("text_config"), dict):
        archs = config["text_config"].get("architectures") or []
    if not archs:
        raise InvalidModelFile(f"{Path(hf_dir) / 'config.json'}: no \"architectures\" entry, so no converter "
                               f"can tell what model this is (model_type {config.get('model_type')!r})")
    return str(archs[0])


def check_supported(hf_dir: Path) -> str:
    """The folder's architecture if llama.cpp's converter handles it; else InvalidInput naming it and the list."""
    arch = hf_architecture(hf_dir)
    supported = supported_architectures()
    if arch not in supported:
        raise InvalidInput(f"architecture {arch!r} is not supported by llama.cpp's convert_hf_to_gguf.py "
                           f"(llama-cpp-python's vendored llama.cpp); supported ({len(supported)}): "
                           f"{', '.join(supported)}")
    return arch


def _weights_bytes(hf_dir: Path) -> int:
    return sum(p.stat().st_size for p in Path(hf_dir).glob("*.safetensors")) or \
        sum(p.stat().st_size for p in Path(hf_dir).glob("*.bin"))


def _needed_bytes(hf_dir: Path, outtype: str) -> int:
    """Output size estimate: the checkpoint's bytes scaled from its storage width (f32 or 16-bit) to `outtype`."""
    from ondevice.models.model_info import read_info
    from ondevice.models.store import resolve

    try:
        n_params = read_info(resolve(hf_dir)).n_params
    except OnDeviceError:
        n_params = 0
    if not n_params:
        n_params = _weights_bytes(hf_dir) // 2
    return int(n_params * _BYTES_PER_WEIGHT[outtype]) + 64 * 1024 * 1024


def _one_line_reason(lines: list[str]) -> str:
    reasons = [line.strip() for line in lines if _REASON.match(line.strip())]
    if reasons:
        return reasons[-1].removeprefix("ERROR:hf-to-gguf:")
    tail = [line.strip() for line in lines if line.strip()]
    return tail[-1] if tail else "no output"


def _child_env() -> dict[str, str]:
    # Offline: the script never downloads (its --remote mode is not used); no tqdm bars in captured output.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1",
            "PYTHONUNBUFFERED": "1"}


def _count_tensors(hf_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for shard in Path(hf_dir).glob("*.safetensors"):
        with safe_open(shard, framework="np") as f:
            total += len(list(f.keys()))
    return total


def _run(cmd: list[str], label: str, total: int, progress: Progress | None) -> tuple[int, list[str]]:
    """Run the converter, feeding progress from its per-tensor log lines; (exit code, last lines of output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_child_env())
    tail: list[str] = []
    done = 0
    try:
        for line in proc.stdout:
            tail = (tail + [line.rstrip("\n")])[-60:]
            if _TENSOR_LINE.match(line):
                done += 1
                if progress:
                    progress(label, min(done, total), max(total, done))
            elif line.startswith("@@done ") and progress:  # convert_many: one model finished
                done = 0
        return proc.wait(), tail
    except BaseException:  # Ctrl-C: stop the child before the partial file is removed
        proc.kill()
        proc.wait()
        raise


def convert_with_llama_cpp(hf_dir: str | Path, out: str | Path, outtype: str = "f16",
                           progress: Progress | None = None) -> LlamaConvertResult:
    """Convert the HF folder `hf_dir` to the GGUF file `out` with llama.cpp's `convert_hf_to_gguf.py`.

    outtype: f32, f16, bf16 or q8_0. Raises InvalidInput for an architecture the script does not convert (naming
    the supported ones) or too little free disk, OnDeviceError with the script's own reason when it fails. Nothing
    is left under `out` unless the conversion completed.
    """
    hf_dir, out = Path(hf_dir), Path(out)
    if outtype not in OUTTYPES:
        raise InvalidInput(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    arch = check_supported(hf_dir)
    script = ensure_converter() / "convert_hf_to_gguf.py"
    check_free_space(out, _needed_bytes(hf_dir, outtype))
    start = time.perf_counter()
    with atomic_output(out) as tmp:
        cmd = [sys.executable, str(script), str(hf_dir), "--outfile", str(tmp), "--outtype", outtype]
        code, tail = _run(cmd, f"converting {hf_dir.name} ({arch})", _count_tensors(hf_dir), progress)
        if code != 0 or not tmp.exists():
            raise OnDeviceError(f"llama.cpp's convert_hf_to_gguf.py could not convert {hf_dir} ({arch}): "
                                f"{_one_line_reason(tail)}")
    return LlamaConvertResult(out, arch, outtype, out.stat().st_size, time.perf_counter() - start)


# Runs llama.cpp's script's own main() once per job in one process: argv as the command line would give it.
_BATCH_DRIVER = """
import json, runpy, sys, traceback
script, jobs = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, script.rsplit("/", 1)[0])
module = runpy.run_path(script, run_name="convert_hf_to_gguf")
for job in jobs:
    sys.argv = [script, *job]
    try:
        module["main"]()
        print("@@done ok", flush=True)
    except SystemExit as exc:
        print(f"@@done exit {exc.code}", flush=True)
    except BaseException as exc:
        traceback.print_exc(limit=2, file=sys.stdout)
        print(f"{type(exc).__name__}: {exc}", flush=True)
        print("@@done error", flush=True)
"""


def convert_many(jobs: list[tuple[Path, Path]], outtype: str = "f16",
                 progress: Progress | None = None) -> list[LlamaConvertResult | OnDeviceError]:
    """Convert several (hf_dir, out) pairs in one child process (the imports, ~10 s on 2 cores, paid once).

    Each entry of the result is the converted file or the error that conversion raised (the others go on).
    """
    if outtype not in OUTTYPES:
        raise InvalidInput(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    script = ensure_converter() / "convert_hf_to_gguf.py"
    results: list[LlamaConvertResult | OnDeviceError | None] = [None] * len(jobs)
    runnable = []
    for i, (hf_dir, out) in enumerate(jobs):
        try:
            arch = check_supported(Path(hf_dir))
            check_free_space(Path(out), _needed_bytes(Path(hf_dir), outtype))
            runnable.append((i, Path(hf_dir), Path(out), arch))
        except OnDeviceError as exc:
            results[i] = exc
    if runnable:
        from ondevice.files import partial_path

        args = [[str(hf), "--outfile", str(partial_path(out)), "--outtype", outtype] for _, hf, out, _ in runnable]
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _BATCH_DRIVER, str(script), json.dumps(args)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_child_env())
        k, lines = 0, []
        try:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("@@done"):
                    i, hf, out, arch = runnable[k]
                    tmp = partial_path(out)
                    if line.startswith("@@done ok") and tmp.exists():
                        tmp.replace(out)
                        results[i] = LlamaConvertResult(out, arch, outtype, out.stat().st_size,
                                                        time.perf_counter() - start)
                    else:
                        tmp.unlink(missing_ok=True)
                        results[i] = OnDeviceError(f"llama.cpp's convert_hf_to_gguf.py could not convert {hf} "
                                                   f"({arch}): {_one_line_reason(lines[-60:])}")
                    if progress:
                        progress(f"converted {hf.name}", k + 1, len(runnable))
                    k, lines, start = k + 1, [], time.perf_counter()
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for _, _, out, _ in runnable[k:]:
                partial_path(out).unlink(missing_ok=True)
        for i, hf, _, arch in runnable[k:]:
            results[i] = OnDeviceError(f"llama.cpp's convert_hf_to_gguf.py stopped before {hf} ({arch}): "
                                       f"{_one_line_reason(lines[-60:])}")
    return results  # type: ignore[return-value]
