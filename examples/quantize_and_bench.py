"""Quantise-and-bench with the library: make GGUF and ONNX variants, measure their quality, bench them, pick one
for a RAM budget, and check this device against the AI-PC / phone targets.

    python examples/quantize_and_bench.py --out qb-report                   # the full run (a few minutes)
    python examples/quantize_and_bench.py --out /tmp/qb --to gguf:Q8_0 --eval-chunks 2 -p 16 -n 8 -r 1 --no-targets

The same as CLI lines:
    ondevice quantize smollm2-135m --to gguf:Q4_K_M,Q8_0 --to onnx:int4 --eval --out qb-report
    ondevice bench qb-report/*.gguf -p 64 -n 32 -r 3
    ondevice bench --targets --probe llama3-8b --quant Q4_K_M
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ondevice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=ondevice.DEFAULT_MODEL)
    parser.add_argument("--out", default="qb-report")
    parser.add_argument("--to", action="append", help="Target variants (default gguf:Q4_K_M,Q8_0 and onnx:int4).")
    parser.add_argument("--eval-chunks", type=int, default=8, help="Evaluation windows of 256 tokens.")
    parser.add_argument("--ram-gb", type=float, default=0.25, help="RAM budget for the recommendation.")
    parser.add_argument("--max-kld", type=float, default=0.1)
    parser.add_argument("-p", type=int, default=64, help="Prompt tokens per bench test.")
    parser.add_argument("-n", type=int, default=32, help="Generated tokens per bench test.")
    parser.add_argument("-r", type=int, default=3, help="Repetitions.")
    parser.add_argument("--no-targets", action="store_true", help="Skip the 8B shape probe and targets table.")
    args = parser.parse_args(argv)

    import quantize
    from bench.report import markdown_table, targets_table
    from bench.runner import BenchConfig
    from bench.suite import run_bench
    from quantize.report import markdown as quality_table

    out = Path(args.out)
    targets = args.to or ["gguf:Q4_K_M,Q8_0", "onnx:int4"]
    try:
        # 1. Variants + quality against the f16 reference of the same weights (PPL, KLD, same-top %).
        report = quantize.quantize(args.model, targets=targets, out_dir=out, evaluate=True, window=256,
                                   max_chunks=args.eval_chunks, decode_speed=False, progress=False,
                                   log=lambda m: print(f"[quantize] {m}", file=sys.stderr))
        print(quality_table(report))

        # 2. Which one to ship on a device with this much RAM, within this quality bound?
        choice = quantize.recommend(report, ram_gb=args.ram_gb, max_kld=args.max_kld, ctx=2048)
        print(f"\nrecommendation for {args.ram_gb} GB, KLD <= {args.max_kld}: {choice.reason}\n")

        # 3. Speed and memory of each variant, and (optionally) the 7-10B targets on a shape probe.
        config = BenchConfig(n_prompt=args.p, n_gen=args.n, repetitions=args.r)
        bench = run_bench([v.path for v in report.variants], config, targets=not args.no_targets,
                          report_dir=out / "bench")
    except ondevice.OnDeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(bench.results))
    if bench.targets is not None:
        print("\n" + targets_table(bench))
    print(f"\nreports: {out / 'report.md'} and {out / 'bench' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
