"""HF model dir -> ONNX folders that `ondevice.load` runs: LLMs for onnxruntime-genai, sentence encoders for onnxruntime.

LLMs go through onnxruntime-genai's model builder (it writes model.onnx with GroupQueryAttention, genai_config.json
and the tokenizer files; int4 is weight-only MatMulNBits). int8 is the builder's fp32 graph with every MatMul weight
quantised to 8 bits, weight-only (quantize/onnx_weights.py says why not onnxruntime's dynamic quantisation: it breaks
on CPUs without VNNI). Encoders go through optimum-onnx's exporter, int8 through the same weight-only quantiser. Every export is written to a temporary folder beside the target and renamed at the end, so an
interrupted run never leaves a half model under the final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ondevice.errors import InvalidInput

LLM_QUANTS = ("int4", "int8", "fp32")
INT4_ALGORITHMS = ("rtn", "k_quant", "k_quant_mixed", "hqq", "wls", "wls_mixed")
# onnx:int4's algorithm when none is named: wls met both targets of docs/quantize-quality.md on the embedded model
# (mean KLD ≤ 1.5x GGUF Q4_K_M's and decode ≥ Q4_K_M's); rtn stays selectable as onnx:int4-rtn.
DEFAULT_INT4_ALGORITHM = "wls"
IMATRIX_ALGORITHMS = ("wls", "wls_mixed")  # the fits that take per-input-channel importance (quantize/onnx_imatrix.py)
# (algorithm, head_bits) -> the builder's int4_algo_config; "_last" keeps the output head (tied: also the embedding)
# at 8 bits, shared through GatherBlockQuantized. The rest (rtn with an 8-bit head, hqq) is quantize/onnx_weights.py
# on the builder's fp32 graph: the builder's own "rtn_last" writes a graph that does not load when symmetric (its
# shared embedding names a zero-point tensor that symmetric RTN does not make; onnxruntime-genai 0.11.4).
_BUILDER_ALGO = {("rtn", 4): "default", ("k_quant", 8): "k_quant_last", ("k_quant", 4): "k_quant",
                 ("k_quant_mixed", 8): "k_quant_mixed"}
ENCODER_QUANTS = ("int8", "fp32")
META_FILE = "ondevice_onnx.json"  # read by ondevice/models/model_info.py


@dataclass
class OnnxExportResult:
    """One exported ONNX model folder."""

    path: Path
    quant: str
    size_bytes: int
    n_params: int
    bits_per_weight: float
    seconds: float


def uses_calibration(options: dict) -> bool:
    """Whether `parse_llm_type` options (-imx, -sN) measure activations on a calibration text."""
    return bool(options.get("imatrix") or options.get("eight_bit_pct"))


def parse_llm_type(spec: str) -> tuple[str, dict]:
    """"int4", "int4-rtn", "int4-wls-b16", "int4-k_quant_mixed", "int4-rtn-head4", "int4-wls-imx", "int8-b64" ->
    (quant, options for `export_onnx_llm`). Options after the type, separated by "-": an int4 algorithm
    (INT4_ALGORITHMS; none named: DEFAULT_INT4_ALGORITHM), headN (the output head's bits: head4 or head8), bN
    (block size), imx (weight the wls fit by activations from a calibration text), sN (N% of the layers' weights
    at 8 bits, the MatMuls measured most sensitive on the calibration text); imx and sN with wls / wls_mixed only.
    Raises InvalidInput with the accepted forms otherwise."""
    quant, *parts = str(spec).strip().lower().split("-")
    options: dict = {}
    usage = (f"write TYPE[-OPTION...] with TYPE one of {', '.join(LLM_QUANTS)} and OPTION an int4 algorithm "
             f"({', '.join(INT4_ALGORITHMS)}), head4 / head8, a block size b16 / b32 / b64 / b128, imx or "
             f"s1..s99 (e.g. onnx:int4-rtn-head4, onnx:int4-wls_mixed-imx, onnx:int4-wls-imx-s20)")
    if quant not in LLM_QUANTS:
        raise InvalidInput(f"unknown ONNX type {spec!r}: {usage}")
    for part in parts:
        if quant == "int4" and part in INT4_ALGORITHMS and "algorithm" not in options:
            options["algorithm"] = part
        elif quant == "int4" and part in ("head4", "head8") and "head_bits" not in options:
            options["head_bits"] = int(part[4:])
        elif quant != "fp32" and part in ("b16", "b32", "b64", "b128") and "block_size" not in options:
            options["block_size"] = int(part[1:])
        elif quant == "int4" and part == "imx" and "imatrix" not in options:
            options["imatrix"] = True
        elif quant == "int4" and re.fullmatch(r"s[1-9]\d?", part) and "eight_bit_pct" not in options:
            options["eight_bit_pct"] = int(part[1:])
        else:
            raise InvalidInput(f"bad ONNX type {spec!r} (option {part!r}): {usage}")
    if options.get("algorithm") == "k_quant_mixed" and options.get("head_bits") == 4:
        raise InvalidInput(f"bad ONNX type {spec!r}: k_quant_mixed keeps the head at 8 bits (head8)")
    for option, what in (("imatrix", "imx weights the least-squares fit"),
                         ("eight_bit_pct", "sN measures the least-squares fit's sensitivity")):
        if options.get(option) and options.get("algorithm", DEFAULT_INT4_ALGORITHM) not in IMATRIX_ALGORITHMS:
            raise InvalidInput(f"bad ONNX type {spec!r}: {what}, so it needs {' or '.join(IMATRIX_ALGORITHMS)} "
                               f"before it (e.g. onnx:int4-wls-imx): {usage}")
    return quant, options


def _dir_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _hf_param_count(hf_dir: Path) -> int:
    from ondevice.models.model_info import read_info
    from ondevice.models.store import resolve

    return read_info(resolve(hf_dir)).n_params


def _check_hf_dir(hf_dir: Path) -> None:
    if not (hf_dir / "config.json").exists():
        raise InvalidInput(f"{hf_dir}: not a Hugging Face model folder (no config.json)")


@lru_cache(maxsize=1)
def onnx_architectures() -> tuple[str, ...]:
    """The HF architectures onnxruntime-genai's model builder takes, read from its own dispatch (builder.py's
    `config.architectures[0] == "..."` chain) without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_genai.models.builder")
    if spec is None or not spec.origin:
        return ()
    text = Path(spec.origin).read_text()
    return tuple(sorted(set(re.findall(r'architectures\[0\]\s*==\s*"([A-Za-z0-9_]+)"', text))))


