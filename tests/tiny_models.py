"""Tiny random-weight Hugging Face models for tests, built from transformers configs (no download).

Each folder has config.json, model.safetensors, and a real byte-level BPE tokenizer (trained here on the standard
library's pydoc text) with a ChatML chat template, so converters and runtimes see a complete HF model.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 512


def training_text() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def build_tokenizer(folder: Path, vocab_size: int = VOCAB_SIZE) -> None:
    """Train a GPT-2 style byte-level BPE on pydoc text and save it the way HF models ship tokenizers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(training_text(), trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
        "model_max_length": 512, "chat_template": CHAT_TEMPLATE,
    }))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"}))


def tiny_config(arch: str):
    """A transformers config for `arch` ("llama", "qwen2", "gemma3") small enough to build in a second."""
    import transformers

    common = dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=0, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if arch == "llama":
        return transformers.LlamaConfig(**common, rms_norm_eps=1e-5, rope_theta=10000.0)
    if arch == "qwen2":
        return transformers.Qwen2Config(**common, rms_norm_eps=1e-6, rope_theta=10000.0)
    if arch == "gemma3":
        return transformers.Gemma3TextConfig(**{**common, "tie_word_embeddings": True}, head_dim=16,
                                             sliding_window=64, query_pre_attn_scalar=16, rms_norm_eps=1e-6)
    raise ValueError(f"no tiny config for {arch!r}")


