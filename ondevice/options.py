"""Runtime options shared by the Python API, the CLI and the server."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RuntimeOptions:
    """How to run a model. `None` means "choose for this machine" (see `ondevice.autoconfig`).

    - n_ctx: context length in tokens; default the model's trained length capped so weights + KV cache fit in RAM.
    - threads: CPU threads; default the number of physical cores.
    - device: "auto" (NPU/GPU when the runtime offers one, else CPU), "cpu", "gpu", or an ONNX Runtime provider
      name such as "QNN", "OpenVINO", "CoreML", "DML".
    - backend: force a backend by name ("gguf", "onnx-genai", "onnx-encoder"); default chosen from the model format.
    - logits_all: keep logits for every position (needed by perplexity/KL evaluation; costs memory).
    - embedding: open a GGUF model in embedding mode.
    - use_mmap: map the file instead of reading it. Off by default: on x86 llama.cpp repacks quantised weights,
      and a mapped file then stays resident beside the repacked copy (measured: 8.5 GB vs 5.4 GB peak RSS, 8B Q4).
    """

    n_ctx: int | None = None
    threads: int | None = None
    device: str = "auto"
    backend: str | None = None
    logits_all: bool = False
    embedding: bool = False
    use_mmap: bool = False
    extra: dict = field(default_factory=dict)