def check_onnx_supported(hf_dir: Path) -> str:
    """The folder's architecture if onnxruntime-genai's builder takes it; else InvalidInput naming it and the list."""
    import json as _json

    try:
        config = _json.loads((Path(hf_dir) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{hf_dir}: unreadable config.json ({exc})") from None
    arch = str((config.get("architectures") or [config.get("model_type", "unknown")])[0])
    supported = onnx_architectures()
    if arch not in supported:
        raise InvalidInput(f"architecture {arch!r} is not supported by onnxruntime-genai's model builder; "
                           f"supported: {', '.join(supported)}")
    return arch


def _staging_dir(out_dir: Path) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished export into place (replacing an older one of the same name)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.chmod(0o755)  # mkdtemp makes it private; the model folder should be as readable as any other file
    os.replace(staging, out_dir)


def _run_builder(hf_dir: Path, out: Path, precision: str, cache: Path, extra: dict[str, str]) -> None:
    """onnxruntime-genai's builder in a child process: it prints progress bars and keeps large buffers alive."""
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out),
           "-p", precision, "-e", "cpu", "-c", str(cache), "--extra_options", "hf_remote=false",
           *[f"{k}={v}" for k, v in extra.items()]]
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not (out / "genai_config.json").exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise InvalidInput(f"{hf_dir}: onnxruntime-genai's builder failed: {' | '.join(tail)}")


def _quantize_llm_int8(folder: Path, block_size: int, symmetric: bool, accuracy_level: int) -> None:
    """The builder's fp32 model.onnx -> weight-only 8-bit MatMulNBits, the tied embedding sharing the head's bytes."""
    from quantize.onnx_weights import quantize_matmuls, replace_model

    staged = folder / ".int8"
    quantize_matmuls(folder / "model.onnx", staged, bits=8, block_size=block_size, symmetric=symmetric,
                     accuracy_level=accuracy_level)
    replace_model(folder, staged)


def _fix_tokenizer(folder: Path, hf_dir: Path, tokenizer_gguf: Path | None) -> None:
    """Make the folder's tokenizer match the GGUF the weights came from (see quantize/hf_tokenizer.py)."""
    from quantize.hf_source import source_gguf
    from quantize.hf_tokenizer import is_byte_level_bpe, write_faithful_tokenizer

    tokenizer_gguf = tokenizer_gguf or source_gguf(hf_dir)
    if tokenizer_gguf is None:  # an original HF folder: its tokenizer is the real one
        return

    if is_byte_level_bpe(tokenizer_gguf):
        write_faithful_tokenizer(folder, tokenizer_gguf)


