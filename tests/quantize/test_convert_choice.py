"""Which converter runs (quantize/convert.py): llama.cpp's own convert_hf_to_gguf.py first; ours where it adds
something measured. Errors are one line and leave nothing under the output name."""

from __future__ import annotations

import json
import shutil

import pytest

from ondevice.errors import InvalidInput, OnDeviceError
from quantize.convert import convert_hf
from quantize.llama_convert import convert_with_llama_cpp, recognises_bpe, supported_architectures


def test_llama_cpp_refuses_a_bpe_it_does_not_know_and_ours_converts_it(tiny_hf, llama_converter, tmp_path):
    """The tiny llama's tokenizer was trained here: llama.cpp's script refuses its pre-tokenizer; ours converts it
    with transformers' logits (so `auto` picks ours, decided up front with llama.cpp's own hash test)."""
    from tests.quantize.test_hf_to_gguf_parity import _hf_logits, _hf_tokens

    import ondevice

    folder = tiny_hf("llama")
    assert recognises_bpe(folder) is False
    with pytest.raises(OnDeviceError, match="BPE pre-tokenizer was not recognized") as caught:
        convert_with_llama_cpp(folder, tmp_path / "lc.gguf")
    assert "\n" not in str(caught.value)
    assert not list(tmp_path.iterdir())  # no partial file, no final name
    done = convert_hf(folder, tmp_path / "auto.gguf", "f32")
    assert done.converter == "ondevice" and "pre-tokenizer" in done.reason
    tokens = _hf_tokens(folder)
    with ondevice.load(done.path, n_ctx=128, threads=1) as model:
        got = model.logits(tokens)
    assert (got.argmax(-1) == _hf_logits(folder, tokens).argmax(-1)).all()


def test_unsupported_architecture_names_itself_and_the_supported_ones(tiny_hf, llama_converter, tmp_path):
    folder = tmp_path / "foo"
    shutil.copytree(tiny_hf("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["FooForCausalLM"]}))
    with pytest.raises(InvalidInput, match=r"'FooForCausalLM' is not supported .*LlamaForCausalLM.*Qwen3ForCausalLM"):
        convert_with_llama_cpp(folder, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "x.gguf.partial").exists()
    assert len(supported_architectures()) > 100


def test_onnx_export_refuses_an_architecture_the_builder_lacks(tiny_hf, tmp_path):
    from quantize.onnx_export import check_onnx_supported, export_onnx_llm

    folder = tmp_path / "moe"
    shutil.copytree(tiny_hf("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["Qwen3MoeForCausalLM"]}))
    assert check_onnx_supported(tiny_hf("llama")) == "LlamaForCausalLM"
    with pytest.raises(InvalidInput, match=r"'Qwen3MoeForCausalLM' is not supported by onnxruntime-genai.*"
                                           r"LlamaForCausalLM"):
        export_onnx_llm(folder, tmp_path / "out", quant="fp32")
    assert not (tmp_path / "out").exists()


def test_bad_outtype(tiny_hf, tmp_path):
    with pytest.raises(InvalidInput, match="f32, f16, bf16, q8_0"):
        convert_with_llama_cpp(tiny_hf("llama"), tmp_path / "x.gguf", "q4")


def test_llama_cpp_conversion_reports_progress_per_tensor(llama_converter, tmp_path):
    """A gemma2 tiny model (SentencePiece: no pre-tokenizer hash involved) through llama.cpp's script: one progress
    report per tensor, the last one complete, the file only under its final name."""
    from tests.tiny_models import make_family_hf

    folder = make_family_hf("gemma2", tmp_path / "gemma2")
    seen = []
    done = convert_hf(folder, tmp_path / "g.gguf", "f16", progress=lambda d, n, total: seen.append((n, total)))
    assert done.converter == "llama.cpp" and done.architecture == "gemma2"
    assert seen and seen[-1][0] == seen[-1][1] and [n for n, _ in seen] == list(range(1, len(seen) + 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.gguf", "gemma2"]
