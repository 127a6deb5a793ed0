"""Measure the answerability rules (`ondevice.rag.answerable`) one at a time on the QA set (issue 29).

    PYTHONPATH=. python -m tests.ondevice.rag.answerability_levers [qa qa_heldout]

Retrieves each question as `Index.ask` does in the extractive mode (hybrid, k=5, every retrieved chunk), ranks the
candidate sentences, and prints fact / right file / not found per split for every variant: which rules, where a
name must appear, whether the rules read the best sentence or the quote with its neighbour, and whether a failing
best sentence gives "not found" or the next passing candidate above the similarity threshold answers instead.
No LLM runs. The blind split (qa_blind.jsonl) is not measured here: it is run once, at the end, by `rag eval`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ANSWERS = Path(__file__).parent / "answers"


def collect(splits):
    from ondevice.rag import Index
    from ondevice.rag.evaluate import read_qa
    from ondevice.rag.extractive import _read_lines, candidates, joined, neighbour, rank_candidates

    rows = []
    with tempfile.TemporaryDirectory() as tmp, Index(Path(tmp) / "qa.sqlite") as index:
        index.add([ANSWERS / "notes"])
        for split in splits:
            for item in read_qa(ANSWERS / f"{split}.jsonl"):
                hits = index.search(item.question, 5, "hybrid")
                cache: dict = {}
                found = candidates(hits, cache)
                ranked = rank_candidates(item.question, found, index.embedder, limit=len(found))
                scores = {id(c): s for c, s in ranked}
                options = []
                for c, s in ranked:
                    nb = neighbour(c, found, [scores[id(x)] for x in found])
                    quote = joined(c, nb, cache) if nb is not None else c
                    lines = _read_lines(c.path, cache) or []
                    options.append({"sentence": c.text, "quote": quote.text, "heading": c.heading, "path": c.path,
                                    "file": "\n".join(lines), "sim": s})
                rows.append({"split": split, "item": item, "options": options})
    return rows


def outcome(rows, split, rule_fn, fallback: bool, threshold=0.39, depth=None):
    from ondevice.rag.evaluate import _matches, contains_fact

    fact, cite, nf = [], [], []
    for row in rows:
        if row["split"] != split:
            continue
        item, options = row["item"], row["options"]
        chosen = None
        for n, o in enumerate(options):
            if o["sim"] < threshold or (depth is not None and n >= depth):
                break
            if rule_fn(item.question, o):
                chosen = o
                break
            if not fallback:
                break
        if item.answerable:
            fact.append(chosen is not None and contains_fact(chosen["quote"], item.answer))
            cite.append(chosen is not None and _matches(chosen["path"], item.source))
        else:
            nf.append(chosen is None)
    return sum(fact), len(fact), sum(cite), sum(nf), len(nf)


def variants():
    from ondevice.rag.answerable import check, question_focus

    def rule(rules, scope="possessive-file", text="quote"):
        return lambda q, o: check(question_focus(q), o[text], o["heading"], o["file"], rules, scope).passes

    yield "threshold only (before)", (lambda q, o: True)
    for text in ("quote", "sentence"):
        for scope in ("quote", "possessive-file", "file"):
            yield f"names, scope {scope}, reads {text}", rule(("names",), scope, text)
        yield f"answer type, reads {text}", rule(("answer_type",), text=text)
        yield f"names (possessive-file) + answer type, reads {text}", rule(("names", "answer_type"), text=text)


def main(splits):
    rows = collect(splits)
    print(f"{'variant':58} {'fallback':8} " + " | ".join(f"{s:>22}" for s in splits))
    for name, fn in variants():
        for fallback in (False, True):
            cells = []
            for split in splits:
                f, n, c, u, m = outcome(rows, split, fn, fallback)
                cells.append(f"{f / n:.2f} {c / n:.2f} {u / m:.2f} ({u}/{m})")
            print(f"{name:58} {str(fallback):8} " + " | ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main(sys.argv[1:] or ["qa", "qa_heldout"])
