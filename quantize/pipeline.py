"""`quantize`: one source -> the GGUF and ONNX variants asked for, each measured against the f16 of the same weights.

Steps: parse and check every target first (a typo fails before minutes of work); get the f16 GGUF reference (the
source itself when it already is an f16/f32 GGUF, else our converter); quantise GGUF variants from it with libllama;
export ONNX variants from the fp32 HF folder; time a short greedy decode of each; optionally evaluate all variants
against the reference on the same windows; write report.md, report.json and quality.png.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ondevice.errors import InvalidInput
from quantize.evaluate import DEFAULT_CHUNKS

DEFAULT_TARGETS = ("gguf:Q4_K_M", "gguf:Q8_0", "onnx:int4")
FORMATS = ("gguf", "onnx")
DECODE_PROMPT = "The three most important things to know about Python lists are"
DECODE_TOKENS = 32


@dataclass
class Variant:
    """One model file or folder the pipeline produced (or the reference it measured them against)."""

    name: str
    format: str                      # "gguf" or "onnx"
    qtype: str                       # "Q4_K_M", "int4", "F16", ...
    path: str
    size_bytes: int
    bpw: float
    n_params: int = 0
    seconds: float = 0.0             # time to make it
    decode_tps: float | None = None  # quick greedy decode, tokens/s
    ppl: float | None = None
    ppl_err: float | None = None
    delta_ppl: float | None = None
    kld_mean: float | None = None
    kld_err: float | None = None     # standard error of the mean KLD (as llama-perplexity prints it)
    kld_p99: float | None = None
    same_top_pct: float | None = None
    rms_dp_pct: float | None = None
    quality: dict | None = None      # the full QualityResult, when evaluated
    status: str = "ok"               # "broken": failed the sanity check on this machine (quantize/sanity.py)
    sanity: dict | None = None       # the SanityCheck: mean KLD and same-top % on one short window, reason if broken


@dataclass
class QuantizeReport:
    """Everything `quantize` made and measured; report.json is this, serialised."""

    source: str
    out_dir: str
    reference: Variant
    variants: list[Variant]
    window: int                      # evaluation window in tokens
    evaluated: bool
    text: str = "pydoc_data.topics (standard library)"
    eval_chunks: int = 0
    files: dict[str, str] = field(default_factory=dict)
    imatrix: dict | None = None      # the importance matrix the GGUF variants were made with (quantize.imatrix)


def parse_targets(targets: Sequence[str], with_imatrix: bool = False) -> list[tuple[str, str]]:
    """["gguf:Q4_K_M,Q8_0", "onnx:int4"] -> [("gguf", "Q4_K_M"), ("gguf", "Q8_0"), ("onnx", "int4")], checked."""
    from quantize.gguf_quantize import check_qtype
    from quantize.onnx_export import parse_llm_type

    parsed: list[tuple[str, str]] = []
    for target in targets:
        fmt, sep, types = str(target).partition(":")
        fmt = fmt.strip().lower()
        if not sep or fmt not in FORMATS or not types.strip():
            raise InvalidInput(f"bad target {target!r}: write FORMAT:TYPE[,TYPE...] with FORMAT one of "
                               f"{', '.join(FORMATS)} (e.g. gguf:Q4_K_M,Q8_0 or onnx:int4)")
        for qtype in (t.strip() for t in types.split(",")):
            if fmt == "gguf":
                qtype = check_qtype(qtype, with_imatrix)
            else:  # int4 | int8 | fp32, with options: int4-rtn-head4 (quantize.onnx_export.parse_llm_type)
                parse_llm_type(qtype)
                qtype = qtype.lower()
            if (fmt, qtype) not in parsed:
                parsed.append((fmt, qtype))
    if not parsed:
        raise InvalidInput("no targets given (e.g. --to gguf:Q4_K_M)")
    return parsed


def _model_name(source: str | Path) -> str:
    from ondevice.models.store import resolve

    ref = resolve(source)
    return ref.alias or ref.path.stem.split(".")[0]


def _reference(source, name: str, out_dir: Path, log: Callable[[str], None]) -> Variant:
    """The f16 GGUF of the source's weights (the source itself if it is already f16/f32)."""
    from ondevice.models.gguf_file import file_type_name, read_gguf
    from ondevice.models.store import resolve

    ref = resolve(source)
    if ref.format == "gguf":
        contents = read_gguf(ref.path)
        qtype = file_type_name(contents)
        if qtype in ("F16", "ALL_F32", "F32", "BF16"):
            return Variant(f"{name}-{qtype}", "gguf", qtype, str(ref.path), contents.file_size,
                           round(contents.file_size * 8 / contents.n_params, 3), contents.n_params)
    from quantize.convert import convert

    log(f"converting {source} to an f16 GGUF (the reference)")
    result = convert(source, out_dir / f"{name}-f16.gguf", "f16")
    return Variant(f"{name}-f16", "gguf", "F16", str(result.path), result.size_bytes,
                   round(result.size_bytes * 8 / result.n_params, 3), result.n_params, seconds=result.seconds)


