"""Texts for distillation: training text, two held-out texts, teacher-written synthetic text, token chunks.

Held-out text 1 is the unseen tail (last 10%) of the training text; held-out text 2 is something the student never
trains on: the standard library's module docstrings, read with `ast` from the stdlib source (nothing is imported).
"""

from __future__ import annotations

import ast
import functools
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from ondevice.errors import InvalidInput

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".py", ".json", ".html", ".csv", ""}
TRAIN_FRACTION = 0.9

# Varied openings for `--synthetic`: the teacher continues each one, so it writes in its own distribution.
SYNTHETIC_PROMPTS = [
    "Explain how a Python dictionary works.", "Write a short story about a lighthouse keeper.",
    "What are the main causes of inflation?", "Give three tips for writing clear documentation.",
    "Describe the water cycle to a child.", "Write a Python function that reverses a linked list.",
    "Summarise the history of the printing press.", "What is the difference between TCP and UDP?",
    "List some healthy breakfast ideas.", "How do vaccines train the immune system?",
    "Write an email asking a colleague for feedback.", "Explain recursion with an example.",
    "What makes a good unit test?", "Describe a walk through a forest in autumn.",
    "How does a compiler turn source code into machine code?", "What is photosynthesis?",
]


@dataclass
class TextSplit:
    """Training texts and named held-out texts (name -> text) the report measures perplexity on."""

    train: list[str]
    heldout: dict[str, str] = field(default_factory=dict)
    source: str = "pydoc_data.topics"


def pydoc_text() -> str:
    """The standard library's pydoc topics (about 465k characters of English documentation), in a fixed order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


@functools.lru_cache(maxsize=4)
def stdlib_docstrings(max_chars: int = 200_000) -> str:
    """Module docstrings of the standard library's top-level `.py` files, parsed with `ast` (never imported)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    total = 0
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/__init__.py")):
        if path.name.startswith("test") or "test" in path.parent.name and path.parent != root:
            continue
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8", errors="replace")))
        except (SyntaxError, ValueError, OSError):
            continue
        if doc and len(doc) > 200:
            parts.append(doc)
            total += len(doc)
            if total >= max_chars:
                break
    return "\n\n".join(parts)


def read_texts(path: str | Path) -> list[str]:
    """A text file, or every text file under a folder (sorted); raise InvalidInput when there is no text."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInput(f"data path {path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                 if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    texts = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary or unreadable: not training text
        if text.strip():
            texts.append(text)
    if not texts:
        raise InvalidInput(f"data path {path} holds no readable text")
    return texts


def split_texts(data: str | Path | None = None) -> TextSplit:
    """Train on the first 90% of the data's characters; hold out the tail and the stdlib docstrings."""
    texts = read_texts(data) if data is not None else [pydoc_text()]
    joined = "\n\n".join(texts)
    cut = int(len(joined) * TRAIN_FRACTION)
    # cut at a paragraph boundary so neither side starts mid-sentence
    boundary = joined.rfind("\n\n", 0, cut)
    cut = boundary if boundary > len(joined) // 2 else cut
    return TextSplit(train=[joined[:cut]], heldout={"tail": joined[cut:], "stdlib_docs": stdlib_docstrings()},
                     source=str(data) if data is not None else "pydoc_data.topics")


def synthetic_texts(model, tokenizer, n: int, seed: int = 0, max_new_tokens: int = 256,
                    temperature: float = 0.8) -> list[str]:
    """N texts sampled from the teacher itself, one per prompt (cycling through varied prompts)."""
    import torch

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    texts = []
    try:
        for i in range(n):
            prompt = SYNTHETIC_PROMPTS[i % len(SYNTHETIC_PROMPTS)]
            if getattr(tokenizer, "chat_template", None):
                ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                    add_generation_prompt=True, return_tensors="pt")
            else:
                ids = tokenizer(prompt, return_tensors="pt").input_ids
            with torch.no_grad():
                out = model.generate(ids.to(device), do_sample=True, temperature=temperature, top_p=0.95,
                                     max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
                                     or tokenizer.eos_token_id)
            texts.append(prompt + "\n" + tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    finally:
        torch.random.set_rng_state(generator_state)
    return texts


def token_chunks(tokenizer, texts: list[str], seq_len: int, max_tokens: int | None = None):
    """Tokenise texts (joined by EOS) and cut them into a [n, seq_len] LongTensor; the ragged end is dropped."""
    import torch

    ids: list[int] = []
    sep = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for text in texts:
        if max_tokens is not None:  # no need to tokenise far past what is kept (a token is >= 1 character)
            text = text[: 8 * max_tokens]
        ids.extend(tokenizer(text, add_special_tokens=False).input_ids + sep)
        if max_tokens is not None and len(ids) >= max_tokens:
            break
    if max_tokens is not None:
        ids = ids[:max_tokens]
    n = len(ids) // seq_len
    if n == 0:
        raise InvalidInput(f"the data gives {len(ids)} tokens, fewer than one sequence of {seq_len}")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)
