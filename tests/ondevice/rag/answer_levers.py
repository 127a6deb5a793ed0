"""Measure the extractive answer's levers on the QA set (issue 29; the table is in docs/rag.md).

    PYTHONPATH=. python -m tests.ondevice.rag.answer_levers features OUT.json   # retrieval + per-candidate scores
    PYTHONPATH=. python -m tests.ondevice.rag.answer_levers choices OUT.json    # + the LLM's constrained choices
    PYTHONPATH=. python -m tests.ondevice.rag.answer_levers report OUT.json     # every variant on dev and held-out
    PYTHONPATH=. python -m tests.ondevice.rag.answer_levers answerability OUT.json  # the chunk reranker's AUC

`features` retrieves each question of qa.jsonl (dev) and qa_heldout.jsonl (held out) as `Index.ask` does (hybrid,
k=5, `is_relevant`), cuts the relevant chunks into candidates and scores every candidate: MiniLM cosine (with and
without the chunk's heading), shared rare words, and the SmolLM2 yes/no log-odds of `rerank.relevance` (the reranker's prompt).
`choices` asks the model to pick, constrained, among the top N of a pre-ranking. `report` scores every variant
offline from those numbers, calibrating a "not found" threshold on dev and applying it unchanged to held-out.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ANSWERS = Path(__file__).parent / "answers"
LLM_TOP = 6
SPLITS = {"dev": ANSWERS / "qa.jsonl", "heldout": ANSWERS / "qa_heldout.jsonl"}


def _qa():
    from ondevice.rag.evaluate import read_qa

    return [(split, item) for split, path in SPLITS.items() for item in read_qa(path)]


def features(out: Path, use_llm: bool = True, all_hits: bool = False) -> None:
    """all_hits: candidates from all top-5 chunks, not only those `is_relevant` passes."""
    from ondevice.model import load_or_use
    from ondevice.rag import Index
    from ondevice.rag.answer import ANSWER_CTX
    from ondevice.rag.evaluate import _matches, contains_fact
    from ondevice.rag.extractive import _lexical_scores, candidates
    from ondevice.rag.rerank import relevance

    rows = []
    with tempfile.TemporaryDirectory() as tmp, Index(Path(tmp) / "qa.sqlite") as index:
        index.add([ANSWERS / "notes"])
        llm = load_or_use("smollm2-135m", n_ctx=ANSWER_CTX, threads=2)[0] if use_llm else None
        for n, (split, item) in enumerate(_qa()):
            t0 = time.perf_counter()
            hits = index.search(item.question, 5)
            sources = hits if all_hits else index.relevant(item.question, hits)
            found = candidates(sources)
            texts = [c.text for c in found]
            headed = [f"{c.heading}\n{c.text}".strip() for c in found]
            vectors = np.asarray(index.embedder.embed([item.question] + texts + headed), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            cos = vectors[1:1 + len(found)] @ vectors[0]
            cos_h = vectors[1 + len(found):] @ vectors[0]
            lex = _lexical_scores(item.question, found) if found else []
            # The LLM scores only the top LLM_TOP of the cheap pre-ranking: one prompt each is too slow for all.
            top = set(int(i) for i in np.argsort(-_rrf(cos_h, lex), kind="stable")[:LLM_TOP]) if found else set()
            rows.append({
                "split": split, "question": item.question, "answer": item.answer, "source": item.source,
                "retrieved": item.source is not None and any(_matches(h.path, item.source) for h in hits),
                "n_relevant": len(sources),
                "candidates": [{
                    "text": c.text, "path": c.path, "line": c.start_line, "heading": c.heading,
                    "fact": bool(item.answer) and contains_fact(c.text, item.answer),
                    "right_file": item.source is not None and _matches(c.path, item.source),
                    "cos": float(cos[i]), "cos_h": float(cos_h[i]),
                    "lex": float(lex[i]), "llm": relevance(llm, item.question, c.text) if i in top and llm else None,
                } for i, c in enumerate(found)],
                "seconds": round(time.perf_counter() - t0, 3),
            })
            print(f"{n + 1} {split} {rows[-1]['seconds']:.1f}s {len(found)} cands: {item.question}", file=sys.stderr)
        if llm:
            llm.close()
    out.write_text(json.dumps(rows, indent=1))


def _rrf(*score_lists, k: int = 10) -> np.ndarray:
    fused = np.zeros(len(score_lists[0]))
    for scores in score_lists:
        for rank, i in enumerate(np.argsort(-np.asarray(scores), kind="stable"), start=1):
            fused[i] += 1.0 / (k + rank)
    return fused


PRERANKS = {
    "cos": lambda cs: np.array([c["cos"] for c in cs]),
    "cos_h": lambda cs: np.array([c["cos_h"] for c in cs]),
    "lex": lambda cs: np.array([c["lex"] for c in cs]),
    "rrf(cos,lex)": lambda cs: _rrf([c["cos"] for c in cs], [c["lex"] for c in cs]),
    "rrf(cos_h,lex)": lambda cs: _rrf([c["cos_h"] for c in cs], [c["lex"] for c in cs]),
    "llm": lambda cs: np.array([-1e9 if c["llm"] is None else c["llm"] for c in cs]),
    "rrf(llm,cos_h)": lambda cs: _rrf(PRERANKS["llm"](cs), [c["cos_h"] for c in cs]),
    "rrf(llm,cos_h,lex)": lambda cs: _rrf(PRERANKS["llm"](cs), [c["cos_h"] for c in cs], [c["lex"] for c in cs]),
}


def choices(path: Path, variants=(("rrf(cos,lex)", 8), ("rrf(cos_h,lex)", 3), ("rrf(cos_h,lex)", 5),
                                   ("llm", 3), ("rrf(llm,cos_h,lex)", 3))) -> None:
    """The model's constrained pick among the top N of each pre-ranking, added to the features file."""
    from ondevice.model import load_or_use
    from ondevice.rag.answer import ANSWER_CTX
    from ondevice.rag.extractive import choice_messages, choice_schema

    class Shown:  # choice_messages reads .text
        def __init__(self, text):
            self.text = text

    rows = json.loads(path.read_text())
    llm, _ = load_or_use("smollm2-135m", n_ctx=ANSWER_CTX, threads=2)
    for row in rows:
        cs = row["candidates"]
        row.setdefault("choices", {})
        for name, n in variants:
            key = f"{name}@{n}"
            if not cs or key in row["choices"]:
                continue
            order = [int(i) for i in np.argsort(-PRERANKS[name](cs), kind="stable")[:n]]
            parsed = llm.chat(choice_messages(row["question"], [Shown(cs[i]["text"]) for i in order]),
                              max_tokens=8, temperature=0.0, schema=choice_schema(len(order))).parsed
            row["choices"][key] = None if parsed in (None, "none") else order[int(parsed) - 1]
        print(row["question"], row["choices"], file=sys.stderr)
        path.write_text(json.dumps(rows, indent=1))  # as it goes: a partial run still reports
    llm.close()
    path.write_text(json.dumps(rows, indent=1))


