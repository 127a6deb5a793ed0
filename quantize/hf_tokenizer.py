"""A faithful Hugging Face `tokenizer.json` for byte-level BPE models, rebuilt from a GGUF's tokenizer metadata.

Why: transformers' GGUF loader reconstructs GPT-2-style (byte-level BPE) vocabularies with SentencePiece pieces
mixed in: `byte_fallback=True`, a ByteFallback + Fuse + Replace('▁') + ByteLevel decoder, and a BOS post-processor
even where the GGUF says `add_bos_token = false`. transformers' own tokenizer copes, but onnxruntime-genai's
(onnxruntime-extensions) treats `byte_fallback` as SentencePiece and encodes every space as three unknown ids,
which decode as `<|endoftext|>` (and the mixed decoder leaves `Ġ`). The fix is to write what the GGUF actually
says: its tokens, merges, special tokens, the pre-tokenizer regex llama.cpp uses for its `tokenizer.ggml.pre`,
and a plain ByteLevel decoder.
"""

from __future__ import annotations

import json
from pathlib import Path

# Pre-tokenizers by `tokenizer.ggml.pre`, written the way the original Hugging Face tokenizer.json files write them
# (llama.cpp's regexes in src/llama-vocab.cpp are equivalent). The layout matters: onnxruntime-extensions
# recognises these standard forms and mis-splits whitespace with other equivalent spellings.
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZER_KINDS: dict[str, str] = {
    "default": "gpt2", "gpt-2": "gpt2", "gpt2": "gpt2",
    "smollm": "digits", "starcoder": "digits", "refact": "digits",
    "llama-bpe": "llama3", "llama3": "llama3", "smaug-bpe": "llama3",
    "qwen2": "qwen2", "deepseek-r1-qwen": "qwen2",
}


def _pre_tokenizer(pre: str):
    from tokenizers import Regex, pre_tokenizers

    kind = PRE_TOKENIZER_KINDS.get(pre, "gpt2")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=kind in ("gpt2", "digits"))
    if kind == "gpt2":
        return byte_level
    if kind == "digits":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    regex = _LLAMA3 if kind == "llama3" else _QWEN2
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
                                    byte_level])


TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


def _gguf_tokenizer_fields(gguf_path: Path) -> dict:
    """The tokenizer.ggml.* arrays and flags of a GGUF, decoded (vocab and merges in full)."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))

    def value(key: str, default=None):
        field = reader.get_field(key)
        if field is None:
            return default
        return field.contents()

    return {
        "model": value("tokenizer.ggml.model"), "pre": value("tokenizer.ggml.pre", "default"),
        "tokens": value("tokenizer.ggml.tokens", []), "merges": value("tokenizer.ggml.merges", []),
        "token_type": value("tokenizer.ggml.token_type", []),
        "add_bos": bool(value("tokenizer.ggml.add_bos_token", False)),
        "bos": value("tokenizer.ggml.bos_token_id"), "eos": value("tokenizer.ggml.eos_token_id"),
    }


def is_byte_level_bpe(gguf_path: str | Path) -> bool:
    """True for GGUFs whose vocabulary is GPT-2-style byte-level BPE (`tokenizer.ggml.model = gpt2`)."""
    import gguf

    field = gguf.GGUFReader(str(gguf_path)).get_field("tokenizer.ggml.model")
    return field is not None and field.contents() == "gpt2"


def tokenizer_from_gguf(gguf_path: str | Path):
    """Build a `tokenizers.Tokenizer` equal to the one llama.cpp runs for a byte-level BPE GGUF."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors

    f = _gguf_tokenizer_fields(Path(gguf_path))
    if f["model"] != "gpt2":
        raise ValueError(f"{gguf_path}: tokenizer model {f['model']!r} is not byte-level BPE")
    vocab = {tok: i for i, tok in enumerate(f["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in f["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False, fuse_unk=False))
    tokenizer.pre_tokenizer = _pre_tokenizer(str(f["pre"]))
    tokenizer.decoder = decoders.ByteLevel()
    special_types = (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)
    specials = [AddedToken(tok, special=True, normalized=False)
                for tok, kind in zip(f["tokens"], f["token_type"]) if int(kind) in special_types]
    tokenizer.add_special_tokens(specials)
    if f["add_bos"] and f["bos"] is not None:
        bos = f["tokens"][int(f["bos"])]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, int(f["bos"]))])
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def write_faithful_tokenizer(folder: str | Path, gguf_path: str | Path) -> None:
    """Replace `folder`'s tokenizer.json with one rebuilt from the GGUF, and align tokenizer_config.json."""
    folder = Path(folder)
    f = _gguf_tokenizer_fields(Path(gguf_path))
    tokenizer_from_gguf(gguf_path).save(str(folder / "tokenizer.json"))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config["add_bos_token"] = f["add_bos"]
    config["add_eos_token"] = False
    config.pop("legacy", None)
    if f["bos"] is not None:
        config["bos_token"] = f["tokens"][int(f["bos"])]
    if f["eos"] is not None:
        config["eos_token"] = f["tokens"][int(f["eos"])]
    # A tokenizer_class naming SentencePiece (LlamaTokenizer) makes runtimes expect tokenizer.model.
    config["tokenizer_class"] = "GPT2Tokenizer"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
