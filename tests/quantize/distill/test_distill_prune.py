"""Block choice: a block that does nothing is the first one dropped, whichever method measures redundancy."""

from __future__ import annotations

import pytest
import torch
import transformers

from quantize.distill.prune import block_scores, choose_blocks, keep_blocks, pruned_student


@pytest.fixture(scope="module")
def teacher_with_a_dead_block(tiny_teacher):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_teacher).eval()
    with torch.no_grad():  # block 2 adds nothing to the residual stream: output == input
        model.model.layers[2].self_attn.o_proj.weight.zero_()
        model.model.layers[2].mlp.down_proj.weight.zero_()
    calib = torch.randint(3, 500, (2, 32), generator=torch.Generator().manual_seed(0))
    return model, calib


def test_a_block_that_does_nothing_scores_zero_redundancy_distance(teacher_with_a_dead_block):
    model, calib = teacher_with_a_dead_block
    scores = block_scores(model, calib)
    assert scores[2] == pytest.approx(0.0, abs=1e-5)
    assert min(s for i, s in enumerate(scores) if i != 2) > 1e-3


@pytest.mark.parametrize("method", ["cosine", "iterative", "iterative-ppl"])
def test_the_dead_block_is_dropped_first(teacher_with_a_dead_block, method):
    model, calib = teacher_with_a_dead_block
    choice = choose_blocks(model, calib, n_keep=4, method=method)
    assert 2 in choice.dropped and len(choice.kept) == 4
    assert sorted(choice.kept + choice.dropped) == list(range(6))
    if method == "iterative":  # (iterative-ppl may prefer a block whose removal lowers this random model's loss)
        assert choice.rounds[0]["dropped"] == 2
    assert len(model.model.layers) == 6  # choosing does not touch the teacher


def test_dropping_a_dead_block_does_not_change_the_logits(teacher_with_a_dead_block):
    model, calib = teacher_with_a_dead_block
    choice = choose_blocks(model, calib, n_keep=5, method="cosine")
    student = pruned_student(model, choice)
    assert student.config.num_hidden_layers == 5
    with torch.no_grad():
        torch.testing.assert_close(student(calib).logits, model(calib).logits, atol=1e-4, rtol=1e-4)
        # and the pruned copy also decodes with a KV cache (layer indices renumbered)
        out = student.generate(calib[:1, :8], max_new_tokens=4, do_sample=False)
    assert out.shape[1] == 12


def test_keep_blocks_renumbers_layer_indices(tiny_teacher):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_teacher)
    keep_blocks(model, [0, 3, 5])
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2]
