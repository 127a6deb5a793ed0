"""`distill()`: teacher -> layer-pruned student -> logit KD -> HF dir + report (+ optional GGUF quantisation)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path

from ondevice.errors import InvalidInput
from quantize.distill.data import split_texts, synthetic_texts, token_chunks
from quantize.distill.prune import METHODS, PruneChoice, choose_blocks, pruned_student
from quantize.distill.report import DistillReport, HeldoutPPL, perplexity, write_report
from quantize.distill.train import (CHECKPOINT, TrainConfig, load_checkpoint, pick_device, resolve_dtype,
                                    train)
from quantize.hf_source import SOURCE_RECORD

# Files copied from the teacher so the student is a complete HF model (tokenizer, chat template, generation defaults);
# SOURCE_RECORD names the GGUF a de-quantised teacher came from, so the GGUF writer copies its exact tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "chat_template.json", "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "added_tokens.json", SOURCE_RECORD)
CALIB_CHUNKS = 4
# Held-out perplexity and the pruning calibration always use windows of this many tokens, whatever the training
# --seq-len: a run that trains on shorter sequences (more optimizer steps for the same tokens) prunes the same blocks
# and is scored exactly like the others.
EVAL_SEQ_LEN = 256


def _windows(tokenizer, texts: list[str], seq_len: int, max_tokens: int | None = None):
    """`EVAL_SEQ_LEN`-token windows of `texts`; a text (or token budget) shorter than one window falls back to
    windows of the training length, so tiny data still gets a measurement."""
    try:
        return token_chunks(tokenizer, texts, EVAL_SEQ_LEN, max_tokens=max_tokens)
    except InvalidInput:
        return token_chunks(tokenizer, texts, min(seq_len, EVAL_SEQ_LEN), max_tokens=max_tokens)


def teacher_dir(teacher: str | Path) -> Path:
    """An HF folder for the teacher: itself when it is one, else de-quantised from a GGUF or alias (cached)."""
    from quantize.hf_source import to_hf_dir

    return Path(to_hf_dir(teacher))  # ModelNotFound / InvalidModelFile / InvalidInput with one clear line


def layers_to_keep(n_layers: int, keep_layers: int | None, drop_layers: int | None) -> int:
    """How many blocks the student keeps; InvalidInput for impossible requests. Default: drop a third."""
    if keep_layers is not None and drop_layers is not None:
        raise InvalidInput("give --keep-layers or --drop-layers, not both")
    if drop_layers is not None:
        keep_layers = n_layers - drop_layers
    if keep_layers is None:
        keep_layers = n_layers - n_layers // 3
    if not 1 <= keep_layers < n_layers:
        raise InvalidInput(f"the teacher has {n_layers} layers; the student must keep between 1 and "
                           f"{n_layers - 1} (asked to keep {keep_layers})")
    return keep_layers


def _parse_then(then: str | None) -> str | None:
    if then is None:
        return None
    kind, _, qtype = then.partition(":")
    if kind != "gguf" or not qtype:
        raise InvalidInput(f"--then {then!r}: expected gguf:TYPE, e.g. gguf:Q4_K_M")
    from quantize.gguf_quantize import check_qtype

    return check_qtype(qtype)  # a bad type fails now, not after training


def save_student(student, teacher_path: Path, out_dir: Path) -> None:
    """Write the student as an HF folder: safetensors + config, and the teacher's tokenizer files unchanged."""
    student.save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (teacher_path / name).exists():
            shutil.copy2(teacher_path / name, out_dir / name)


def to_gguf(student_dir: Path, qtype: str) -> Path:
    """student_dir -> f16 GGUF -> `qtype` GGUF, through the project's converter and quantiser."""
    from quantize.convert import convert
    from quantize.gguf_quantize import quantize_gguf

    f16 = student_dir / "student-f16.gguf"
    convert(student_dir, f16, "f16")
    out = student_dir / f"student-{qtype}.gguf"
    quantize_gguf(f16, out, qtype, progress=False)
    f16.unlink(missing_ok=True)
    return out


