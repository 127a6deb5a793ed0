"""Quality of a quantised model against its reference: perplexity and KL divergence on held-out English text.

Windows are cut the way `llama-perplexity` cuts them: the text is tokenised once (with BOS if the reference's
tokenizer adds one), split into consecutive `window`-token windows, the first token of each window replaced by BOS
(when the model uses one), and only the second half of each window is scored, so every scored token has at least
window/2 tokens of context. By default only the first DEFAULT_CHUNKS windows are scored (`max_chunks=None` scores
the whole text, as `llama-perplexity` without `--chunks`): 20 windows of 512 are 5,100 scored tokens, enough for
standard errors of a few percent of the mean KLD (every result carries them), and minutes instead of the hour the
whole 465k-character default text takes for a handful of variants on a laptop CPU. Works for any model `ondevice.load` opens with logits (GGUF, ONNX), as long as model and
reference share a vocabulary: both see the reference's token ids.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from ondevice.errors import InvalidInput
from quantize.kld import KLDAccumulator, QualityResult

DEFAULT_CHUNKS = 20  # windows scored by default; None = all of the text

def default_text() -> str:
    """Held-out English that ships with every CPython: the pydoc topic help (about 465k characters)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def parse_chunks(value: str | int | None) -> int | None:
    """`--chunks` as the user wrote it: a number of windows, or "all" (None: the whole text)."""
    if value is None or str(value).strip().lower() == "all":
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise InvalidInput(f"--chunks {value}: give a number of windows (at least 1) or all")
    return n


def _read_text(text: str | Path | None) -> str:
    if text is None:
        return default_text()
    if isinstance(text, Path):
        try:
            return text.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InvalidInput(f"cannot read text file {text}: {exc.strerror or exc}") from None
    return text


def _open(model, window: int, threads: int | None):
    """(Model, name, whether we opened it). Models given already loaded are used as they are."""
    from ondevice.model import load_or_use

    loaded, owned = load_or_use(model, n_ctx=window, threads=threads)
    return loaded, str(model) if owned else str(loaded.ref.path), owned


def _bos_id(model) -> int | None:
    """The token the tokenizer puts in front of text, if any (llama_vocab_get_add_bos + llama_vocab_bos)."""
    with_special, plain = model.tokenize("Hello", add_special=True), model.tokenize("Hello", add_special=False)
    return with_special[0] if len(with_special) == len(plain) + 1 else None


def windows(tokens: Sequence[int], window: int, bos: int | None, max_chunks: int | None = None) -> list[list[int]]:
    """Consecutive `window`-token windows of `tokens`, first token replaced by BOS when the model uses one."""
    n_chunks = len(tokens) // window
    if max_chunks is not None:
        n_chunks = min(n_chunks, max_chunks)
    out = []
    for i in range(n_chunks):
        chunk = [int(t) for t in tokens[i * window:(i + 1) * window]]
        if bos is not None:
            chunk[0] = bos
        out.append(chunk)
    return out


def evaluate_many(models: Sequence, ref, text: str | Path | None = None, window: int = 512,
                  max_chunks: int | None = DEFAULT_CHUNKS, threads: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[QualityResult]:
    """Evaluate several models against one reference; the reference's logits are computed once per window.

    models/ref: aliases, paths, or loaded `ondevice.Model`s. text: a string of text, a Path to a UTF-8 file, or
    None for the standard library's pydoc text. window: tokens per window. max_chunks: score the first N windows
    (None: the whole text). progress(done, total) is called after each window.
    """
    if window < 16 or window % 2:
        raise InvalidInput(f"the evaluation window must be an even number >= 16, got {window}")
    if max_chunks is not None and max_chunks < 1:
        raise InvalidInput(f"max_chunks must be at least 1, got {max_chunks}")
    body = _read_text(text)
    if not body.strip():
        raise InvalidInput("the evaluation text is empty")
    opened = []
    try:
        ref_model, ref_name, own = _open(ref, window, threads)
        if own:
            opened.append(ref_model)
        loaded = []
        for m in models:
            if m is ref or str(m) == str(ref):  # the reference against itself: reuse it, its logits once
                loaded.append((ref_model, ref_name))
                continue
            model, name, own = _open(m, window, threads)
            loaded.append((model, name))
            if own:
                opened.append(model)
        tokens = ref_model.tokenize(body, add_special=True)
        chunks = windows(tokens, window, _bos_id(ref_model), max_chunks)
        if not chunks:
            raise InvalidInput(f"the text is only {len(tokens)} tokens; one evaluation window needs {window}")
        accumulators = [KLDAccumulator() for _ in loaded]
        seconds = [0.0] * len(loaded)
        first = window // 2
        for i, chunk in enumerate(chunks):
            base = ref_model.logits(chunk)[first:window - 1]
            targets = chunk[first + 1:]
            for j, (model, name) in enumerate(loaded):
                t = time.perf_counter()
                logits = base if model is ref_model else model.logits(chunk)[first:window - 1]
                if logits.shape[-1] != base.shape[-1]:
                    raise InvalidInput(f"{name} has a vocabulary of {logits.shape[-1]} tokens but the reference "
                                       f"has {base.shape[-1]}: compare models of the same weights")
                accumulators[j].add(logits, base, targets)
                seconds[j] += time.perf_counter() - t
            if progress:
                progress(i + 1, len(chunks))
        return [acc.result(name, ref_name, window, seconds=seconds[j])
                for j, (acc, (_, name)) in enumerate(zip(accumulators, loaded))]
    finally:
        for model in opened:
            model.close()


def evaluate(model, ref, text: str | Path | None = None, window: int = 512, max_chunks: int | None = DEFAULT_CHUNKS,
             threads: int | None = None, progress: Callable[[int, int], None] | None = None) -> QualityResult:
    """Perplexity and KL divergence of `model` against `ref` (the f16/f32 of the same weights).

    Returns the statistics `llama-perplexity --kl-divergence` prints: PPL(Q) and PPL(base) with errors,
    mean ln(PPL(Q)/PPL(base)), mean KLD with error, its median / 99th / 99.9th percentile and maximum,
    same-top-token % and RMS of the change in the probability of the right token, each mean with its standard error.
    """
    return evaluate_many([model], ref, text, window, max_chunks, threads, progress)[0]