def _decode_tps(path: str, threads: int | None) -> float | None:
    """Greedy decode speed of a short completion (tokens/s); None if the model cannot generate."""
    import ondevice

    with ondevice.load(path, n_ctx=256, threads=threads) as model:
        result = model.generate(DECODE_PROMPT, max_tokens=DECODE_TOKENS, temperature=0.0)
    return round(result.timings.decode_tokens_per_s, 1) or None


def _make_variant(fmt: str, qtype: str, name: str, source, reference: Variant, out_dir: Path,
                  threads: int | None, progress: bool, onnx_options: dict, imatrix: Path | None = None,
                  calibration: str | Path | None = None) -> Variant:
    if fmt == "gguf":
        from quantize.gguf_quantize import quantize_gguf

        r = quantize_gguf(Path(reference.path), out_dir / f"{name}-{qtype}.gguf", qtype, threads=threads,
                          progress=progress, imatrix=imatrix)
        return Variant(f"{name}-{qtype}", "gguf", qtype, str(r.path), r.size_bytes, round(r.bits_per_weight, 3),
                       reference.n_params, seconds=round(r.seconds, 2))
    from quantize.hf_source import to_hf_dir
    from quantize.onnx_export import export_onnx_llm, parse_llm_type, uses_calibration

    quant, type_options = parse_llm_type(qtype)
    if calibration is not None and uses_calibration(type_options):
        type_options["calibration"] = calibration  # -imx / -sN measure activations on the user's text
    r = export_onnx_llm(to_hf_dir(source), out_dir / f"{name}-onnx-{qtype}", quant,
                        **{**onnx_options, **type_options})
    return Variant(f"{name}-onnx-{qtype}", "onnx", qtype, str(r.path), r.size_bytes, r.bits_per_weight,
                   r.n_params, seconds=round(r.seconds, 2))


def _attach_quality(variant: Variant, quality) -> None:
    variant.ppl, variant.ppl_err = round(quality.ppl, 4), round(quality.ppl_err, 4)
    variant.delta_ppl = round(quality.delta_ppl, 4)
    variant.kld_mean, variant.kld_p99 = round(quality.kld_mean, 6), round(quality.kld_p99, 6)
    variant.kld_err = round(quality.kld_err, 6)
    variant.same_top_pct, variant.rms_dp_pct = round(quality.same_top_pct, 3), round(quality.rms_dp_pct, 3)
    variant.quality = quality.to_dict()


def quantize(source: str | Path, targets: Sequence[str] = DEFAULT_TARGETS, out_dir: str | Path = "quantized",
             evaluate: bool = False, window: int = 512, text: str | Path | None = None,
             max_chunks: int | None = DEFAULT_CHUNKS, threads: int | None = None, decode_speed: bool = True,
             progress: bool = True, log: Callable[[str], None] | None = None,
             onnx_options: dict | None = None, imatrix: str | Path | None = None,
             calibration: str | Path | None = None, check: bool = True) -> QuantizeReport:
    """Make every target variant of `source` (alias, GGUF or HF folder) in `out_dir` and report on them.

    targets: "gguf:TYPE[,TYPE]" (any llama.cpp type `quantize.gguf_quantize.GGUF_TYPES` accepts) and
    "onnx:int4|int8|fp32[-OPTION...]" (options: quantize.onnx_export.parse_llm_type). evaluate: measure PPL/KLD of
    each against the f16 reference on `text` (default: the standard library's pydoc text) on the first `max_chunks` windows of `window` tokens (None: the whole text),
    with a progress bar when `progress`. onnx_options: block_size / symmetric / accuracy_level for onnx:int4/int8.
    check: score every variant on one short window right after it is written; one whose predictions do not match
    the reference's on this machine is marked broken (status "broken", renamed to NAME.broken, skipped by decode
    timing, evaluation and recommend). Writes report.md, report.json and quality.png.
    imatrix: "auto" computes an importance matrix on the f16 reference from `calibration` (a text file or folder;
    default: built-in text) with llama.cpp's llama-imatrix, or a path to one; every GGUF variant is made with it.
    The ONNX `-imx` / `-sN` options measure their activations on `calibration` too (default: their built-in text).
    """
    from quantize.report import write_report

    log = log or (lambda message: None)
    parsed = parse_targets(targets, with_imatrix=imatrix is not None)
    name = _model_name(source)  # ModelNotFound before anything is written
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = _reference(source, name, out_dir, log)
    imatrix_info = _imatrix(imatrix, calibration, reference, name, out_dir, threads, log) if imatrix else None
    imatrix_path = Path(imatrix_info["path"]) if imatrix_info else None
    variants = []
    for fmt, qtype in parsed:
        log(f"making {fmt}:{qtype}")
        variants.append(_make_variant(fmt, qtype, name, source, reference, out_dir, threads, progress,
                                      onnx_options or {}, imatrix_path, calibration))
    if check:
        _check_all(reference, variants, threads, log)
    usable = [v for v in variants if v.status == "ok"]
    if decode_speed:
        for variant in [reference, *usable]:
            log(f"timing a short decode of {variant.name}")
            variant.decode_tps = _decode_tps(variant.path, threads)
    report = QuantizeReport(str(source), str(out_dir), reference, variants, window, evaluate,
                            text=str(text) if isinstance(text, Path) else
                            ("user text" if text else "pydoc_data.topics (standard library)"), imatrix=imatrix_info)
    if evaluate:
        _evaluate_all(report, text, window, max_chunks, threads, log, progress)
    report.files = write_report(report, out_dir)
    return report


