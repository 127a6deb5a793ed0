"""Importance matrices (imatrix) for GGUF quantisation: which input columns of each weight matter, from real text.

An importance matrix holds, per weight matrix, the mean squared activation of each input column over a calibration
text. llama.cpp's quantisers use it to spend their rounding error where activations are small, so low-bit types
lose less (and the IQ1/IQ2 types become possible at all).

How it is made and used here (docs/quantize-gguf.md):
- Computing it needs every matrix multiplication's input during a forward pass (llama.cpp collects them with a
  graph-evaluation callback in C++). We run llama.cpp's own `llama-imatrix`, built from the installed libllama's
  source on first use (`quantize.native_tools`, minutes, cached), on the f16/f32 model.
- Using it needs no native tool: in llama-cpp-python 0.3.36 libllama's quantize params take the importance matrix as
  a plain C array of {name, float *data, size} (`llama_model_imatrix_data`), so `quantize_gguf(..., imatrix=path)`
  reads the imatrix GGUF with the `gguf` package, normalises it as llama-quantize does (sum / count per expert),
  and passes it to the same `llama_model_quantize` call. With and without an imatrix is the same quantiser.

Calibration text: by default the standard library's module docstrings (built in, and different from the pydoc
topics that `quantize.evaluate` scores on by default, so quality is measured on held-out text); or the user's own
text file or folder of files (for example the documents a RAG index was built from).
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ondevice.errors import InvalidInput, OnDeviceError

if TYPE_CHECKING:
    import numpy as np

BUILTIN_TEXT = "stdlib module docstrings (built in)"


@dataclass
class ImatrixResult:
    """An importance matrix written by llama-imatrix."""

    path: Path
    model: str
    text: str             # what it was calibrated on
    n_chunks: int         # ctx-token windows processed
    ctx: int
    n_entries: int        # weight matrices covered
    ppl: float | None     # llama-imatrix's own perplexity estimate on the calibration text
    seconds: float


def calibration_text(source: str | Path | None = None) -> tuple[str, str]:
    """(text, description). None: the built-in text; a path: that text file, or every text file under a folder."""
    from quantize.distill.data import read_texts, stdlib_docstrings

    if source is None:
        return stdlib_docstrings(), BUILTIN_TEXT
    return "\n\n".join(read_texts(source)), str(source)


def compute_imatrix(model: str | Path, out: str | Path, text: str | Path | None = None, ctx: int = 512,
                    chunks: int | None = 64, threads: int | None = None,
                    progress: Callable[[str], None] | None = None) -> ImatrixResult:
    """Compute an importance matrix of the GGUF `model` (use the f16/f32 the variants are made from) into `out`.

    text: None for the built-in calibration text, or a file/folder of the user's text. ctx: window length;
    chunks: at most this many windows (None: the whole text). The first call builds llama.cpp's tools (minutes).
    """
    from ondevice.machine.cpu import detect_cpu
    from ondevice.files import atomic_output
    from quantize.native_tools import ensure_tools
    from ondevice.models.store import resolve

    if ctx < 32 or (chunks is not None and chunks < 1):
        raise InvalidInput(f"imatrix needs ctx >= 32 and chunks >= 1 (got ctx {ctx}, chunks {chunks})")
    ref = resolve(model)
    if ref.format != "gguf":
        raise InvalidInput(f"{model}: an importance matrix is computed on a GGUF model (convert it first)")
    body, described = calibration_text(text)
    say = progress or (lambda message: None)
    tool = ensure_tools(say).tool("llama-imatrix")
    out = Path(out)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, atomic_output(out) as partial:
        # llama-imatrix records the text file's name as the dataset in the imatrix: name it after the text.
        text_file = Path(tmp) / (re.sub(r"[^\w.-]+", "-", Path(described).name.split(" (")[0]).strip("-") + ".txt")
        text_file.write_text(body, encoding="utf-8")
        cmd = [str(tool), "-m", str(ref.path.resolve()), "-f", text_file.name, "-o", str(partial.resolve()),
               "-c", str(ctx),
               "-b", str(ctx), "-t", str(threads or detect_cpu().physical_cores), "--output-format", "gguf"]
        if chunks is not None:
            cmd += ["--chunks", str(chunks)]
        n_done, ppl, tail = _run_imatrix(cmd, say, cwd=tmp)
        if not partial.exists():
            raise OnDeviceError(f"llama-imatrix wrote no file: {''.join(tail[-8:])}")
    entries = load_imatrix(out)
    return ImatrixResult(out, str(ref.path), described, n_done, ctx, len(entries), ppl,
                         round(time.perf_counter() - start, 2))


def _run_imatrix(cmd: list[str], say: Callable[[str], None], cwd: str) -> tuple[int, float | None, list[str]]:
    """Run llama-imatrix, reporting windows done from its `[i]ppl,` lines; (windows, final PPL, output tail)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    tail: list[str] = []
    done, total, ppl = 0, 0, None
    buffer = ""
    while True:
        chunk = proc.stdout.read(256)
        if not chunk:
            break
        buffer += chunk
        lines = re.split(r"(?<=[,\n])", buffer)
        buffer = lines.pop() if lines and not lines[-1].endswith((",", "\n")) else ""
        for piece in lines:
            tail = (tail + [piece])[-60:]
            if m := re.search(r"computing over (\d+) chunks", piece):
                total = int(m.group(1))
            elif m := re.match(r"\[(\d+)\][\d.]+,", piece.strip()):
                done = int(m.group(1))
                say(f"imatrix: window {done}/{total or '?'}")
            elif m := re.search(r"Final estimate: PPL = ([\d.]+)", piece):
                ppl = float(m.group(1))
    if proc.wait() != 0:
        raise OnDeviceError(f"llama-imatrix failed (exit {proc.returncode}): {''.join(tail[-12:]).strip()[-800:]}")
    return done or total, ppl, tail


