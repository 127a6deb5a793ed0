"""GGUF -> GGUF quantisation through libllama's own quantiser (`llama_model_quantize`, as llama-quantize uses).

Every type here was checked to quantise SmolLM2-135M (f16) without an importance matrix; the types llama.cpp
refuses without one are refused up front with that reason unless one is given (`imatrix=`, made by
`quantize.imatrix.compute_imatrix`; see docs/quantize-gguf.md).
"""

from __future__ import annotations

import ctypes
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ondevice.errors import InvalidInput, OnDeviceError
from ondevice.models.gguf_file import read_gguf
from ondevice.files import atomic_output, check_free_space

# Accepted type -> nominal bits per weight of its main tensors (llama-quantize's table), for the disk estimate.
GGUF_TYPES: dict[str, float] = {
    "Q2_K": 2.96, "Q3_K_S": 3.5, "Q3_K_M": 3.91, "Q3_K_L": 4.27, "Q4_0": 4.5, "Q4_1": 5.0, "Q4_K_S": 4.58,
    "Q4_K_M": 4.89, "Q5_0": 5.5, "Q5_1": 6.0, "Q5_K_S": 5.54, "Q5_K_M": 5.69, "Q6_K": 6.56, "Q8_0": 8.5,
    "IQ4_NL": 4.5, "IQ4_XS": 4.25, "F16": 16.0, "BF16": 16.0, "F32": 32.0,
}
# Accepted only with an importance matrix -> nominal bits per weight (llama-quantize's table).
IMATRIX_BITS: dict[str, float] = {
    "IQ1_S": 1.56, "IQ1_M": 1.75, "IQ2_XXS": 2.06, "IQ2_XS": 2.31, "IQ2_S": 2.5, "IQ2_M": 2.7, "Q2_K_S": 2.96,
    "IQ3_XXS": 3.06, "IQ3_XS": 3.3, "IQ3_S": 3.44, "IQ3_M": 3.66,
}
# Types refused because they need an importance matrix (imatrix), which this tool does not compute. Measured on
# SmolLM2-135M f16 with llama-cpp-python 0.3.36 (docs/quantize-gguf.md): libllama throws "this quantization requires
# an imatrix" for IQ1_*, IQ2_* and Q2_K_S. IQ3_XXS needs one for its IQ3_XXS tensors (this small model escaped only
# because llama.cpp picks other types for its few layers); the other IQ3 types are i-quants designed around one.
IMATRIX_TYPES: dict[str, str] = {
    **{t: "libllama refuses it without one" for t in ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M",
                                                      "Q2_K_S")},
    "IQ3_XXS": "libllama requires one for IQ3_XXS tensors",
    **{t: "an i-quant designed to be made with one" for t in ("IQ3_XS", "IQ3_S", "IQ3_M")},
}
# Per-tensor log lines of llama_model_quantize: "[  12/ 272] blk.1.attn_k.weight - ..."
_TENSOR_LINE = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")
# Source tensor types that are already quantised (re-quantising them must be allowed explicitly).
_FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}
# Log callbacks of quantisations still running in an abandoned worker thread (after Ctrl-C): libllama may call
# them until the process ends, so they must never be garbage-collected.
_ABANDONED_CALLBACKS: list = []


@dataclass
class GGUFQuantResult:
    """A quantised GGUF file."""

    path: Path
    qtype: str
    size_bytes: int
    bits_per_weight: float
    seconds: float


def _ftype(qtype: str) -> int:
    import llama_cpp

    name = "LLAMA_FTYPE_ALL_F32" if qtype == "F32" else f"LLAMA_FTYPE_MOSTLY_{qtype}"
    return int(getattr(llama_cpp, name))


def check_qtype(qtype: str, with_imatrix: bool = False) -> str:
    """Normalise a GGUF type name; InvalidInput naming the accepted types (and why imatrix types are refused)."""
    name = qtype.strip().upper()
    if name in GGUF_TYPES or (with_imatrix and name in IMATRIX_TYPES):
        return name
    accepted = ", ".join(GGUF_TYPES)
    if name in IMATRIX_TYPES:
        raise InvalidInput(f"GGUF type {name} needs an importance matrix (imatrix; {IMATRIX_TYPES[name]}): give "
                           f"one (--imatrix). Accepted types: {accepted}")
    raise InvalidInput(f"unknown GGUF type {qtype!r}; accepted types: {accepted}")


