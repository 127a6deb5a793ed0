"""libllama quantisation of our f16 SmolLM2: declared types, size ordering, refusals, no half files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from ondevice.errors import InvalidInput, OnDeviceError
from ondevice.models.gguf_file import file_type_name, read_gguf
from quantize.gguf_quantize import GGUF_TYPES, quantize_gguf
from tests.signals import interruptible


@pytest.fixture(scope="module")
def quantised(smollm2_f16_gguf, tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantised")
    return {q: quantize_gguf(smollm2_f16_gguf, folder / f"smollm2-{q}.gguf", q, progress=False)
            for q in ("Q8_0", "Q4_K_M")}


def test_quantised_files_declare_their_type_and_shrink_in_order(quantised, smollm2_f16_gguf):
    for qtype, result in quantised.items():
        assert file_type_name(read_gguf(result.path)) == qtype
        assert result.path.stat().st_size == result.size_bytes
    f16 = smollm2_f16_gguf.stat().st_size
    assert f16 > quantised["Q8_0"].size_bytes > quantised["Q4_K_M"].size_bytes
    assert 16 > quantised["Q8_0"].bits_per_weight > quantised["Q4_K_M"].bits_per_weight > 4


def test_quantised_q8_0_runs_and_tokenises_like_the_source(quantised, smollm2):
    import ondevice

    with ondevice.load(quantised["Q8_0"].path, n_ctx=256, threads=1) as model:
        assert model.tokenize("Paris, France", add_special=False) == smollm2.tokenize("Paris, France", False)
        assert len(model.generate("The capital of France is", max_tokens=3).tokens) == 3


@pytest.mark.parametrize("qtype", ["IQ2_XXS", "iq1_s", "Q2_K_S"])
def test_imatrix_types_are_refused_with_the_reason(qtype, smollm2_f16_gguf, tmp_path):
    with pytest.raises(InvalidInput, match="importance matrix.*Accepted types: Q2_K, Q3_K_S"):
        quantize_gguf(smollm2_f16_gguf, tmp_path / "x.gguf", qtype, progress=False)
    assert not list(tmp_path.iterdir())


def test_unknown_type_lists_the_accepted_ones(smollm2_f16_gguf, tmp_path):
    with pytest.raises(InvalidInput, match="accepted types: " + ", ".join(GGUF_TYPES)):
        quantize_gguf(smollm2_f16_gguf, tmp_path / "x.gguf", "Q7_K", progress=False)


def test_failed_quantisation_leaves_no_file(tmp_path):
    # A well-formed GGUF that libllama cannot quantise: an architecture it does not know.
    src = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(src, "no-such-arch")
    writer.add_tensor("blk.0.ffn_up.weight", np.ones((64, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    dst = tmp_path / "out.gguf"
    with pytest.raises(OnDeviceError, match="could not quantise"):
        quantize_gguf(src, dst, "Q8_0", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.gguf"]


def test_interrupted_quantisation_leaves_no_file(smollm2_f16_gguf, tmp_path):
    dst = tmp_path / "out.gguf"
    code = ("import sys; from quantize.gguf_quantize import quantize_gguf; "
            "quantize_gguf(sys.argv[1], sys.argv[2], 'Q4_K_M', threads=1, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(smollm2_f16_gguf), str(dst)],
                            cwd=Path(__file__).parents[2], stderr=subprocess.PIPE, preexec_fn=interruptible)
    partial = dst.with_name(dst.name + ".partial")
    deadline = time.monotonic() + 120
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert partial.exists(), "quantisation never started writing"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    assert not dst.exists() and not partial.exists()


def test_source_must_be_a_gguf(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all, just text" * 4)
    with pytest.raises(OnDeviceError, match="not a GGUF"):
        quantize_gguf(bad, tmp_path / "x.gguf", "Q8_0", progress=False)


def test_a_failed_dequantisation_leaves_no_folder(smollm2_path, tmp_path, monkeypatch):
    """The GGUF -> HF folder step stages its output (ondevice.files.atomic_dir): a failure publishes nothing."""
    import transformers

    from ondevice.errors import InvalidInput
    from quantize.hf_source import _dequantize

    def refuse(*args, **kwargs):
        raise ValueError("GGUF architecture not supported")  # what transformers raises for one it cannot read

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    with pytest.raises(InvalidInput, match="cannot de-quantise"):
        _dequantize(Path(smollm2_path), tmp_path / "hf" / "key")
    assert list((tmp_path / "hf").iterdir()) == []
