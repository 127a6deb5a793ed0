"""Runtime options shared by the Python API, the CLI and the server; checked once, here."""

from __future__ import annotations

from dataclasses import dataclass, field

from ondevice.errors import InvalidInput
from ondevice.models.memory import KV_TYPES, QUANTISED_KV_TYPES, uses_flash_attention
FLASH_ATTN = ("auto", "on", "off")
MIN_CTX = 16  # the smallest context a model may be opened with (auto-config's own floor: memory.MIN_AUTO_CTX)

# Options only some backends honour: each backend declares which of these it takes (`Backend.options`); a value
# other than the default for an option the chosen backend does not declare is refused when the model loads,
# naming the option and the backend (never silently ignored).
BACKEND_OPTIONS = ("logits_all", "embedding", "use_mmap", "kv_type", "flash_attn", "huge_pages", "speculative",
                   "chat_template", "tool_format", "cache_reuse")
CACHE_REUSE = ("exact", "all")


@dataclass
class RuntimeOptions:
    """How to run a model. `None` means "choose for this machine" (see `ondevice.machine.autoconfig`).

    - n_ctx: context length in tokens; default the model's trained length capped so weights + KV cache fit in RAM.
    - threads: CPU threads; default the number of physical cores.
    - device: "auto" (NPU/GPU when the runtime offers one, else CPU), "cpu", "gpu", or an ONNX Runtime provider
      name such as "QNN", "OpenVINO", "CoreML", "DML".
    - backend: force a backend by name ("gguf", "onnx-genai", "onnx-encoder"); default chosen from the model format.
    - logits_all: keep logits for every position (needed by perplexity/KL evaluation; costs memory).
    - embedding: open a GGUF model in embedding mode.
    - use_mmap: map the file instead of reading it. Off by default: on x86 llama.cpp repacks quantised weights,
      and a mapped file then stays resident beside the repacked copy (measured: 8.5 GB vs 5.4 GB peak RSS, 8B Q4).
    - kv_type: KV cache element type, "f16" (default), "q8_0" (half the memory) or "q4_0" (a quarter; more
      loss), or "f32" (twice the memory: the exact cache, the reference docs/kv-cache.md measures against). GGUF
      backend only; libllama needs flash attention for a quantised V cache, so it is turned on.
    - flash_attn: "auto" (on when the KV cache is quantised, else off), "on" or "off". "off" with a quantised KV
      cache is refused. Why not on by default, although llama.cpp's own tools default to it and it decodes ~15%
      faster on SmolLM2: libllama's CPU flash attention picks a different kernel for a batch of 32+ query rows
      (tiled) than for fewer, so a prompt's logits depend on how it was split into batches, and reusing a cached
      prefix (which splits it differently) changed greedy answers (docs/kv-cache.md). Off keeps them exact.
    - huge_pages: back the loaded model's weights and KV cache with transparent huge pages where Linux allows it
      (GGUF backend; see `ondevice.machine.hugepages`: about +25% decode on the development machine). True by default.
    - speculative: lookup decoding for this model's generations: "off" (default), "auto" (draft from the prompt and
      the answer so far, pausing when it does not pay), or "lookup" (always draft); see `ondevice.decoding.speculative`.
    - chat_template: a Jinja chat template (the HF `chat_template` convention) used by `chat()` instead of the
      model's own: for a base model that has none, or to override one. None uses the model's.
    - tool_format: the tool-call format chat() uses with tools: "auto" (default: the one the chat template is
      written for, else the generic one) or a name from `ondevice.decoding.tool_formats.FORMATS` ("hermes", "llama3",
      "mistral", "phi4", "granite", "generic"); docs/structured-output.md has the table.
    - cache_reuse: which cached positions a new prompt may keep (GGUF). "exact" (default): only those evaluated as a
      prompt, so a temperature-0 answer is the one a cold start gives whatever the cache held
      (`ondevice.backends.cache.exact_reuse`); a continued conversation evaluates its last answer again. "all": keep
      every shared position, the previous answer's too: faster next turns (measured 5-7x lower time to first token
      on a 3-turn chat, docs/server.md), but a greedy answer may then differ from a cold start's at a near-tie.
    - extra: further keyword arguments for the backend's loader (llama_cpp.Llama), for experiments; options
      the runtime knows (kv_type, flash_attn) must go through their fields.
    """

    n_ctx: int | None = None
    threads: int | None = None
    device: str = "auto"
    backend: str | None = None
    logits_all: bool = False
    embedding: bool = False
    use_mmap: bool = False
    kv_type: str = "f16"
    flash_attn: str = "auto"
    huge_pages: bool = True
    speculative: str = "off"
    chat_template: str | None = None
    tool_format: str = "auto"
    cache_reuse: str = "exact"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_ctx is not None and (not isinstance(self.n_ctx, int) or self.n_ctx < MIN_CTX):
            raise InvalidInput(f"n_ctx must be an integer of at least {MIN_CTX}, got {self.n_ctx!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise InvalidInput(f"threads must be a positive integer, got {self.threads!r}")
        if self.kv_type not in KV_TYPES:
            raise InvalidInput(f"kv_type must be one of {', '.join(KV_TYPES)}, got {self.kv_type!r}")
        if self.cache_reuse not in CACHE_REUSE:
            raise InvalidInput(f"cache_reuse must be one of {', '.join(CACHE_REUSE)}, got {self.cache_reuse!r}")
        if self.flash_attn not in FLASH_ATTN:
            raise InvalidInput(f"flash_attn must be one of {', '.join(FLASH_ATTN)}, got {self.flash_attn!r}")
        if self.kv_type in QUANTISED_KV_TYPES and self.flash_attn == "off":
            raise InvalidInput(f"kv_type {self.kv_type} needs flash attention (llama.cpp cannot quantise the V "
                               f"cache without it): use flash_attn 'auto' or 'on'")
        if self.chat_template is not None:
            from ondevice.models.chat_template import check_template

            check_template(self.chat_template)
        from ondevice.decoding.tool_formats import check_name

        self.tool_format = check_name(self.tool_format)
        from ondevice.decoding.speculative import check_mode

        check_mode(self.speculative)
        overlap = {"type_k", "type_v", "flash_attn"} & set(self.extra)
        if overlap:
            raise InvalidInput(f"set {', '.join(sorted(overlap))} through RuntimeOptions.kv_type / flash_attn, "
                               f"not extra")

    def check_backend(self, backend: str, declared) -> None:
        """Refuse a backend-specific option set for a backend that does not take it (see BACKEND_OPTIONS)."""
        defaults = RuntimeOptions()
        for name in BACKEND_OPTIONS:
            if name not in declared and getattr(self, name) != getattr(defaults, name):
                takes = ", ".join(o for o in BACKEND_OPTIONS if o in declared) or "none of them"
                raise InvalidInput(f"{name} is not an option of the {backend} backend (it takes: {takes})")

    def flash_attention_enabled(self) -> bool:
        """Whether to turn flash attention on ("auto" resolves to on exactly when the KV cache is quantised)."""
        return uses_flash_attention(self.kv_type, {"on": True, "off": False}.get(self.flash_attn))
