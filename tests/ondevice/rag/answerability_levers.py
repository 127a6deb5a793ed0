"""Measure the answerability rules (`ondevice.rag.answerable`) one at a time on the QA set (issue 29).

    PYTHONPATH=. python -m tests.ondevice.rag.answerability_levers [qa qa_heldout] [--likelihood
        [--likelihood-model gemma3-270m]]

Retrieves each question as `Index.ask` does in the extractive mode (hybrid, k=5, every retrieved chunk), ranks the
candidate sentences, and prints fact / right file / not found per split for every variant: which rules, where a
name must appear, whether the rules read the best sentence or the quote with its neighbour, and whether a failing
best sentence gives "not found" or the next passing candidate above the similarity threshold answers instead.
No LLM runs, except with --likelihood: SmolLM2's query likelihood (`ondevice.rag.rerank.relevance`) of each of the
top 6 sentences (under its title), then rows choosing the sentence by cosine + weight x likelihood, and how well the
likelihood's gain over an empty passage tells answerable from unanswerable questions on the sentence the rules pass
(measured after the fourth retrieval pass; not kept). The blind split (qa_blind.jsonl) was first measured by
`rag eval`, once, at the end of the rules' work; later rows name it when they include it.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ANSWERS = Path(__file__).parent / "answers"


# --- measured and not kept: coverage of the question's own words, softly, by the quote and its title ------------
# Words that say what kind of answer is wanted, or are too general to be the question's focus.
_GENERIC = set("""
what which who whom whose when where why how much many long often far old high time times date day days name
names called number numbers code get got go goes going take took need needs use used make made put keep kept
thing things one ones kind sort type way please current currently last next new
""".split())


def focus_words(focus) -> list[str]:
    """The question's content words that are not names (the names rule has those) nor generic."""
    from ondevice.rag.retrieve import content_terms

    from ondevice.rag.answerable import _words

    named = {w.lower() for name in focus.names for w in _words(name)}
    return sorted(w for w in content_terms(focus.question) if w not in _GENERIC and w not in named
                  and not any(ch.isdigit() for ch in w))


def _same_stem(a: str, b: str) -> bool:
    n = min(len(a), len(b))
    return a == b or (n >= 4 and a[:max(4, n - 2)] == b[:max(4, n - 2)] and abs(len(a) - len(b)) <= 3)


