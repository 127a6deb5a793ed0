"""Teacher -> smaller student (layer pruning + distillation) -> Q4_K_M GGUF -> quick decode speed, with the quality
table of `ondevice distill`.

    python examples/distill_then_quantize.py                                # SmolLM2-135M, keep 20 of 30, 100 steps
    python examples/distill_then_quantize.py TEACHER --keep-layers 4 --steps 4 --seq-len 32 --eval-tokens 256

The student folder (HF safetensors + tokenizer) and its GGUF land in --out; distill.json has every number.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

import ondevice
from quantize.cli import report_table
from quantize.distill import distill


def decode_speed(model_path: str, max_tokens: int) -> tuple[float, str]:
    """Decode tokens/s of one greedy chat answer (bench-like: a fresh load, 2 threads by default, temperature 0)."""
    with ondevice.load(model_path, n_ctx=512) as model:
        result = model.chat([{"role": "user", "content": "Write one sentence about the sea."}],
                            max_tokens=max_tokens, temperature=0.0)
        return result.timings.decode_tokens_per_s, result.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", nargs="?", default="smollm2-135m", help="HF folder, GGUF or alias")
    parser.add_argument("--out", default="distilled-student")
    parser.add_argument("--keep-layers", type=int, default=None)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--data", default=None, help="text file or folder (default: pydoc_data text)")
    parser.add_argument("--qtype", default="Q4_K_M")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens decoded for the speed check")
    args = parser.parse_args()

    report = distill(args.teacher, args.out, keep_layers=args.keep_layers, steps=args.steps, data=args.data,
                     seq_len=args.seq_len, batch=args.batch, eval_tokens=args.eval_tokens,
                     then=f"gguf:{args.qtype}", progress=True)
    console = Console()
    console.print(report_table(report))

    speeds = Table(title="decode speed (quick check, not a benchmark)")
    for column in ("model", "size MB", "decode tok/s", "answer"):
        speeds.add_column(column)
    teacher_gguf = Path(args.out) / f"teacher-{args.qtype}.gguf"
    if not teacher_gguf.exists():  # the teacher at the same quantisation, for a fair comparison
        from quantize.convert import convert
        from quantize.gguf_quantize import quantize_gguf

        f16 = Path(args.out) / "teacher-f16.gguf"
        convert(args.teacher, f16, "f16")
        quantize_gguf(f16, teacher_gguf, args.qtype, progress=False)
        f16.unlink()
    for name, path in (("teacher", str(teacher_gguf)), ("student", report.gguf)):
        tps, text = decode_speed(path, args.max_tokens)
        speeds.add_row(f"{name} {args.qtype}", f"{Path(path).stat().st_size / 1e6:.1f}", f"{tps:.1f}",
                       text.strip().replace("\n", " ")[:60])
    console.print(speeds)


if __name__ == "__main__":
    main()
