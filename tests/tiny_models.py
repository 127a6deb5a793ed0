"""Tiny random-weight Hugging Face models for tests, built from transformers configs (no download).

Each folder has config.json, model.safetensors, and a real byte-level BPE tokenizer (trained here on the standard
library's pydoc text) with a ChatML chat template, so converters and runtimes see a complete HF model.
"""

from __future__ import annotations

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
