"""Distillation on a tiny random teacher: the KD loss falls, the student is a loadable HF model with the asked
number of blocks, resume equals an uninterrupted run, and the same seed gives the same weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from quantize.distill import distill
from tests.quantize.distill.conftest import SMALL, TEACHER_LAYERS


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.fixture(scope="module")
def six_step_run(tiny_teacher, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-a")
    return out, distill(tiny_teacher, out, keep_layers=4, steps=6, data=tiny_data, seed=1, **SMALL)


def test_distillation_steps_reduce_the_kd_loss(tiny_teacher, tiny_data, tmp_path):
    import transformers

    from quantize.distill.data import split_texts, token_chunks
    from quantize.distill.prune import keep_blocks
    from quantize.distill.train import kd_loss

    report = distill(tiny_teacher, tmp_path, keep_layers=3, steps=10, data=tiny_data, seed=0, temperature=2.0,
                     ce_weight=0.0, **{**SMALL, "lr": 1e-3, "checkpoint_every": 100})  # KD alone
    assert len(report.losses) == 10
    teacher = transformers.AutoModelForCausalLM.from_pretrained(tiny_teacher).eval()
    pruned = keep_blocks(transformers.AutoModelForCausalLM.from_pretrained(tiny_teacher), report.kept_layers).eval()
    student = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_teacher)
    ids = token_chunks(tokenizer, split_texts(tiny_data).train, 32)[:8]
    with torch.no_grad():
        target = teacher(ids).logits
        before = kd_loss(pruned(ids).logits, target, 2.0).item()
        after = kd_loss(student(ids).logits, target, 2.0).item()
    assert after < 0.95 * before  # deterministic: 0.176 -> 0.159 here


def test_training_seq_len_changes_neither_the_pruning_nor_the_held_out_measurement(six_step_run, tiny_teacher,
                                                                                     tiny_data, tmp_path):
    _, report = six_step_run  # trained on 32-token sequences
    other = distill(tiny_teacher, tmp_path, keep_layers=4, steps=1, data=tiny_data, seed=1, **{**SMALL, "seq_len": 16})
    assert other.dropped_layers == report.dropped_layers
    for name, ppl in report.heldout.items():  # teacher and pruned PPL: same 256-token windows, same numbers
        assert (other.heldout[name].teacher, other.heldout[name].pruned) == (ppl.teacher, ppl.pruned)


def test_student_has_the_asked_layers_and_loads_with_transformers(six_step_run, tiny_teacher):
    import transformers

    out, report = six_step_run
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 4
    assert len(report.kept_layers) == 4 and len(report.dropped_layers) == TEACHER_LAYERS - 4
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert len(model.model.layers) == 4
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template  # carried over from the teacher
    ids = tokenizer("def f(x): return x", return_tensors="pt").input_ids
    assert torch.isfinite(model(ids).logits).all()
    text = "Hello, world! ünïcode 123"
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_report_json_records_choice_ppl_and_curve(six_step_run):
    out, report = six_step_run
    data = json.loads((out / "distill.json").read_text())
    assert data["kept_layers"] == report.kept_layers
    assert set(data["heldout"]) == {"tail", "stdlib_docs"}
    for ppl in data["heldout"].values():
        assert ppl["teacher"] > 0 and ppl["pruned"] > 0 and ppl["distilled"] > 0 and "recovered" in ppl
    assert data["steps"] == 6 and data["tokens_seen"] == 6 * 2 * 32
    assert (out / "loss.png").stat().st_size > 1000
    assert len(data["prune_rounds"]) == TEACHER_LAYERS - 4  # iterative: one round per dropped block


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(six_step_run, tiny_teacher, tiny_data, tmp_path):
    full, _ = six_step_run
    interrupted = distill(tiny_teacher, tmp_path, keep_layers=4, steps=6, data=tiny_data, seed=1, stop_after=3,
                          **SMALL)
    assert interrupted.steps == 3 and interrupted.stopped_early
    resumed = distill(tiny_teacher, tmp_path, keep_layers=4, steps=6, data=tiny_data, seed=1, resume=True, **SMALL)
    assert resumed.steps == 6 and resumed.tokens_seen == 6 * 2 * 32
    assert_same_weights(full, tmp_path)
    assert [loss for _, loss in resumed.losses] == [loss for _, loss in six_step_run[1].losses]


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(six_step_run, tiny_teacher, tiny_data,
                                                                     tmp_path):
    full, _ = six_step_run
    distill(tiny_teacher, tmp_path / "same", keep_layers=4, steps=6, data=tiny_data, seed=1, **SMALL)
    assert_same_weights(full, tmp_path / "same")
    distill(tiny_teacher, tmp_path / "other", keep_layers=4, steps=6, data=tiny_data, seed=2, **SMALL)
    assert not all(torch.equal(a, b) for a, b in zip(weights(full).values(), weights(tmp_path / "other").values()))


def test_ce_and_hidden_state_losses_train_too(tiny_teacher, tiny_data, tmp_path):
    report = distill(tiny_teacher, tmp_path, drop_layers=3, steps=3, data=tiny_data, ce_weight=0.5,
                     hidden_weight=1.0, prune_method="cosine", **SMALL)
    assert len(report.kept_layers) == 3 and report.steps == 3
    assert all(loss == loss for _, loss in report.losses)  # finite, not NaN


def test_student_loads_through_ondevice_load(six_step_run):
    import ondevice

    out, _ = six_step_run
    with ondevice.load(out, n_ctx=128) as model:  # HF folder -> GGUF (materialised) -> llama.cpp
        assert model.info.n_layers == 4
        assert model.detokenize(model.tokenize("for x in y", add_special=False)) == "for x in y"
        assert len(model.generate("def", max_tokens=4, temperature=0.0).tokens) >= 1
