"""`hf:` names in the runtime (ondevice/models/hub.py): parsing, resolution through the store, never a download."""

from __future__ import annotations

import pytest

import ondevice
from ondevice.errors import InvalidInput, ModelNotFound
from ondevice.models.hub import HubName, _pick, parse


def test_names_parse():
    assert parse("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF") == HubName("Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    name = parse("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m")
    assert name.selector == "q4_k_m" and name.is_quant
    name = parse("hf:org/repo:model-f16.gguf")
    assert name.selector == "model-f16.gguf" and not name.is_quant
    for bad in ("hf:", "hf:noslash", "hf:a/b/c", "hf:../x", "hf:org/"):
        with pytest.raises(InvalidInput, match="hf:ORG/REPO"):
            parse(bad)


def test_quant_picks_the_file_and_the_default_prefers_q4_k_m():
    files = ["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "m-f16.gguf"]
    assert _pick(files, parse("hf:o/m"), "") == "m-Q4_K_M.gguf"
    assert _pick(files, parse("hf:o/m:Q8_0"), "") == "m-Q8_0.gguf"
    assert _pick(files, parse("hf:o/m:F16"), "") == "m-f16.gguf"
    with pytest.raises(ModelNotFound, match="no Q2_K file .* m-Q8_0.gguf"):
        _pick(files, parse("hf:o/m:Q2_K"), "in the repository")


def test_a_name_not_pulled_says_how_to_pull_it_and_downloads_nothing(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match=r"hf:org/model:Q4_K_M is not pulled: run `ondevice pull"):
        ondevice.resolve("hf:org/model:Q4_K_M")
    with pytest.raises(ModelNotFound):
        ondevice.load("hf:org/model")


def test_models_rm_refuses_what_is_not_the_stores(tmp_path):
    from ondevice.models.catalog import remove_model

    with pytest.raises(InvalidInput, match="ships inside a package"):
        remove_model("smollm2-135m")
    outside = tmp_path / "x.gguf"
    outside.write_bytes(b"GGUF")
    with pytest.raises(InvalidInput, match="not a model in the store"):
        remove_model(str(outside))
    assert outside.exists()
