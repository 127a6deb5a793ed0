"""Our HF -> GGUF converter against transformers: tiny random-weight models, f32, llama.cpp vs transformers logits."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import ondevice
from ondevice.errors import InvalidInput
from quantize.hf_to_gguf import convert_hf_to_gguf

TEXT = "The quick brown fox jumps over the lazy dog. Functions return values; classes define objects."


def _hf_logits(folder, tokens: list[int]) -> np.ndarray:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].numpy()


def _hf_tokens(folder) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(TEXT).ids


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_f32_gguf_logits_match_transformers(arch, tiny_hf, tmp_path):
    folder = tiny_hf(arch)
    result = convert_hf_to_gguf(folder, tmp_path / f"{arch}.gguf", "f32")
    assert result.path.exists() and result.outtype == "f32"
    tokens = _hf_tokens(folder)
    assert len(tokens) > 10
    expected = _hf_logits(folder, tokens)
    with ondevice.load(result.path, n_ctx=128, threads=1) as model:
        # the vocabulary survived: llama.cpp splits the text exactly as the HF tokenizer does
        assert model.tokenize(TEXT, add_special=False) == tokens
        got = model.logits(tokens)
    assert got.shape == expected.shape
    assert (got.argmax(-1) == expected.argmax(-1)).all()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 2e-3 * scale


def test_f16_and_bf16_are_half_the_size_of_f32(tiny_hf, tmp_path):
    folder = tiny_hf("llama")
    sizes = {t: convert_hf_to_gguf(folder, tmp_path / f"{t}.gguf", t).size_bytes for t in ("f32", "f16", "bf16")}
    assert sizes["f16"] == sizes["bf16"] < sizes["f32"]
    info = ondevice.models.model_info.read_info(ondevice.resolve(tmp_path / "bf16.gguf"))
    assert info.quant == "BF16"


def test_chat_template_and_special_tokens_travel(tiny_hf, tmp_path):
    from ondevice.models.gguf_file import read_gguf

    folder = tiny_hf("qwen2")
    meta = read_gguf(convert_hf_to_gguf(folder, tmp_path / "q.gguf").path).metadata
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert meta["tokenizer.chat_template"] == config["chat_template"]
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt-2"
    assert meta["tokenizer.ggml.eos_token_id"] == 2  # <|im_end|>
    assert meta["general.file_type"] == 1  # MOSTLY_F16


def test_unsupported_architecture_names_the_supported_ones(tiny_hf, tmp_path):
    folder = tmp_path / "other"
    shutil.copytree(tiny_hf("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "falcon"}))
    with pytest.raises(InvalidInput, match="'falcon'.*gemma3_text, llama, qwen2"):
        convert_hf_to_gguf(folder, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    # Loading an HF folder converts with llama.cpp's converter first, which dispatches on "architectures": one
    # neither converter takes is refused naming it.
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "tinyfoo",
                                                    "architectures": ["TinyFooForCausalLM"]}))
    with pytest.raises(InvalidInput, match="TinyFooForCausalLM"):
        ondevice.load(folder)


def test_bad_outtype_is_refused(tiny_hf, tmp_path):
    with pytest.raises(InvalidInput, match="f32, f16, bf16"):
        convert_hf_to_gguf(tiny_hf("llama"), tmp_path / "x.gguf", "q4")


def test_load_of_an_hf_folder_converts_once_and_caches(tiny_hf):
    from quantize.materialize import to_runnable

    folder = tiny_hf("llama")
    first = to_runnable(folder)
    mtime = first.stat().st_mtime_ns
    with ondevice.load(folder, n_ctx=64, threads=1) as model:
        assert model.ref.format == "gguf" and model.ref.path == first
        assert len(model.generate("class", max_tokens=4).tokens) == 4
    assert to_runnable(folder).stat().st_mtime_ns == mtime


def test_sentencepiece_tokenizer_tokenises_like_sentencepiece(tiny_hf, tmp_path):
    import io

    import sentencepiece as spm

    from tests.tiny_models import training_text

    folder = tmp_path / "spm"
    shutil.copytree(tiny_hf("llama"), folder)
    for name in ("tokenizer.json", "special_tokens_map.json"):
        (folder / name).unlink()
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(training_text()), model_writer=proto, vocab_size=512,
                                   model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   character_coverage=1.0, remove_extra_whitespaces=False, minloglevel=2)
    (folder / "tokenizer.model").write_bytes(proto.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    result = convert_hf_to_gguf(folder, tmp_path / "spm.gguf", "f32")
    assert result.tokenizer == "SentencePiece"
    with ondevice.load(result.path, n_ctx=64, threads=1) as model:
        for text in (TEXT, "  two spaces, ünïcode and 🙂"):
            assert model.tokenize(text, add_special=False) == sp.encode(text)
