"""The teacher top-k cache and the CPU-time budget: the top-k loss is the full KL when k is the vocabulary, a chunk
seen again costs no teacher pass, and a CPU budget stops training (and checkpoints) like a wall-time one."""

from __future__ import annotations

import contextlib

import torch

from quantize.distill import distill
from quantize.distill.train import TeacherCache, kd_loss, resolve_dtype, topk_kd_loss
from tests.quantize.distill.conftest import SMALL


def test_topk_loss_with_the_whole_vocabulary_is_the_full_kl():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 40), torch.randn(2, 5, 40) * 3
    lp, idx = torch.log_softmax(teacher / 2.0, dim=-1).topk(40, dim=-1)
    assert torch.allclose(topk_kd_loss(student, lp, idx, 2.0), kd_loss(student, teacher, 2.0), atol=1e-5)
    assert topk_kd_loss(teacher, lp[..., :8], idx[..., :8], 2.0).abs() < 1e-4  # student == teacher: no loss


def test_a_chunk_seen_again_costs_no_teacher_pass(tiny_teacher):
    import transformers

    teacher = transformers.AutoModelForCausalLM.from_pretrained(tiny_teacher).eval()
    calls = []
    teacher.register_forward_hook(lambda module, args, out: calls.append(1))
    chunks = torch.randint(3, 100, (4, 16))
    cache = TeacherCache(teacher, chunks, k=8, temperature=1.0, autocast=contextlib.nullcontext)
    lp, idx = cache.get([2, 0], "cpu")
    again_lp, again_idx = cache.get([0, 2, 0], "cpu")
    assert len(calls) == 1  # [0, 2, 0] were all cached by the first call
    assert torch.equal(again_lp[1], lp[0]) and torch.equal(again_idx[0], idx[1])
    with torch.no_grad():
        expected = torch.log_softmax(teacher(chunks[[2]]).logits, dim=-1).topk(8, dim=-1)
    assert torch.allclose(lp[0], expected.values[0], atol=1e-5) and torch.equal(idx[0].long(), expected.indices[0])


def test_cpu_budget_stops_a_cached_run_after_one_step(tiny_teacher, tiny_data, tmp_path):
    report = distill(tiny_teacher, tmp_path, keep_layers=4, steps=6, data=tiny_data, teacher_topk=16,
                     cpu_limit_s=1e-9, **SMALL)
    assert report.steps == 1 and report.stopped_early and report.cpu_s > 0
    assert report.config["dtype"] == resolve_dtype("auto", "cpu") and (tmp_path / "checkpoint.pt").exists()


def test_pool_spreads_the_chunks_evenly_over_the_data():
    from quantize.distill.train import pool

    assert pool(10, 0) == list(range(10)) and pool(10, 12) == list(range(10))
    assert pool(10, 4) == [0, 2, 5, 7]


def test_a_small_pool_seen_twice_costs_one_teacher_pass_per_chunk(tiny_teacher, tmp_path):
    import transformers

    from quantize.distill.prune import PruneChoice, pruned_student
    from quantize.distill.train import TrainConfig, train

    teacher = transformers.AutoModelForCausalLM.from_pretrained(tiny_teacher).eval()
    student = pruned_student(teacher, PruneChoice(kept=[0, 1, 2, 3], dropped=[4, 5], method="cosine"))
    calls = []  # hooked after the copy: the student must not inherit the counter
    teacher.register_forward_hook(lambda module, args, out: calls.append(1))
    chunks = torch.randint(3, 100, (12, 16))
    cfg = TrainConfig(steps=4, seq_len=16, batch=2, lr=1e-3, warmup=1, temperature=1.0, teacher_topk=8,
                      train_chunks=2, checkpoint_every=100, dtype="fp32")
    result = train(teacher, student, chunks, cfg, [0, 1, 2, 3], tmp_path)
    assert result.steps == 4 and result.tokens_seen == 4 * 2 * 16
    assert len(calls) == 1  # 4 steps x 2 chunks = 4 epochs of a 2-chunk pool: only the first step ran the teacher