def make_tiny_hf(arch: str, folder: Path, seed: int = 0) -> Path:
    """Write a random-weight `arch` model with tokenizer to `folder` and return it."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = tiny_config(arch)
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    # Random init gives nearly flat logits; scale weights up so greedy choices are well separated.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2:
                param.mul_(8.0 if "embed" not in name else 1.0)
    model.save_pretrained(folder, safe_serialization=True)
    build_tokenizer(folder)
    return folder


# ---- one tiny random model per family, for the family parity table (quantize/family_parity.py) ----
# Shapes: rows of 256 so llama.cpp's K-quants apply to every matrix (smaller rows fall back to legacy types);
# 2 layers. The tokenizer is SmolLM2's real byte-level BPE (49,152 tokens), rebuilt from the embedded GGUF: its
# pre-tokenizer is one llama.cpp's converter recognises ("smollm"), which a tokenizer trained here never is. Families
# whose converter reads only SentencePiece (gemma, gemma2, ernie4_5) and phi3 (Phi-3's own is one) get a
# SentencePiece model trained here instead.
FAMILY_SHAPE = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=1024)
SPM_FAMILIES = frozenset({"gemma", "gemma2", "phi3", "ernie4_5"})
TIED_FAMILIES = frozenset({"llama", "qwen2", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3", "smollm3", "granite",
                           "granitemoe", "lfm2", "exaone4", "arcee", "cohere2"})


def _family_config(family: str, vocab_size: int, ids: dict):
    import transformers as tf

    # Tied output head where the family's small releases tie it (llama.cpp then needs no output.weight); others
    # (olmo2's graph requires output.weight) keep their own head as their releases do.
    base = dict(FAMILY_SHAPE, vocab_size=vocab_size, tie_word_embeddings=family in TIED_FAMILIES, **ids)
    moe = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=256)
    mha = dict(base, num_key_value_heads=base["num_attention_heads"])
    configs = {
        "llama": lambda: tf.LlamaConfig(**base, rms_norm_eps=1e-5, rope_theta=10000.0),
        "mistral": lambda: tf.MistralConfig(**base, sliding_window=None, rope_theta=10000.0),
        "qwen2": lambda: tf.Qwen2Config(**base, rope_theta=10000.0),
        "qwen3": lambda: tf.Qwen3Config(**base, head_dim=64, rope_theta=10000.0),
        "qwen3_moe": lambda: tf.Qwen3MoeConfig(**base, head_dim=64, **moe, decoder_sparse_step=1,
                                               norm_topk_prob=True),
        "qwen2_moe": lambda: tf.Qwen2MoeConfig(**base, **moe, shared_expert_intermediate_size=256,
                                               decoder_sparse_step=1),
        "mixtral": lambda: tf.MixtralConfig(**base, num_local_experts=4, num_experts_per_tok=2,
                                            sliding_window=None),
        "gemma": lambda: tf.GemmaConfig(**base, head_dim=64),
        "gemma2": lambda: tf.Gemma2Config(**base, head_dim=64, query_pre_attn_scalar=64, sliding_window=64),
        "gemma3": lambda: tf.Gemma3TextConfig(**base, head_dim=64, query_pre_attn_scalar=64, sliding_window=64),
        # Phi-3-mini-4k's shape: trained length = original length (no long-rope scaling)
        "phi3": lambda: tf.Phi3Config(**base, rope_theta=10000.0,
                                      original_max_position_embeddings=base["max_position_embeddings"]),
        "smollm3": lambda: tf.SmolLM3Config(**base, rope_theta=10000.0),
        "granite": lambda: tf.GraniteConfig(**base, embedding_multiplier=2.0, residual_multiplier=0.5,
                                            attention_multiplier=1 / 64, logits_scaling=2.0),
        "granitemoe": lambda: tf.GraniteMoeConfig(**base, num_local_experts=4, num_experts_per_tok=2,
                                                  embedding_multiplier=2.0, residual_multiplier=0.5,
                                                  attention_multiplier=1 / 64, logits_scaling=2.0),
        "olmo": lambda: tf.OlmoConfig(**base),
        "olmo2": lambda: tf.Olmo2Config(**base),
        # OLMoE and Phi-2 release multi-head attention (as many KV heads as heads), which llama.cpp's graphs assume.
        "olmoe": lambda: tf.OlmoeConfig(**mha, num_experts=4, num_experts_per_tok=2),
        "stablelm": lambda: tf.StableLmConfig(**base),
        "starcoder2": lambda: tf.Starcoder2Config(**base, sliding_window=None),
        # Phi-2: llama.cpp's converter writes n_ff = 4 x n_embd whatever intermediate_size says (Phi-2's own ratio)
        "phi": lambda: tf.PhiConfig(**{**mha, "intermediate_size": 4 * base["hidden_size"]}),
        "lfm2": lambda: tf.Lfm2Config(**{**base, "intermediate_size": 512}, block_auto_adjust_ff_dim=False,
                                      layer_types=["conv", "full_attention"]),
        "exaone4": lambda: tf.Exaone4Config(**base),
        "glm4": lambda: tf.Glm4Config(**base, head_dim=64),
        "seed_oss": lambda: tf.SeedOssConfig(**base, head_dim=64),
        "ernie4_5": lambda: tf.Ernie4_5Config(**base, head_dim=64),
        "gpt_neox": lambda: tf.GPTNeoXConfig(**{k: v for k, v in base.items() if k != "num_key_value_heads"}),
        "cohere2": lambda: tf.Cohere2Config(**base, sliding_window=64),
        "arcee": lambda: tf.ArceeConfig(**base),
    }
    if family not in configs:
        raise ValueError(f"no tiny config for family {family!r}; known: {', '.join(configs)}")
    return configs[family]()


FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "qwen2_moe", "mixtral", "gemma", "gemma2", "gemma3",
            "phi3", "smollm3", "granite", "granitemoe", "olmo", "olmo2", "olmoe", "stablelm", "starcoder2", "phi",
            "lfm2", "exaone4", "glm4", "seed_oss", "ernie4_5", "gpt_neox", "cohere2", "arcee")


@functools.lru_cache(maxsize=1)
def _smollm2_tokenizer_files() -> dict[str, bytes]:
    import tempfile

    import ondevice
    from quantize.hf_tokenizer import write_faithful_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_faithful_tokenizer(tmp, ondevice.resolve("smollm2-135m").path)  # ~15 s: read once per process
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir()}


def smollm2_tokenizer(folder: Path) -> None:
    """SmolLM2's tokenizer.json, rebuilt from the embedded GGUF (ondevice's smollm2-135m), plus a ChatML template."""
    for name, data in _smollm2_tokenizer_files().items():
        (folder / name).write_bytes(data)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(chat_template=CHAT_TEMPLATE, tokenizer_class="PreTrainedTokenizerFast")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def spm_tokenizer(folder: Path, vocab_size: int = VOCAB_SIZE, extra: tuple[str, ...] = ()) -> None:
    """A SentencePiece BPE model (with byte fallback) trained here on pydoc text, as tokenizer.model."""
    import io

    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(training_text()), model_writer=proto,
                                   vocab_size=vocab_size, model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1,
                                   eos_id=2, pad_id=3, character_coverage=1.0, remove_extra_whitespaces=False,
                                   user_defined_symbols=list(extra), minloglevel=2)
    (folder / "tokenizer.model").write_bytes(proto.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "chat_template": CHAT_TEMPLATE}))


def make_family_hf(family: str, folder: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight model of `family` (a transformers model_type) with a real tokenizer to `folder`.

    Weights are rounded to float16 before saving (stored as float32), so an f16 GGUF holds exactly the weights
    transformers runs: parity then measures the converter and the runtime, not f16 rounding.
    """
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    if family in SPM_FAMILIES:
        # Phi-3's SentencePiece vocabulary carries <|endoftext|> and <|end|>; llama.cpp's vocabulary loader looks
        # them up for models named phi3.
        spm_tokenizer(folder, extra=("<|endoftext|>", "<|end|>") if family == "phi3" else ())
        vocab_size, ids = VOCAB_SIZE, dict(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    else:
        smollm2_tokenizer(folder)
        vocab_size, ids = 49152, dict(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(seed)
    config = _family_config(family, vocab_size, ids)
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2 and "embed" not in name:
                param.mul_(4.0)  # random init gives nearly flat logits; spread them so top-1 choices are clear
            elif param.dim() == 1 and "norm" in name.lower() and float(param.abs().sum()) == 0.0:
                param.normal_(0.0, 0.1)  # zero-centred norms (gemma's 1 + w) get some weight to check the offset
            param.copy_(param.to(torch.float16).to(torch.float32))
    model.save_pretrained(folder, safe_serialization=True)
    return folder