def export_onnx_llm(hf_dir: str | Path, out_dir: str | Path, quant: str = "int4", block_size: int = 32,
                    symmetric: bool = True, accuracy_level: int = 4, algorithm: str = DEFAULT_INT4_ALGORITHM,
                    head_bits: int = 8,
                    tokenizer_gguf: str | Path | None = None, imatrix: bool = False,
                    calibration: str | Path | None = None, eight_bit_pct: int = 0) -> OnnxExportResult:
    """Export a causal LM (llama, qwen2, gemma3, ...) to an onnxruntime-genai folder.

    quant: "int4" or "int8" (weight-only MatMulNBits with `block_size`, `symmetric`, `accuracy_level`: 4 multiplies
    in int8 with signed activations, 1 in fp32) or "fp32". int4 only: `algorithm` "wls" (the default:
    least-squares scale and float minimum per block, quantize/onnx_wls.py; always asymmetric), "rtn" (round to
    nearest), "k_quant" (llama.cpp-style scale search), "k_quant_mixed" (some layers in 8 bits, like Q4_K_M), "hqq"
    (half-quadratic, asymmetric) or "wls_mixed" (wls with Q4_K_M's layers' value / down projections at 8 bits);
    `head_bits` 8 keeps the tied output head / embedding at 8 bits (4: all 4-bit).
    imatrix (wls / wls_mixed only): weight the fit by each input channel's mean squared activation over
    `calibration` (a text file or folder; None: built-in text, not the evaluation text), quantize/onnx_imatrix.py.
    eight_bit_pct (wls / wls_mixed only): write the MatMuls measured most sensitive on `calibration`, this percent
    of the layers' weights, at 8 bits (quantize/onnx_sensitivity.py).
    docs/quantize-quality.md measures each choice.
    tokenizer_gguf: the GGUF the HF dir was de-quantised from (default: the one `quantize.hf_source` recorded);
    its tokenizer replaces transformers' reconstruction, which onnxruntime-genai mis-tokenises (byte-level BPE).
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    _check_hf_dir(hf_dir)
    if quant not in LLM_QUANTS:
        raise InvalidInput(f"unknown ONNX quantisation {quant!r}: choose one of {', '.join(LLM_QUANTS)}")
    if block_size not in (16, 32, 64, 128, 256):
        raise InvalidInput(f"block_size must be 16, 32, 64, 128 or 256, got {block_size}")
    if accuracy_level not in (0, 1, 2, 3, 4):
        raise InvalidInput(f"accuracy_level must be 0-4, got {accuracy_level}")
    if algorithm not in INT4_ALGORITHMS or head_bits not in (4, 8) or (algorithm == "k_quant_mixed" and head_bits != 8):
        raise InvalidInput(f"algorithm must be one of {', '.join(INT4_ALGORITHMS)} and head_bits 4 or 8 "
                           f"(k_quant_mixed: 8), got {algorithm!r} / {head_bits}")
    if (imatrix or eight_bit_pct) and (quant != "int4" or algorithm not in IMATRIX_ALGORITHMS):
        raise InvalidInput(f"imatrix and eight_bit_pct work on the least-squares fit: they need int4 with algorithm "
                           f"{' or '.join(IMATRIX_ALGORITHMS)}, got {quant} / {algorithm!r}")
    if not 0 <= eight_bit_pct < 100:
        raise InvalidInput(f"eight_bit_pct must be 0-99, got {eight_bit_pct}")
    check_onnx_supported(hf_dir)
    from ondevice.files import check_free_space

    # The builder writes an fp32 graph first (quantised afterwards): about 4 bytes a weight, twice over at the peak.
    check_free_space(out_dir, 8 * _hf_param_count(hf_dir))
    t0 = time.perf_counter()
    staging = _staging_dir(out_dir)
    try:
        extra = {}
        by_builder = quant == "int4" and (algorithm, head_bits) in _BUILDER_ALGO
        if by_builder:
            extra = {"int4_block_size": str(block_size), "int4_is_symmetric": str(symmetric).lower(),
                     "int4_accuracy_level": str(accuracy_level),
                     "int4_algo_config": _BUILDER_ALGO[(algorithm, head_bits)]}
        cache = staging / ".cache"
        _run_builder(hf_dir, staging, "int4" if by_builder else "fp32", cache, extra)
        shutil.rmtree(cache, ignore_errors=True)
        if quant == "int8":
            _quantize_llm_int8(staging, block_size, symmetric, accuracy_level)
        elif quant == "int4" and not by_builder:
            from quantize.onnx_weights import quantize_matmuls, replace_model

            if algorithm in ("wls", "wls_mixed"):
                from quantize.onnx_imatrix import gather_importance
                from quantize.onnx_wls import quantize_wls

                importance = gather_importance(hf_dir, calibration) if imatrix else None
                eight_bit = None
                if eight_bit_pct:
                    from quantize.onnx_sensitivity import measure_sensitivity

                    eight_bit = measure_sensitivity(hf_dir, block_size, importance, calibration) \
                        .most_sensitive(eight_bit_pct / 100)
                quantize_wls(staging / "model.onnx", staging / ".q", block_size, accuracy_level, head_bits,
                             mixed=algorithm == "wls_mixed", importance=importance, eight_bit=eight_bit)
            else:
                quantize_matmuls(staging / "model.onnx", staging / ".q", bits=4, block_size=block_size,
                                 symmetric=symmetric and algorithm == "rtn", accuracy_level=accuracy_level,
                                 algorithm=algorithm, head_bits=head_bits)
            replace_model(staging, staging / ".q")
        _fix_tokenizer(staging, hf_dir, Path(tokenizer_gguf) if tokenizer_gguf else None)
        shutil.copy2(hf_dir / "config.json", staging / "config.json")
        n_params = _hf_param_count(hf_dir)
        meta = {"quant": quant, "n_params": n_params, "source": str(hf_dir), "kind": "llm"}
        if quant in ("int4", "int8"):
            meta.update(block_size=block_size, symmetric=symmetric, accuracy_level=accuracy_level,
                        method="MatMulNBits weight-only")
        if quant == "int4":
            meta.update(algorithm=algorithm, head_bits=head_bits,
                        symmetric=symmetric and algorithm in ("rtn", "k_quant", "k_quant_mixed"))
        if imatrix:
            meta.update(imatrix=importance.text, imatrix_tokens=importance.n_tokens)
        if eight_bit_pct:
            meta.update(eight_bit_pct=eight_bit_pct, eight_bit=sorted(f"{layer}.{proj}" for layer, proj in eight_bit))
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = _dir_size(out_dir)
    return OnnxExportResult(out_dir, quant, size, n_params, round(size * 8 / n_params, 3) if n_params else 0.0,
                            time.perf_counter() - t0)


def export_encoder(hf_dir: str | Path, out_dir: str | Path, quant: str = "int8", block_size: int = 32) -> Path:
    """Export a sentence encoder (BERT-style, e.g. all-MiniLM-L6-v2) to an "onnx-encoder" folder.

    The folder holds model.onnx (last_hidden_state; the runtime mean-pools and L2-normalises), tokenizer.json,
    config.json and ondevice_onnx.json. quant: "int8" (weight-only MatMulNBits in blocks of `block_size`, as for
    LLMs) or "fp32".
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    _check_hf_dir(hf_dir)
    if quant not in ENCODER_QUANTS:
        raise InvalidInput(f"unknown encoder quantisation {quant!r}: choose one of {', '.join(ENCODER_QUANTS)}")
    if not (hf_dir / "tokenizer.json").exists():
        raise InvalidInput(f"{hf_dir}: no tokenizer.json")
    from optimum.exporters.onnx import main_export

    staging = _staging_dir(out_dir)
    try:
        raw = staging / "raw"
        main_export(str(hf_dir), raw, task="feature-extraction", library_name="transformers",
                    local_files_only=True, do_validation=False)
        if quant == "int8":
            from quantize.onnx_weights import quantize_matmuls

            quantize_matmuls(raw / "model.onnx", staging, bits=8, block_size=block_size, accuracy_level=4,
                             external_data=False)
        else:
            shutil.copy2(raw / "model.onnx", staging / "model.onnx")
        shutil.rmtree(raw)
        for name in ("tokenizer.json", "config.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (hf_dir / name).exists():
                shutil.copy2(hf_dir / name, staging / name)
        meta = {"quant": quant, "n_params": _hf_param_count(hf_dir), "source": str(hf_dir), "kind": "encoder"}
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