def _neighbour(cs, i, score) -> int | None:
    """The better-scoring of the sentences just before and after candidate i in the same file, if any."""
    near = [j for j in (i - 1, i + 1) if 0 <= j < len(cs) and cs[j]["path"] == cs[i]["path"]
            and abs(cs[j]["line"] - cs[i]["line"]) <= 1]
    return max(near, key=lambda j: score(cs)[j]) if near else None


def _outcome(rows, pick, threshold=None, score=None, extra=None, tscore=None):
    rows = [r for r in rows if pick(r) is not False]  # False: not measured (a partial choices run)
    """(fact share, file share, not-found share, n answerable retrieved, n unanswerable). `extra`: "neighbour"
    (quote the better neighbour too) or "second" (quote the runner-up of `score` too)."""
    fact, cite, nf = [], [], []
    for row in rows:
        cs = row["candidates"]
        i = pick(row) if cs else None
        if i is not None and threshold is not None and (tscore or score)(cs)[i] < threshold:
            i = None
        quoted = [] if i is None else [i]
        if i is not None and extra == "neighbour":
            j = _neighbour(cs, i, score)
            quoted += [] if j is None else [j]
        if i is not None and extra == "second" and len(cs) > 1:
            quoted.append(next(int(j) for j in np.argsort(-score(cs), kind="stable") if j != i))
        if row["source"] is None:
            nf.append(not quoted)
        elif row["retrieved"]:
            fact.append(any(cs[j]["fact"] for j in quoted))
            cite.append(bool(quoted) and cs[quoted[0]]["right_file"])
    share = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return share(fact), share(cite), share(nf), len(fact), len(nf)


