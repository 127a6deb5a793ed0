"""Student initialisation by layer pruning: keep embeddings, final norm, head and the least redundant blocks.

A block's redundancy is how little it changes its input: 1 - cosine(block input, block output), averaged over the
tokens of calibration text (small = redundant). `iterative` drops the most redundant block, re-measures the pruned
model and repeats, because removing one block changes what the others see. `iterative-ppl` also scores the few most
redundant candidates by the pruned model's actual loss on the calibration text and drops the one that hurts least.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

METHODS = ("cosine", "iterative", "iterative-ppl")


@dataclass
class PruneChoice:
    """Which teacher blocks the student keeps (teacher indices, in order) and why."""

    kept: list[int]
    dropped: list[int]
    method: str
    # per round: {"scores": {teacher block index: 1 - cosine}, "dropped": index, "calib_loss": loss or None}
    rounds: list[dict] = field(default_factory=list)


def _layers(model):
    return model.model.layers


def block_scores(model, calib, batch: int = 4) -> list[float]:
    """1 - mean cosine(input, output) of each decoder block on calibration chunks [n, seq_len]."""
    import torch

    layers = _layers(model)
    sums = [0.0] * len(layers)
    count = 0
    handles = []

    def hook(i):
        def fn(_module, args, kwargs, output):
            x = args[0] if args else kwargs["hidden_states"]
            y = output[0] if isinstance(output, tuple) else output
            sums[i] += torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1).sum().item()
        return fn

    for i, layer in enumerate(layers):
        handles.append(layer.register_forward_hook(hook(i), with_kwargs=True))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, len(calib), batch):
                ids = calib[start:start + batch].to(device)
                model.model(input_ids=ids, use_cache=False)
                count += ids.numel()
    finally:
        for h in handles:
            h.remove()
    return [1.0 - s / count for s in sums]


def mean_loss(model, chunks, batch: int = 4) -> float:
    """Mean next-token cross-entropy (nats) of `model` on token chunks; exp() of it is the perplexity."""
    import torch

    device = next(model.parameters()).device
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(chunks), batch):
            ids = chunks[start:start + batch].to(device)
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                     reduction="sum")
            total += loss.item()
            n += ids[:, 1:].numel()
    return total / n


def _renumber(layers) -> None:
    """Give blocks their position as layer index: the KV cache is indexed by it."""
    for new_index, layer in enumerate(layers):
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_index
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_index


def keep_blocks(model, keep: list[int]):
    """Cut `model` (in place) down to the blocks at indices `keep`, renumbering them; return the model."""
    import torch

    layers = _layers(model)
    kept = [layers[i] for i in keep]
    _renumber(kept)
    model.model.layers = torch.nn.ModuleList(kept)
    config = model.config
    if getattr(config, "layer_types", None):  # per-layer attention kinds (sliding/full) follow their blocks
        config.layer_types = [config.layer_types[i] for i in keep]
    config.num_hidden_layers = len(keep)
    return model


def choose_blocks(model, calib, n_keep: int, method: str = "iterative", candidates: int = 3) -> PruneChoice:
    """Decide which `n_keep` blocks of `model` to keep, measuring redundancy on `calib`; `model` is not changed."""
    if method not in METHODS:
        raise ValueError(f"unknown prune method {method!r}; one of {METHODS}")
    n_layers = len(_layers(model))
    alive = list(range(n_layers))
    rounds: list[dict] = []
    if method == "cosine":
        scores = block_scores(model, calib)
        order = sorted(alive, key=lambda i: scores[i])
        dropped = sorted(order[: n_layers - n_keep])
        rounds.append({"scores": dict(enumerate(scores)), "dropped": dropped, "calib_loss": None})
        return PruneChoice(kept=[i for i in alive if i not in dropped], dropped=dropped, method=method,
                           rounds=rounds)
    work = copy.deepcopy(model)
    while len(alive) > n_keep:
        scores = block_scores(work, calib)
        by_score = sorted(range(len(alive)), key=lambda j: scores[j])
        pick, pick_loss = by_score[0], None
        if method == "iterative-ppl":
            best = None
            for j in by_score[:candidates]:
                loss = _loss_without(work, j, calib)
                if best is None or loss < best:
                    best, pick = loss, j
            pick_loss = best
        rounds.append({"scores": {alive[j]: scores[j] for j in range(len(alive))}, "dropped": alive[pick],
                       "calib_loss": pick_loss})
        keep_blocks(work, [k for k in range(len(alive)) if k != pick])
        del alive[pick]
    dropped = sorted(set(range(n_layers)) - set(alive))
    return PruneChoice(kept=alive, dropped=dropped, method=method, rounds=rounds)


def _loss_without(model, j: int, calib) -> float:
    """Calibration loss of `model` with block j removed; `model` is restored afterwards."""
    layers, config = _layers(model), model.config
    saved = (config.num_hidden_layers, getattr(config, "layer_types", None))
    keep_blocks(model, [k for k in range(len(layers)) if k != j])
    try:
        return mean_loss(model, calib)
    finally:
        model.model.layers = layers
        config.num_hidden_layers, types = saved
        if types is not None:
            config.layer_types = types
        _renumber(layers)


def pruned_student(teacher, choice: PruneChoice):
    """A deep copy of `teacher` with only the chosen blocks."""
    student = copy.deepcopy(teacher)
    return keep_blocks(student, choice.kept)