def load_imatrix(path: str | Path) -> dict[str, np.ndarray]:
    """Tensor name -> importance values (float32 numpy array), normalised as llama-quantize does.

    The GGUF imatrix stores, per weight `W`, `W.in_sum2` (sums of squared activations, one row per expert) and
    `W.counts` (tokens seen, per expert); the importance is sum / count (1 where an expert saw no token).
    """
    import numpy as np
    from gguf import GGUFReader

    from ondevice.models.gguf_file import read_gguf

    # The header first (streamed, fast): a model file is refused before GGUFReader maps all of its tensors.
    if not any(t.name.endswith(".in_sum2") for t in read_gguf(path).tensors):
        raise InvalidInput(f"{path}: holds no importance-matrix entries (not a file written by llama-imatrix)")
    reader = GGUFReader(str(path))
    tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
    out = {}
    for name, sums in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        weight = name[: -len(".in_sum2")]
        counts = tensors.get(weight + ".counts")
        if counts is None:
            raise InvalidInput(f"{path}: {weight} has sums but no counts; not an imatrix written by llama-imatrix")
        counts = counts.reshape(-1)
        sums = sums.reshape(len(counts), -1)
        values = np.where(counts[:, None] > 0, sums / np.maximum(counts[:, None], 1), 1.0)
        out[weight] = np.ascontiguousarray(values.reshape(-1), dtype=np.float32)
    if not out:
        raise InvalidInput(f"{path}: holds no importance-matrix entries")
    return out


class ImatrixParam:
    """The importance matrix as libllama's quantize params want it: a C array of `llama_model_imatrix_data`,
    ended by an entry with a null name. Keep this object alive for the whole `llama_model_quantize` call."""

    def __init__(self, entries: dict):
        import llama_cpp

        self._values = list(entries.values())  # the float arrays the C array points into
        self._names = [name.encode() for name in entries]
        array = (llama_cpp.llama_model_imatrix_data * (len(entries) + 1))()
        for i, (name, values) in enumerate(zip(self._names, self._values)):
            array[i].name = name
            array[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            array[i].size = values.size
        array[len(entries)].name = None
        self.array = array

    @property
    def pointer(self):
        import llama_cpp

        return ctypes.cast(self.array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