class WordSimilarity:
    """Cosine of single words under the index's own embedder, cached (a question and a quote are a few dozen)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.cache: dict[str, object] = {}

    def vectors(self, words):
        import numpy as np

        new = [w for w in dict.fromkeys(words) if w not in self.cache]
        if new:
            vs = np.asarray(self.embedder.embed(new), dtype=np.float32)
            vs /= np.clip(np.linalg.norm(vs, axis=1, keepdims=True), 1e-12, None)
            self.cache.update(zip(new, vs))
        return [self.cache[w] for w in words]

    def best(self, word: str, others) -> float:
        import numpy as np

        others = list(others)
        if not others:
            return 0.0
        q = self.vectors([word])[0]
        return float(max(np.dot(q, v) for v in self.vectors(others)))


def uncovered(focus, text: str, similarity: WordSimilarity, threshold: float) -> list[str]:
    """The focus words of the question with no word of `text` of the same stem or a word cosine >= threshold."""
    from ondevice.rag.retrieve import content_terms

    words = sorted(content_terms(text))
    out = []
    for word in focus_words(focus):
        if any(_same_stem(word, w) for w in words):
            continue
        if similarity.best(word, words) >= threshold:
            continue
        out.append(word)
    return out



# The focus noun alone (a guess from word order) must be covered: measured and not kept either.
AUX = set("is are was were does do did will would can could should must has have had shall may might".split())
DET = set("the my our a an his her their your this that these those".split())
PREP = set("of for on with at in to from by about after before during under per".split())
GENERIC = set("name number code id password passphrase pin combination reference kind sort type variety make time date day month year "
              "much many long often far old high thing one".split())
def head(q):
    """The question's focus noun, guessed from word order (no tagger ships here); None when unsure."""
    t = [w for w in re.findall(r"[a-z0-9][a-z0-9'’-]*", q.lower())]
    t = [re.sub(r"['’]s$", "", w) for w in t]
    if not t or t[0] not in ("what", "which", "when", "where", "who", "how"):
        return None
    i = 1
    if t[0] in ("what", "which") and i < len(t) and t[i] not in AUX and t[i] not in DET:
        # which/what X ... : the words up to the aux
        j = i
        while j < len(t) and t[j] not in AUX and t[j] not in PREP: j += 1
        np_ = t[i:j]
        if np_ and np_[-1] not in GENERIC: return np_[-1]
        if j < len(t) and t[j] in PREP and t[j] == "of":
            rest = [w for w in t[j+1:] if w not in DET]
            k = 0
            while k < len(rest) and rest[k] not in PREP and rest[k] not in AUX: k += 1
            return rest[k-1] if k else None
        return None
    # skip wh-words like "how much", then aux
    while i < len(t) and t[i] not in AUX: i += 1
    if i >= len(t): return None
    aux = t[i]; rest = t[i+1:]
    rest = [w for w in rest if w not in DET]
    k = 0
    while k < len(rest) and rest[k] not in PREP: k += 1
    np_ = rest[:k]
    if aux in ("does", "do", "did", "will", "can", "should", "must", "would", "could", "shall", "may", "might"):
        np_ = np_[:-1]  # the last word is the verb
    if not np_: return None
    h = np_[-1]
    if h in GENERIC and k < len(rest) and rest[k] == "of":
        r2 = rest[k+1:]; m = 0
        while m < len(r2) and r2[m] not in PREP and r2[m] not in AUX: m += 1
        return r2[m-1] if m else None
    if h in GENERIC or h in ("i", "we", "you", "it", "me"): return None
    return h


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


def variants(embedder):
    from ondevice.rag.answerable import check, question_focus

    similarity = WordSimilarity(embedder)

    def covered(threshold, most_missing, rules=("names", "answer_type")):
        def fn(q, o):
            focus = question_focus(q)
            return check(focus, o["sentence"], o["heading"], o["file"], rules).passes and \
                len(uncovered(focus, o["heading"] + "\n" + o["quote"], similarity, threshold)) <= most_missing
        return fn

    def rule(rules, scope="possessive-file", text="quote"):
        return lambda q, o: check(question_focus(q), o[text], o["heading"], o["file"], rules, scope).passes

    yield "threshold only (before)", (lambda q, o: True)
    for text in ("quote", "sentence"):
        for scope in ("quote", "possessive-file", "file"):
            yield f"names, scope {scope}, reads {text}", rule(("names",), scope, text)
        yield f"answer type, reads {text}", rule(("answer_type",), text=text)
        yield f"names (possessive-file) + answer type, reads {text}", rule(("names", "answer_type"), text=text)
    for threshold in (0.4, 0.5, 0.6):
        for most_missing in (0, 1):
            yield f"coverage alone, word cosine >= {threshold}, <= {most_missing} missing", \
                covered(threshold, most_missing, ())
            yield f"names + answer type + coverage >= {threshold}, <= {most_missing} missing", \
                covered(threshold, most_missing)

    def head_covered(threshold):
        from ondevice.rag.retrieve import content_terms

        def fn(q, o):
            focus, noun = question_focus(q), head(q)
            if not check(focus, o["sentence"], o["heading"], o["file"]).passes:
                return False
            words = sorted(content_terms(o["heading"] + "\n" + o["sentence"]))
            return noun is None or any(_same_stem(noun, w) for w in words) or similarity.best(noun, words) >= threshold
        return fn

    for threshold in (0.3, 0.4, 0.5, 0.6):
        yield f"names + answer type + focus noun cosine >= {threshold}", head_covered(threshold)