def _imatrix(imatrix: str | Path, calibration, reference: Variant, name: str, out_dir: Path, threads: int | None,
             log: Callable[[str], None]) -> dict:
    """The importance matrix to make GGUF variants with: computed on the reference ("auto") or the file given."""
    from quantize.imatrix import compute_imatrix, load_imatrix

    if str(imatrix) != "auto":
        if not Path(imatrix).is_file():
            raise InvalidInput(f"--imatrix {imatrix}: no such file (give an imatrix GGUF, or auto)")
        return {"path": str(imatrix), "text": "given", "entries": len(load_imatrix(imatrix))}
    log(f"computing an importance matrix on {reference.name}")
    r = compute_imatrix(reference.path, out_dir / f"{name}.imatrix.gguf", calibration, threads=threads, progress=log)
    return {"path": str(r.path), "text": r.text, "entries": r.n_entries, "chunks": r.n_chunks, "ctx": r.ctx,
            "seconds": r.seconds}


def _check_all(reference: Variant, variants: list[Variant], threads: int | None, log: Callable[[str], None]) -> None:
    """Sanity-check every variant against the reference on one short window; mark and rename the broken ones."""
    import os

    import ondevice
    from quantize.sanity import check_model, sanity_tokens

    log(f"checking {len(variants)} variants against {reference.name} on a short window")
    with ondevice.load(reference.path, n_ctx=512, threads=threads) as ref:
        tokens = sanity_tokens(ref)
        ref_logits = ref.logits(tokens)
        for variant in variants:
            verdict = check_model(variant.path, ref, tokens, ref_logits, threads)
            variant.sanity = verdict.to_dict()
            if verdict.ok:
                continue
            variant.status = "broken"
            broken = f"{variant.path}.broken"  # not under a name that looks shippable
            if os.path.exists(broken):
                import shutil

                shutil.rmtree(broken) if os.path.isdir(broken) else os.remove(broken)
            os.replace(variant.path, broken)
            variant.path = broken
            log(f"BROKEN: {variant.name} is not usable on this machine: {verdict.reason}; kept as {broken}, "
                f"left out of the evaluation and the recommendation")


def _evaluate_all(report: QuantizeReport, text, window: int, max_chunks: int | None, threads: int | None,
                  log: Callable[[str], None], progress: bool = True) -> None:
    from quantize.evaluate import evaluate_many
    from quantize.progress import window_bar

    usable = [v for v in report.variants if v.status == "ok"]
    log(f"evaluating {len(usable)} variants against {report.reference.name} (windows of {window} tokens, "
        + (f"the first {max_chunks})" if max_chunks else "the whole text)"))
    paths = [report.reference.path, *(v.path for v in usable)]
    with window_bar("evaluating", progress) as bar:
        results = evaluate_many(paths, report.reference.path, text=text, window=window, max_chunks=max_chunks,
                                threads=threads, progress=bar)
    for variant, quality in zip([report.reference, *usable], results):
        _attach_quality(variant, quality)
    report.eval_chunks = results[0].n_chunks