def distill(teacher: str | Path, out_dir: str | Path, keep_layers: int | None = None,
            drop_layers: int | None = None, steps: int = 200, data: str | Path | None = None, synthetic: int = 0,
            seq_len: int = 128, batch: int = 2, grad_accum: int = 1, lr: float = 3e-4, temperature: float = 1.0,
            checkpoint_every: int = 50, resume: bool = False, seed: int = 0, then: str | None = None,
            prune_method: str = "iterative", eval_tokens: int = 8192, progress: bool = False,
            **train_options) -> DistillReport:
    """Distil `teacher` (HF dir, GGUF or alias) into a student with fewer blocks, written to `out_dir`.

    The student starts as the teacher minus its most redundant blocks (measured on calibration text), then learns
    the teacher's token distributions (forward KL at `temperature`). `train_options` are further `TrainConfig`
    fields (warmup, ce_weight, hidden_weight, dtype, time_limit_s, stop_after, train_embeddings, ...).
    Returns the report also written to out_dir/distill.json; the folder loads with transformers and ondevice.
    """
    import torch
    import transformers

    started = time.perf_counter()
    unknown = set(train_options) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise InvalidInput(f"unknown distillation options: {', '.join(sorted(unknown))}")
    if prune_method not in METHODS:
        raise InvalidInput(f"unknown prune method {prune_method!r}; one of {', '.join(METHODS)}")
    for name, value in (("steps", steps), ("seq_len", seq_len), ("batch", batch), ("grad_accum", grad_accum),
                        ("checkpoint_every", checkpoint_every)):
        if value < 1:
            raise InvalidInput(f"{name} must be at least 1 (got {value})")
    if synthetic < 0 or temperature <= 0 or lr <= 0:
        raise InvalidInput("synthetic must be >= 0, temperature and lr > 0")
    qtype = _parse_then(then)
    tpath = teacher_dir(teacher)
    n_layers = json.loads((tpath / "config.json").read_text()).get("num_hidden_layers")
    if not n_layers:
        raise InvalidInput(f"{tpath}/config.json has no num_hidden_layers: not a decoder model we can prune")
    n_keep = layers_to_keep(n_layers, keep_layers, drop_layers)
    split = split_texts(data)
    out = Path(out_dir).expanduser()
    ckpt_path = out / CHECKPOINT
    state = None
    if resume:
        if not ckpt_path.exists():
            raise InvalidInput(f"--resume: no checkpoint at {ckpt_path}")
        state = load_checkpoint(ckpt_path)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(steps=steps, seq_len=seq_len, batch=batch, grad_accum=grad_accum, lr=lr,
                      temperature=temperature, checkpoint_every=checkpoint_every, seed=seed, **train_options)

    if cfg.dtype not in ("auto", "fp32", "bf16") or min(cfg.teacher_topk, cfg.threads, cfg.train_chunks) < 0:
        raise InvalidInput(f"dtype must be auto, fp32 or bf16 (got {cfg.dtype!r}); teacher_topk, threads and "
                           "train_chunks >= 0")
    device = pick_device(cfg.threads)
    cfg.dtype = resolve_dtype(cfg.dtype, device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tpath)
    model = transformers.AutoModelForCausalLM.from_pretrained(tpath, dtype=torch.float32).to(device).eval()
    train_texts = list(split.train)
    if synthetic:
        train_texts += synthetic_texts(model, tokenizer, synthetic, seed=seed)
    chunks = token_chunks(tokenizer, train_texts, seq_len)
    heldout = {name: _windows(tokenizer, [text], seq_len, eval_tokens) for name, text in split.heldout.items()}

    if state is not None:
        choice = PruneChoice(**state["choice"])
        if len(choice.kept) != n_keep:
            raise InvalidInput(f"--resume: the checkpoint keeps {len(choice.kept)} layers, not {n_keep}")
        before = state["before"]
    else:
        windows = chunks if seq_len == EVAL_SEQ_LEN else _windows(tokenizer, train_texts, seq_len)
        calib = windows[torch.linspace(0, len(windows) - 1, min(CALIB_CHUNKS, len(windows))).long()]
        choice = choose_blocks(model, calib, n_keep, prune_method)
        before = None
    student = pruned_student(model, choice)
    if before is None:
        before = {name: {"teacher": perplexity(model, c), "pruned": perplexity(student, c), "tokens": c.numel()}
                  for name, c in heldout.items()}
    extra = {"choice": asdict(choice), "before": before, "config": asdict(cfg)}
    result = train(model, student, chunks, cfg, choice.kept, out, resume_state=state, progress=progress,
                   extra=extra)
    student.eval()
    for p in student.parameters():
        p.requires_grad_(False)
    save_student(student, tpath, out)
    ppl = {name: HeldoutPPL(tokens=before[name]["tokens"], teacher=before[name]["teacher"],
                            pruned=before[name]["pruned"], distilled=perplexity(student, c))
           for name, c in heldout.items()}
    report = DistillReport(
        teacher=str(teacher), student_dir=str(out), teacher_params=sum(p.numel() for p in model.parameters()),
        student_params=sum(p.numel() for p in student.parameters()), teacher_layers=n_layers,
        kept_layers=choice.kept, dropped_layers=choice.dropped, prune_method=choice.method, heldout=ppl,
        steps=result.steps, tokens_seen=result.tokens_seen, wall_s=result.wall_s, cpu_s=result.cpu_s, total_s=0.0,
        losses=result.losses, config=asdict(cfg), device=device, data_source=split.source,
        stopped_early=result.stopped_early, prune_rounds=choice.rounds)
    if qtype is not None and not result.stopped_early:
        report.gguf = str(to_gguf(out, qtype))
    report.total_s = time.perf_counter() - started
    write_report(report, out)
    return report
