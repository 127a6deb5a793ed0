"""Tokenizer metadata for GGUF: the vocabulary, merges, special tokens and chat template.

Three sources, tried in order:
1. The GGUF the HF folder was de-quantised from (`ondevice_source.json`): its `tokenizer.*` keys are copied byte for
   byte, because transformers' reconstructed tokenizer.json is not faithful (it mixes SentencePiece and GPT-2
   decoders; llama.cpp then mis-tokenises).
2. A byte-level BPE `tokenizer.json` (GPT-2 style): tokens, token types, merges, and llama.cpp's pre-tokenizer name
   found from the tokenizer's own split regex.
3. A SentencePiece `tokenizer.model` (gguf's SentencePieceVocab).
Special token ids, add_bos/eos and the chat template come from gguf.SpecialVocab for sources 2 and 3.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import gguf

from ondevice.errors import InvalidInput
from quantize.hf_source import source_gguf

log = logging.getLogger(__name__)

# llama.cpp's pre-tokenizer names (src/llama-vocab.cpp) by the split regex a tokenizer.json carries.
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
PRE_BY_REGEX: dict[str, str] = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
}


def write_vocab(writer: gguf.GGUFWriter, hf_dir: Path, vocab_size: int) -> str:
    """Write the tokenizer of `hf_dir` into `writer`; return a short description of where it came from."""
    origin = source_gguf(hf_dir)
    if origin is not None:
        n = copy_metadata(origin, writer, lambda key: key.startswith("tokenizer."))
        return f"copied {n} tokenizer keys from {origin.name}"
    if (hf_dir / "tokenizer.json").exists():
        tok = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
        if tok.get("model", {}).get("type") == "BPE" and _is_byte_level(tok):
            pre = _write_bpe(writer, tok, vocab_size)
            _write_special(writer, hf_dir, vocab_size, merges=True)
            return f"gpt2 BPE, pre-tokenizer {pre!r}"
    if (hf_dir / "tokenizer.model").exists():
        _write_sentencepiece(writer, hf_dir, vocab_size)
        _write_special(writer, hf_dir, vocab_size, merges=False)
        return "SentencePiece"
    raise InvalidInput(f"{hf_dir}: no tokenizer this converter reads (a byte-level BPE tokenizer.json or a "
                       f"SentencePiece tokenizer.model)")


def copy_metadata(source: Path, writer: gguf.GGUFWriter, keep: Callable[[str], bool]) -> int:
    """Copy the metadata keys of the GGUF `source` for which `keep(key)` is true into `writer`, unchanged."""
    reader = gguf.GGUFReader(source)
    n = 0
    for field in reader.fields.values():
        if not keep(field.name):
            continue
        main = field.types[0]
        if main == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                # raw bytes, not decoded text: a token need not be valid UTF-8 on its own
                value = [bytes(field.parts[i]) for i in field.data]
            else:
                value = [v.item() if hasattr(v, "item") else v for v in field.contents()]
            writer.add_key_value(field.name, value, main, sub_type=sub)
        else:
            writer.add_key_value(field.name, field.contents(), main)
        n += 1
    return n


def _is_byte_level(tok: dict) -> bool:
    decoder = tok.get("decoder") or {}
    decoders = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return any(d.get("type") == "ByteLevel" for d in decoders) and not tok["model"].get("byte_fallback", False)


def _pre_tokenizer_name(tok: dict) -> str:
    """llama.cpp's name for this tokenizer's pre-tokenisation, read from its structure (not guessed from a hash)."""
    pre = tok.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    byte_level_regex = any(s.get("type") == "ByteLevel" and s.get("use_regex", True) for s in steps)
    if kinds == ["ByteLevel"] and byte_level_regex:
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and byte_level_regex:
        return "smollm"  # digits one by one, then the GPT-2 regex
    for step in steps:
        regex = (step.get("pattern") or {}).get("Regex") if step.get("type") == "Split" else None
        if regex in PRE_BY_REGEX:
            return PRE_BY_REGEX[regex]
    log.warning("unknown pre-tokenizer %s; writing 'default' (llama.cpp may split text differently)", kinds)
    return "default"


def _write_bpe(writer: gguf.GGUFWriter, tok: dict, vocab_size: int) -> str:
    vocab: dict[str, int] = tok["model"]["vocab"]
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    by_id = {i: t for t, i in vocab.items()}
    by_id.update({i: a["content"] for i, a in added.items()})
    size = max(vocab_size, max(by_id) + 1)
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:  # the embedding matrix is larger than the vocabulary
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    pre = _pre_tokenizer_name(tok)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    return pre


def _write_sentencepiece(writer: gguf.GGUFWriter, hf_dir: Path, vocab_size: int) -> None:
    spm = gguf.SentencePieceVocab(hf_dir)
    tokens, scores, types = [], [], []
    for text, score, toktype in spm.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(toktype)
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    # llama.cpp must normalise text as SentencePiece does: prepend "▁" or not, collapse whitespace or not.
    normalizer = _spm_normalizer(hf_dir / "tokenizer.model")
    writer.add_add_space_prefix(bool(normalizer.add_dummy_prefix))
    writer.add_remove_extra_whitespaces(bool(normalizer.remove_extra_whitespaces))


def _spm_normalizer(model_file: Path):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    return proto.normalizer_spec


def _write_special(writer: gguf.GGUFWriter, hf_dir: Path, vocab_size: int, merges: bool) -> None:
    special = gguf.SpecialVocab(hf_dir, load_merges=merges, n_vocab=vocab_size)
    special.add_to_gguf(writer, quiet=True)
