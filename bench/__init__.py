"""bench: measure speed and memory of models on this device, and check the device targets.

Public API (import the module that defines each; `import bench` stays cheap):
    bench.suite.run_bench(models, config, probe=None, ...) -> BenchReport    pp/tg speed, TTFT, load, peak RSS, rooflines
    bench.runner.BenchConfig(n_prompt, n_gen, repetitions, threads, n_ctx, reference, kv_type)
    bench.fit.fit(model | probe, quant, n_ctx, kv_type)  -> FitEstimate      will it fit in RAM?
    bench.demo.run_demo(out_dir, source)                 -> DemoReport       quantise + evaluate + bench, one report

Commands: `ondevice bench` (its default tool `speed` and the tools of bench/tools_cmd.py, `ondevice bench TOOL`),
`fit`, `demo` (bench/cli.py) join the `ondevice` command through the
"ondevice.commands" entry points in pyproject.toml; bench stands on the runtime's public names only
(docs/ARCHITECTURE.md) and, for the demo, on quantize's public API.
"""
