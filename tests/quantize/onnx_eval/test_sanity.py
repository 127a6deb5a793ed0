"""A variant that is broken on the machine that made it is detected, marked, renamed and never recommended.

The broken variant is real: SmolLM2's f16 GGUF with the weights of its FFN down-projections overwritten by noise of
the wrong scale, loaded and run by llama.cpp like any other file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ondevice.errors import InvalidInput


@pytest.fixture(scope="module")
def corrupted_gguf(smollm2_f16_gguf, tmp_path_factory) -> Path:
    from gguf import GGUFReader

    path = tmp_path_factory.mktemp("broken") / "smollm2-135m-Q8_0.gguf"
    shutil.copyfile(smollm2_f16_gguf, path)
    reader = GGUFReader(path, "r+")
    rng = np.random.default_rng(0)
    hit = 0
    for tensor in reader.tensors:
        if tensor.name.endswith("ffn_down.weight"):
            tensor.data[...] = rng.normal(0, 1.0, tensor.data.shape).astype(tensor.data.dtype)  # weights are ~0.02
            hit += 1
    assert hit == 30
    del reader
    return path


@pytest.fixture(scope="module")
def reference(smollm2_f16_gguf):
    import ondevice

    with ondevice.load(smollm2_f16_gguf, n_ctx=512) as model:
        yield model


def test_corrupted_weights_are_detected(corrupted_gguf, reference):
    from quantize.sanity import check_model

    verdict = check_model(corrupted_gguf, reference)
    assert not verdict.ok
    assert verdict.kld_mean > 2.0 and "KLD" in verdict.reason, verdict


def test_sound_variant_passes(smollm2_report, reference):
    from quantize.sanity import check_model

    q4 = next(v for v in smollm2_report.variants if v.qtype == "Q4_K_M")
    assert q4.status == "ok" and q4.sanity["ok"]  # the pipeline checked it
    verdict = check_model(q4.path, reference)
    assert verdict.ok and verdict.kld_mean < 0.3 and verdict.same_top_pct > 70, verdict


def test_pipeline_marks_renames_and_excludes_broken(corrupted_gguf, smollm2_report, tmp_path):
    """What quantize() does after writing the variants, on a report holding one broken variant."""
    import dataclasses

    from quantize import recommend
    from quantize.pipeline import Variant, _check_all
    from quantize.report import write_report

    broken_path = tmp_path / corrupted_gguf.name
    shutil.copyfile(corrupted_gguf, broken_path)
    broken = Variant("smollm2-135m-Q8_0-corrupt", "gguf", "Q8_0", str(broken_path), 1, 0.01)  # smallest of all
    _check_all(smollm2_report.reference, [broken], threads=None, log=lambda m: None)
    assert broken.status == "broken" and not broken_path.exists()
    assert broken.path.endswith(".broken") and Path(broken.path).exists()

    report = dataclasses.replace(smollm2_report, variants=[*smollm2_report.variants, broken], out_dir=str(tmp_path))
    files = write_report(report, tmp_path)
    data = json.loads(Path(files["json"]).read_text())
    assert [v["status"] for v in data["variants"]] == ["ok", "ok", "broken"]
    assert "**broken**" in Path(files["markdown"]).read_text()
    assert recommend(report, ram_gb=8).variant.name != broken.name
    with pytest.raises(InvalidInput):
        recommend([broken], ram_gb=8)
