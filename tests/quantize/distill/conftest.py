"""Fixtures for the distillation tests: a tiny random-weight 6-block llama teacher and a small training text."""

from __future__ import annotations

import pytest

TEACHER_LAYERS = 6


def make_tiny_teacher(folder, n_layers: int = TEACHER_LAYERS, seed: int = 0):
    """Like tests.tiny_models.make_tiny_hf("llama"), with more blocks so there is something to prune."""
    import torch
    import transformers

    from tests.tiny_models import build_tokenizer, tiny_config

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = tiny_config("llama")
    config.num_hidden_layers = n_layers
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # as make_tiny_hf: sharper logits than a plain random init
        for name, param in model.named_parameters():
            if param.dim() == 2 and "embed" not in name:
                param.mul_(4.0)
    model.save_pretrained(folder, safe_serialization=True)
    build_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    return make_tiny_teacher(tmp_path_factory.mktemp("distill-teacher"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A folder with a few KB of pydoc text: quick to tokenise, enough for a handful of 32-token batches."""
    from pydoc_data.topics import topics

    folder = tmp_path_factory.mktemp("distill-data")
    names = sorted(topics)[:6]
    for name in names:
        (folder / f"{name}.txt").write_text(topics[name][:3000])
    return folder


# Small settings shared by the tests: each run takes a few seconds on 2 cores.
SMALL = dict(seq_len=32, batch=2, eval_tokens=256, checkpoint_every=2, lr=3e-3, warmup=2)