def quantize_gguf(src: Path, dst: Path, qtype: str, threads: int | None = None,
                  progress: bool = True, imatrix: Path | None = None) -> GGUFQuantResult:
    """Quantise the GGUF `src` to `dst` as `qtype` (e.g. "Q4_K_M") with libllama's quantiser.

    The output is written to `<dst>.partial` and renamed when complete; free disk is checked first. A source that
    is already quantised is re-quantised (allow_requantize); expect lower quality than from f16/f32.
    imatrix: an importance-matrix GGUF (llama-imatrix's format) of the same model, passed to libllama.
    """
    import llama_cpp

    name = check_qtype(qtype, with_imatrix=imatrix is not None)
    src, dst = Path(src), Path(dst)
    info = read_gguf(src)  # InvalidModelFile for anything libllama would choke on
    if src.resolve() == dst.resolve():
        raise InvalidInput(f"{dst}: the output must differ from the source")
    check_free_space(dst, int(info.n_params * min({**GGUF_TYPES, **IMATRIX_BITS}[name] * 1.5, 32.0) / 8))

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(name)
    params.nthread = int(threads or 0)  # 0: libllama uses all hardware threads
    params.allow_requantize = any(t not in _FLOAT_TYPES for t in info.tensor_types)
    if imatrix is not None:
        from quantize.imatrix import ImatrixParam, load_imatrix

        imatrix_param = ImatrixParam(load_imatrix(imatrix))  # kept alive until the call returns
        params.imatrix = imatrix_param.pointer

    start = time.perf_counter()
    with atomic_output(dst) as tmp, _Progress(f"{src.name} -> {name}", info.n_tensors, progress) as bar:
        rc = bar.run(lambda: llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(),
                                                           ctypes.byref(params)))
        if rc != 0:
            raise OnDeviceError(f"libllama could not quantise {src} to {name} (return code {rc}): "
                                f"{bar.last_error or 'see the log above'}")
    seconds = time.perf_counter() - start
    out = read_gguf(dst)
    return GGUFQuantResult(path=dst, qtype=name, size_bytes=out.file_size,
                           bits_per_weight=out.file_size * 8 / out.n_params, seconds=seconds)


class _Progress:
    """Runs the (single, blocking) C call in a worker thread and shows tensors done from libllama's log lines.

    The worker thread lets Ctrl-C reach Python at once; libllama's log callback is swapped for ours during the call
    and restored afterwards.
    """

    def __init__(self, label: str, n_tensors: int, enabled: bool):
        self.label, self.n_tensors, self.enabled = label, n_tensors, enabled
        self.done = 0
        self.last_error = ""
        self._rich = None
        self._task = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)

            self._rich = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.n_tensors)
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()

    def _on_log(self, level: int, text: bytes, user_data) -> None:
        if level == 3:  # GGML_LOG_LEVEL_ERROR: keep the reason for our error message
            line = text.decode("utf-8", "replace").strip(" =\n")
            if line:
                self.last_error = line.splitlines()[-1].strip()
        match = _TENSOR_LINE.search(text or b"")
        if match:
            self.done = int(match.group(1))
            if self._rich is not None:
                self._rich.update(self._task, completed=self.done)

    def run(self, call) -> int:
        import llama_cpp
        from llama_cpp import _logger

        callback = llama_cpp.llama_log_callback(self._on_log)
        result: list[int] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                result.append(int(call()))
            except BaseException as exc:  # surfaced in the calling thread
                failure.append(exc)

        worker = threading.Thread(target=work, name="llama-quantize", daemon=True)
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        try:
            worker.start()
            while worker.is_alive():
                worker.join(0.1)
        finally:
            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
            if worker.is_alive():
                _ABANDONED_CALLBACKS.append(callback)
        if failure:
            raise failure[0]
        return result[0]