def _auc(positive, negative) -> float:
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def likelihood_rows(rows, splits, top: int = 6, model: str = "smollm2-135m") -> None:
    """Query likelihood as the extractive mode's sentence chooser and as an answerability score (not kept).
    model: SmolLM2 scores with the reranker's chat prompt; another (gemma3-270m, a base model) with the plain one."""
    import ondevice
    import numpy as np

    from ondevice.rag.answerable import check, question_focus
    from ondevice.rag.rerank import relevance
    from ondevice.rag.retrieve import _standardised as z  # as `--rerank` standardises its candidates

    from tests.ondevice.rag.query_levers import plain_logprob

    llm = ondevice.load(model, threads=2)
    score = (lambda q, text: relevance(llm, q, text)) if model == "smollm2-135m" else \
        (lambda q, text: plain_logprob(llm, text, q))
    try:
        for row in rows:
            empty = score(row["item"].question, "")  # the question's likelihood after no passage
            for o in row["options"][:top]:
                o["lik"] = score(row["item"].question, (o["heading"] + "\n" + o["sentence"]).strip())
                o["lik0"] = empty
    finally:
        llm.close()

    for candidates in (3, 6):
        for weight in (0.25, 0.5, 1, 2):
            cells = []
            for split in splits:
                picked = []
                for row in rows:
                    if row["split"] != split:
                        continue
                    options = [o for o in row["options"][:candidates] if o["sim"] >= 0.39]
                    if options:
                        score = np.asarray(z([o["sim"] for o in options])) + weight * np.asarray(
                            z([o["lik"] for o in options]))
                        options = [options[int(score.argmax())]]
                    picked.append({**row, "options": options})
                f, n, c, u, m = outcome(picked, split, lambda q, o: check(question_focus(q), o["sentence"],
                                                                           o["heading"], o["file"]).passes, False)
                cells.append(f"{f / n:.2f} {c / n:.2f} {u / m:.2f} ({u}/{m})")
            print(f"{'sentence by cosine + ' + str(weight) + ' x likelihood, top ' + str(candidates):58} {'False':8} "
                  + " | ".join(f"{c:>22}" for c in cells))
    from ondevice.rag.evaluate import contains_fact

    for split in splits:
        gains = {"answered right": [], "unanswerable": []}
        for row in rows:
            if row["split"] != split or not row["options"] or row["options"][0]["sim"] < 0.39:
                continue
            o, item = row["options"][0], row["item"]
            if not check(question_focus(item.question), o["sentence"], o["heading"], o["file"]).passes:
                continue
            kind = "unanswerable" if not item.answerable else \
                "answered right" if contains_fact(o["quote"], item.answer) else None
            if kind:
                gains[kind].append(o["lik"] - o["lik0"])
        print(f"{split}: likelihood gain over an empty passage, answered right vs unanswerable the rules let "
              f"through ({len(gains['answered right'])} / {len(gains['unanswerable'])}): AUC "
              f"{_auc(gains['answered right'], gains['unanswerable']):.2f}")


def main(splits, likelihood: str | None = None):
    from ondevice.rag.embedder import load_embedder

    rows = collect(splits)
    embedder = load_embedder("minilm-l6")
    print(f"{'variant':58} {'fallback':8} " + " | ".join(f"{s:>22}" for s in splits))
    for name, fn in variants(embedder):
        for fallback in (False, True):
            cells = []
            for split in splits:
                f, n, c, u, m = outcome(rows, split, fn, fallback)
                cells.append(f"{f / n:.2f} {c / n:.2f} {u / m:.2f} ({u}/{m})")
            print(f"{name:58} {str(fallback):8} " + " | ".join(f"{c:>22}" for c in cells))
    embedder.close()
    if likelihood:
        likelihood_rows(rows, splits, model=likelihood)


if __name__ == "__main__":
    argv = sys.argv[1:]
    model = argv[argv.index("--likelihood-model") + 1] if "--likelihood-model" in argv else "smollm2-135m"
    args = [a for a in argv if a not in ("--likelihood", "--likelihood-model", model)]
    main(args or ["qa", "qa_heldout"], likelihood=model if "--likelihood" in argv else None)