def _calibrate(rows, pick, score, extra=None, tscore=None):
    """The threshold on the picked candidate's `tscore` that maximises fact share + not-found share on `rows`
    (ties: the lowest such threshold, which refuses least)."""
    values = sorted({float(tscore(r["candidates"])[pick(r)]) for r in rows if r["candidates"]
                     and pick(r) is not None})
    best, best_t = -1.0, None
    for t in [None] + values:
        f, _, nf, _, _ = _outcome(rows, pick, t, score, extra, tscore)
        if f + nf > best + 1e-9:
            best, best_t = f + nf, t
    return best_t


def report(path: Path, extras=(None, "neighbour", "second")) -> None:
    rows = json.loads(path.read_text())
    dev = [r for r in rows if r["split"] == "dev"]
    held = [r for r in rows if r["split"] == "heldout"]
    for name, part in (("dev", dev), ("held-out", held)):
        ok = [r for r in part if r["source"] and r["retrieved"]]
        print(f"{name}: {len(part)} questions, {len(ok)} answerable with the source retrieved, "
              f"{sum(1 for r in part if r['source'] is None)} unanswerable "
              f"({sum(1 for r in part if r['source'] is None and not r['candidates'])} with nothing relevant); "
              f"fact among the candidates {np.mean([any(c['fact'] for c in r['candidates']) for r in ok]):.2f}")
    print(f"{'variant':56} {'dev fact':>8} {'file':>5} {'nf':>5} | {'held fact':>9} {'file':>5} {'nf':>5} | thr")
    variants = [(f"top of {name}", (lambda r, f=f: int(np.argmax(f(r["candidates"]))) if r["candidates"] else None), f)
                for name, f in PRERANKS.items()]
    keys = sorted({k for r in rows for k in r.get("choices", {})})
    for key in keys:
        variants.append((f"LLM choice among {key}", (lambda r, k=key: r.get("choices", {}).get(k, False)),
                         PRERANKS[key.split("@")[0]]))
    for name, pick, score in variants:
        for extra in extras:
            for calibrated in (None, "cos_h", "llm"):
                tscore = PRERANKS[calibrated] if calibrated else None
                t = _calibrate(dev, pick, score, extra, tscore) if calibrated else None
                if calibrated and t is None:
                    continue
                d, h = _outcome(dev, pick, t, score, extra, tscore), _outcome(held, pick, t, score, extra, tscore)
                label = name + (f" +{extra}" if extra else "") + (f" +{calibrated}>=t" if calibrated else "")
                print(f"{label:56} {d[0]:8.2f} {d[1]:5.2f} {d[2]:5.2f} | {h[0]:9.2f} {h[1]:5.2f} {h[2]:5.2f} | "
                      f"{'' if t is None else round(t, 3)}")


def answerability(out: Path) -> None:
    """Does the reranker (`rerank.relevance`) on the whole chunk holding the best sentence tell answerable from
    unanswerable questions? Prints its AUC per split."""
    from ondevice.model import load_or_use
    from ondevice.rag import Index
    from ondevice.rag.answer import ANSWER_CTX
    from ondevice.rag.extractive import candidates, rank_candidates
    from ondevice.rag.rerank import relevance

    rows = []
    with tempfile.TemporaryDirectory() as tmp, Index(Path(tmp) / "qa.sqlite") as index:
        index.add([ANSWERS / "notes"])
        llm = load_or_use("smollm2-135m", n_ctx=ANSWER_CTX, threads=2)[0]
        for split, item in _qa():
            hits = index.search(item.question, 5)
            [(best, similarity)] = rank_candidates(item.question, candidates(hits), index.embedder, limit=1)
            rows.append({"split": split, "answerable": item.answerable, "similarity": similarity,
                         "chunk_relevance": relevance(llm, item.question, best.source.text)})
        llm.close()
    out.write_text(json.dumps(rows, indent=1))
    for split in SPLITS:
        pos = [r["chunk_relevance"] for r in rows if r["split"] == split and r["answerable"]]
        neg = [r["chunk_relevance"] for r in rows if r["split"] == split and not r["answerable"]]
        auc = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
        print(f"{split}: chunk reranker AUC {auc:.2f} (answerable median {np.median(pos):.2f}, "
              f"unanswerable {np.median(neg):.2f})")


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "choices" and len(sys.argv) > 3:  # e.g. cos_h@3 rrf(cos,lex)@8
        choices(target, [(v.split("@")[0], int(v.split("@")[1])) for v in sys.argv[3:]])
    elif command == "features":
        features(target, use_llm="--no-llm" not in sys.argv, all_hits="--all-hits" in sys.argv)
    else:
        {"choices": choices, "report": report, "answerability": answerability}[command](target)
