"""Query-time levers measured in the third and fourth passes on issue 27 (docs/rag.md, "Third pass", "Fourth pass").

    PYTHONPATH=. python -m tests.ondevice.rag.query_levers [--dir DIR] [--lever wording sentences expand rerank
        likelihood rerank-smollm2] [--sets paraphrase corpus heldout blind] [--reranker MODEL --prompts plain]
        [--scorers smollm2-135m:chat gemma3-270m:plain]

Three sets, each with its own MiniLM index built once under DIR (default /tmp/query-levers) and reused by later
runs: the 41-question paraphrase library and the test corpus (`levers.py`'s library, one index), and the held-out
answer set (`tests/ondevice/rag/answers/`: the answerable questions of qa.jsonl and qa_heldout.jsonl over its notes,
scored as `ondevice rag eval` scores retrieval); a fourth, the blind split's answerable questions, only when
`--sets blind` names it (once a lever is chosen on the three). Every lever is a different query vector, a different vector list
or a re-ordering of the default fusion's results; BM25 and the fusion (`retrieve.search`) are left as they are.
Recall counts the r-th result (r <= 5) coming from the file that answers; MRR is over the top 5.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from tests.ondevice.rag import corpus as test_corpus
from tests.ondevice.rag import paraphrase
from tests.ondevice.rag.levers import EXPAND_PROMPT, _metrics, build

ANSWERS = Path(__file__).parent / "answers"
K = 5


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) or 1.0)


def _matches(path: str, source) -> bool:
    from ondevice.rag.evaluate import _matches as matches

    return any(matches(path, s) for s in ([source] if isinstance(source, str) else source))


def _rank(results, source) -> int | None:
    return next((n for n, r in enumerate(results, start=1) if _matches(r.path, source)), None)


def setup(root: Path):
    """{set name: (index, [{"question", "source"}])}, building an index only where DIR has none yet."""
    from ondevice.rag import Index
    from ondevice.rag.embedder import load_embedder
    from ondevice.rag.evaluate import read_qa

    para_qa = paraphrase.write_library(root / "lib")
    corpus_qa = test_corpus.write_corpus(root / "lib" / "corpus")
    for item in corpus_qa:
        item["source"] = "corpus/" + item["source"]
    minilm = load_embedder("minilm-l6", threads=2)
    indexes = {}
    for name, roots in (("lib", [root / "lib"]), ("qa", [ANSWERS / "notes"])):
        path = root / f"{name}.sqlite"
        if path.exists():
            indexes[name] = Index(path, embedder=minilm)
        else:
            indexes[name], seconds, summary = build(path, roots, minilm)
            print(f"index {name}: {summary.total_chunks} chunks in {seconds:.0f} s", flush=True)
    heldout = [{"question": item.question, "source": item.source}
               for qa_file in ("qa.jsonl", "qa_heldout.jsonl") for item in read_qa(ANSWERS / qa_file)
               if item.answerable]
    blind = [{"question": item.question, "source": item.source}
             for item in read_qa(ANSWERS / "qa_blind.jsonl") if item.answerable]
    return {"paraphrase": (indexes["lib"], para_qa), "corpus": (indexes["lib"], corpus_qa),
            "heldout": (indexes["qa"], heldout), "blind": (indexes["qa"], blind)}


def _chosen(name: str, only) -> bool:
    """The blind split is measured only when named: once, after a lever is chosen on the other three."""
    return name in only if only else name != "blind"


def row(sets, label: str, searcher, only=None) -> dict:
    """Evaluate `searcher(index, question) -> results` on every set (or `only` some); print one JSON line."""
    out = {}
    for name, (index, qa) in sets.items():
        if not _chosen(name, only):
            continue
        t0 = time.perf_counter()
        ranks = [_rank(searcher(index, item["question"])[:K], item["source"]) for item in qa]
        metrics = {key: round(value, 3) for key, value in _metrics(ranks).items()}
        metrics["s_per_q"] = round((time.perf_counter() - t0) / len(qa), 3)
        metrics["misses"] = {item["question"]: r for item, r in zip(qa, ranks) if r != 1}
        out[name] = metrics
    print(label, json.dumps(out), flush=True)
    return out


def default(index, question, k: int = K):
    from ondevice.rag.retrieve import search

    return search(index.store, index.embedder, question, k)


class QueryVector:
    """An embedder for `retrieve.search` whose vector for the query is the lever's (`vector(question)`)."""

    def __init__(self, base, vector):
        self.base, self.vector, self.name = base, vector, base.name

    def embed(self, texts):
        return np.stack([self.vector(t) for t in texts])


def with_query_vector(vector, k: int = K):
    """A searcher: the default fusion with the vector side searched by `vector(embedder, question)`."""
    from ondevice.rag.retrieve import search

    def searcher(index, question):
        return search(index.store, QueryVector(index.embedder, lambda q: vector(index.embedder, q)), question, k)
    return searcher


def rrf(*lists, k: int = 10, depth: int = 50):
    """Reciprocal rank fusion of result lists (chunk ids), k=10 as the default fusion."""
    scores, keep = {}, {}
    for results in lists:
        for rank, r in enumerate(results[:depth], start=1):
            scores[r.chunk_id] = scores.get(r.chunk_id, 0.0) + 1 / (k + rank)
            keep.setdefault(r.chunk_id, r)
    return [keep[c] for c in sorted(scores, key=lambda c: -scores[c])]


# --- 4. wording: cheap normalisations of the question before it is embedded -----------------------------------
_WORD = re.compile(r"[\w'-]+")
PRONOUNS = {"my", "i", "me", "mine", "i'm", "i've", "our", "we", "us"}


def content_words(question: str) -> str:
    from ondevice.rag.store import STOPWORDS

    return " ".join(w for w in _WORD.findall(question) if w.lower() not in STOPWORDS and w.lower() not in PRONOUNS)


def no_pronouns(question: str) -> str:
    return " ".join(w for w in _WORD.findall(question) if w.lower() not in PRONOUNS)


def wording_levers(sets) -> None:
    def embed(e, text):
        return e.embed([text])[0]

    row(sets, "wording: lower-cased question", with_query_vector(lambda e, q: embed(e, q.lower())))
    row(sets, "wording: without my/I/me/our", with_query_vector(lambda e, q: embed(e, no_pronouns(q))))
    row(sets, "wording: content words only (no stopwords, question words or pronouns)",
        with_query_vector(lambda e, q: embed(e, content_words(q) or q)))
    row(sets, "wording: question and content-words vectors averaged",
        with_query_vector(lambda e, q: _unit(embed(e, q) + embed(e, content_words(q) or q))))
    row(sets, "wording: question and content-words searches fused (RRF k=10)",
        lambda index, q: rrf(default(index, q, 50), with_query_vector(
            lambda e, x: embed(e, content_words(x) or x), 50)(index, q)))


QUESTION_HEAD = re.compile(r"^\s*(what|when|where|which|who|whom|whose|why|how( much| many| often| far| long)?)"
                           r"(\s+(is|are|was|were|do|does|did|can|could|should|will|would|has|have|had))?\s+", re.I)


def statement(question: str) -> str:
    """The question without its question word, auxiliary and question mark: "When is my next tooth cleaning?" ->
    "my next tooth cleaning"."""
    return QUESTION_HEAD.sub("", question).rstrip(" ?") or question


def feedback(alpha: float, top: int):
    """Pseudo-relevance feedback (Rocchio) on the vector side: the query vector plus alpha times the mean of its
    `top` nearest chunks' vectors, searched again."""
    def vector(e, q, store):
        v = e.embed([q])[0]
        ids, rows = store._vector_matrix()
        near = [c for c, _ in store.nearest(v, top)]
        where = {int(c): n for n, c in enumerate(ids)}
        return _unit(v + alpha * rows[[where[c] for c in near]].mean(axis=0))

    def searcher(index, question):
        from ondevice.rag.retrieve import search

        return search(index.store, QueryVector(index.embedder, lambda q: vector(index.embedder, q, index.store)),
                      question, K)
    return searcher


def per_file(cap: int):
    """The default fusion's ranking with at most `cap` chunks of one file in the top 5 (a long document's chunks
    then leave room for other files)."""
    def searcher(index, question):
        out, seen = [], {}
        for r in default(index, question, 50):
            if seen.get(r.path, 0) < cap:
                out.append(r)
                seen[r.path] = seen.get(r.path, 0) + 1
        return out
    return searcher


def more_levers(sets) -> None:
    def embed(e, text):
        return e.embed([text])[0]

    row(sets, "wording: statement form (question word, auxiliary and '?' removed)",
        with_query_vector(lambda e, q: embed(e, statement(q))))
    row(sets, "wording: question and statement-form vectors averaged",
        with_query_vector(lambda e, q: _unit(embed(e, q) + embed(e, statement(q)))))
    row(sets, "wording: 'Note: ' + statement form", with_query_vector(lambda e, q: embed(e, "Note: " + statement(q))))
    for alpha, top in ((0.3, 1), (0.3, 3), (0.6, 3)):
        row(sets, f"pseudo-relevance feedback: query + {alpha} x mean of its top {top} chunk vectors",
            feedback(alpha, top))
    for cap in (1, 2):
        row(sets, f"at most {cap} chunk(s) of one file in the top 5", per_file(cap))


# --- 2. sentence-level (multi-vector) scoring -----------------------------------------------------------------
def chunk_sentences(text: str) -> list[str]:
    """A chunk's sentences: each line, cut by pysbd (the splitter the extractive answerer uses); 3+ words each."""
    from ondevice.rag.extractive import split_sentences

    out = []
    for line in text.splitlines():
        line = line.strip().lstrip("#-* ").strip()
        if not line:
            continue
        for start, end in split_sentences(line):
            sentence = line[start:end]
            if len(sentence.split()) >= 3:
                out.append(sentence)
    return out


class Sentences:
    """Every chunk's sentence vectors of one index, embedded once and cached beside it (the index-time form)."""

    def __init__(self, index, cache: Path):
        store = index.store
        ids, rows = store._vector_matrix()
        self.chunk_ids, self.chunk_rows = ids, rows
        self.row_of = {int(c): n for n, c in enumerate(ids)}
        if cache.exists():
            data = np.load(cache)
            owner, vectors = data["owner"], data["vectors"]
        else:
            texts = store.chunk_rows([int(c) for c in ids])
            sentences, owner = [], []
            for c in ids:
                for s in chunk_sentences(texts[int(c)].text):
                    sentences.append(s)
                    owner.append(int(c))
            t0 = time.perf_counter()
            vectors = index.embedder.embed(sentences)
            print(f"sentences: {len(sentences)} of {len(ids)} chunks embedded in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            owner = np.asarray(owner)
            np.savez(cache, owner=owner, vectors=vectors)
        self.owner, self.vectors = owner, vectors.astype(np.float32)
        self.rows_of_owner = {}
        for n, c in enumerate(owner):
            self.rows_of_owner.setdefault(int(c), []).append(n)
        self.sentence_count = len(owner)

    def best_sentence(self, query: np.ndarray) -> np.ndarray:
        """Per chunk (in `chunk_ids` order): the best sentence's cosine, or -1 for a chunk with none."""
        sims = self.vectors @ query
        best = np.full(len(self.chunk_ids), -1.0, dtype=np.float32)
        np.maximum.at(best, np.asarray([self.row_of[int(c)] for c in self.owner]), sims)
        return best


class NearestOverride:
    """An IndexStore whose `nearest` is the lever's; everything else is the real store's."""

    def __init__(self, store, nearest):
        self._store, self.nearest = store, nearest

    def __getattr__(self, name):
        return getattr(self._store, name)


def sentence_searcher(sentences_of, combine, candidates_only: bool):
    """Vector list ranked by combine(chunk cosine, best sentence cosine); over every chunk, or re-scoring only the
    chunk vectors' own top 50 (what a query-time form, embedding the candidates' sentences per query, would do)."""
    from ondevice.rag.retrieve import search

    def searcher(index, question):
        sent = sentences_of[id(index)]

        def nearest(vector, limit):
            chunk = sent.chunk_rows @ vector
            score = combine(chunk, sent.best_sentence(vector))
            if candidates_only:
                pool = np.argsort(-chunk)[:limit]
                order = pool[np.argsort(-score[pool], kind="stable")]
            else:
                order = np.argsort(-score, kind="stable")[:limit]
            return [(int(sent.chunk_ids[i]), float(score[i])) for i in order]
        return search(NearestOverride(index.store, nearest), index.embedder, question, K)
    return searcher


def sentence_levers(sets, root: Path) -> None:
    sentences_of = {}
    for name, (index, _) in sets.items():
        if id(index) not in sentences_of:
            sentences_of[id(index)] = Sentences(index, root / f"sentences-{Path(index.store.path).stem}.npz")
            print(f"sentences of {name}'s index: {sentences_of[id(index)].sentence_count}", flush=True)
    for label, combine in (("max(chunk, best sentence)", np.maximum),
                           ("mean(chunk, best sentence)", lambda c, s: (c + np.maximum(s, c)) / 2),
                           ("best sentence only (chunk where none)", lambda c, s: np.where(s < 0, c, s))):
        for candidates_only in (False, True):
            where = "the chunk vectors' top 50 re-scored" if candidates_only else "all chunks"
            row(sets, f"sentences: {label}, {where}", sentence_searcher(sentences_of, combine, candidates_only))


# --- 1. query expansion with the local model ------------------------------------------------------------------
PROMPTS = {
    # SmolLM2-135M-Instruct: chat, one instruction
    "plain": EXPAND_PROMPT,  # levers.py's, from the unfinished first attempt
    "note": ("Rewrite this question as the short personal note that would answer it, using everyday words. "
             "Reply with the note only.\n\nQuestion: {question}"),
    "synonyms": ("List synonyms of the nouns in this question, separated by commas. Reply with the list only."
                 "\n\nQuestion: {question}"),
}
# gemma3-270m ships as a base model (no instruction tuning): the same two asks as a completion with two worked
# examples (about things in none of the sets).
FEW_SHOT = {
    "note": ("Questions rewritten in the words of the personal note that answers them.\n\n"
             "Question: When does my flat's lease end?\nNote: apartment rental contract runs out\n\n"
             "Question: What did the mechanic say about my brakes?\nNote: garage service, brake pads worn\n\n"
             "Question: {question}\nNote:"),
    "synonyms": ("Synonyms of the nouns in each question.\n\n"
                 "Question: When does my flat's lease end?\nSynonyms: apartment, rental, tenancy, contract\n\n"
                 "Question: What did the mechanic say about my brakes?\nSynonyms: garage, car repair, brake pads\n\n"
                 "Question: {question}\nSynonyms:"),
}


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = re.sub(r"^(rewritten question|question|note|synonyms)\s*:\s*", "", line.strip(), flags=re.I)
        if line.strip():
            return line.strip().strip('"')
    return ""


def rewrites(sets, model: str, prompt: str, cache: Path, only) -> tuple[dict, float]:
    """{question: rewrite} at temperature 0 for every question of the sets, and the mean seconds per question.
    Cached question by question in `cache` (a later run goes on where an earlier one stopped)."""
    data = json.loads(cache.read_text()) if cache.exists() else {"rewrites": {}, "seconds": []}
    out, seconds = data["rewrites"], data["seconds"]
    todo = [item["question"] for name, (_, qa) in sets.items() if _chosen(name, only) for item in qa
            if item["question"] not in out]
    if todo:
        import ondevice

        llm = ondevice.load(model, threads=2)
        try:
            for question in todo:
                t0 = time.perf_counter()
                # only the first line is used: stop there
                if model == "gemma3-270m":
                    text = llm.generate(FEW_SHOT[prompt].format(question=question), max_tokens=32,
                                        temperature=0, stop=["\n"]).text
                else:
                    text = llm.chat([{"role": "user", "content": PROMPTS[prompt].format(question=question)}],
                                    max_tokens=40, temperature=0, stop=["\n"]).text
                seconds.append(time.perf_counter() - t0)
                out[question] = _first_line(text)
                cache.write_text(json.dumps({"rewrites": out, "seconds": seconds}, indent=1))
                if len(out) % 10 == 0:
                    print(f"  {model} {prompt}: {len(out)} rewritten, {sum(seconds) / len(seconds):.1f} s each",
                          file=sys.stderr, flush=True)
        finally:
            llm.close()
    return out, round(sum(seconds) / max(len(seconds), 1), 2)


def expansion_levers(sets, root: Path, only, models=("smollm2-135m", "gemma3-270m"), prompt_names=None) -> None:
    from ondevice.rag.retrieve import search

    for model, prompts in (("smollm2-135m", ("plain", "note", "synonyms")), ("gemma3-270m", ("note", "synonyms"))):
        if model not in models:
            continue
        for prompt in prompts:
            if prompt_names and prompt not in prompt_names:
                continue
            t0 = time.perf_counter()
            written, s_per_q = rewrites(sets, model, prompt, root / f"rewrites-{model}-{prompt}.json", only)
            print(f"rewrites {model} {prompt}: {s_per_q} s per question (load average "
                  f"{open('/proc/loadavg').read().split()[:3]}); this call {time.perf_counter() - t0:.0f} s",
                  json.dumps(dict(list(written.items())[:6])), flush=True)

            def rw(q):
                return written.get(q, "")
            label = f"expansion {model} '{prompt}' ({s_per_q} s/question)"
            row(sets, f"{label}: question + rewrite embedded as one text",
                with_query_vector(lambda e, q: e.embed([f"{q} {rw(q)}".strip()])[0]), only)
            row(sets, f"{label}: question and rewrite vectors averaged",
                with_query_vector(lambda e, q: _unit(e.embed([q])[0] + (e.embed([rw(q)])[0] if rw(q) else 0))), only)
            row(sets, f"{label}: question and rewrite searches fused (RRF k=10)",
                lambda index, q: rrf(default(index, q, 50), search(index.store, index.embedder, rw(q), 50)
                                     if rw(q) else []), only)


# --- 3. gemma3-270m as the reranker of the top 5 ---------------------------------------------------------------
RERANK_FEW_SHOT = ("Does the passage answer the question? Answer yes or no.\n\n"
                   "Passage: The garage replaced the front brake pads on 3 June.\n"
                   "Question: When were my car's brakes last serviced?\nAnswer: yes\n\n"
                   "Passage: The library closes at 6 pm on Saturdays.\n"
                   "Question: When were my car's brakes last serviced?\nAnswer: no\n\n"
                   "Passage: {passage}\nQuestion: {question}\nAnswer:")


def _first_tokens(llm, words) -> list[int]:
    return sorted({llm.tokenize(w, add_special=False)[0] for w in words if llm.tokenize(w, add_special=False)})


def _answer_tokens(llm) -> tuple[list[int], list[int]]:
    """The first tokens of "yes" and "no" in their usual spellings (the yes/no reranker's, before query likelihood)."""
    return (_first_tokens(llm, [" yes", "yes", " Yes", "Yes"]), _first_tokens(llm, [" no", "no", " No", "No"]))


def rerank_levers(sets, only) -> None:
    import ondevice

    llm = ondevice.load("gemma3-270m", threads=2)
    yes, no = _answer_tokens(llm)

    def score(question, passage):
        tokens = llm.tokenize(RERANK_FEW_SHOT.format(passage=passage[:1500], question=question))
        last = llm.logits(tokens[-(llm.n_ctx - 1):])[-1]
        return float(max(last[t] for t in yes) - max(last[t] for t in no))

    def reranked(index, q):
        results = default(index, q)
        scores = [score(q, r.text) for r in results]
        return [results[i] for i in sorted(range(len(results)), key=lambda i: (-scores[i], i))]
    try:
        row(sets, "rerank the top 5 with gemma3-270m (few-shot yes/no log-odds)", reranked, only)
    finally:
        llm.close()


# --- 3b. query likelihood (UPR, Sachan et al. 2022): how likely the local model finds the question after each
# passage. Scored once per (question, candidate) and prompt, then every combination is computed from that.
PLAIN_PROMPT = "Passage: {passage}\nA question this passage answers: "


def plain_logprob(llm, passage: str, question: str, max_chars: int = 1500) -> float:
    """Mean log-probability of the question's tokens after a plain-text prompt (no chat template)."""
    prefix = llm.tokenize(PLAIN_PROMPT.format(passage=passage[:max_chars]))
    q = llm.tokenize(question.strip(), add_special=False)
    return llm.mean_logprob(prefix[max(0, len(prefix) + len(q) - (llm.n_ctx - 1)):], q)


def _z(values) -> np.ndarray:
    """Standardised over the candidates exactly as `--rerank` standardises them (`retrieve._standardised`)."""
    from ondevice.rag.retrieve import _standardised

    return np.asarray(_standardised(list(values)))


def _titled(result) -> str:
    """The passage with its file's name as a first line ("dentist visit" for dentist-visit.md)."""
    return re.sub(r"[_-]+", " ", Path(result.path).stem) + "\n" + result.text


def likelihood_grid(sets, only, prompts=("plain", "chat"), depth: int = 10, reranker: str = "smollm2-135m",
                    scorers: list[str] | None = None, cache_dir: Path | None = None) -> None:
    """The `reranker` model's (default SmolLM2's) query likelihood of the fusion's top `depth` under each prompt:
    "plain" (no chat template; the one for a base model such as gemma3-270m), "chat" (`rerank.py`'s) and
    "chat-title" (the same with the file's name before the passage); rows: likelihood alone, and fusion z-score +
    weight x likelihood z-score, re-ordering the top 5/8/10. `scorers` ("model:prompt" each, e.g.
    smollm2-135m:chat gemma3-270m:plain) replaces reranker and prompts; with two or more, "all" rows average their
    z-scores (an ensemble, equal weights). Scores are kept under `cache_dir` for later runs."""
    import ondevice
    from ondevice.rag.rerank import relevance

    specs = scorers or [f"{reranker}:{p}" for p in prompts]
    scored = {name: [(item, default(index, item["question"], depth), {}) for item in qa]
              for name, (index, qa) in sets.items() if _chosen(name, only)}
    for model_name in dict.fromkeys(spec.split(":")[0] for spec in specs):
        llm = None
        try:
            for spec in (s for s in specs if s.split(":")[0] == model_name):
                prompt = spec.split(":")[1]
                score = {"plain": lambda r, q: plain_logprob(llm, r.text, q),
                         "chat": lambda r, q: relevance(llm, q, r.text),
                         "chat-title": lambda r, q: relevance(llm, q, _titled(r))}[prompt]
                for name, rows in scored.items():
                    cache = cache_dir / f"likelihood-{spec.replace(':', '-')}-{name}-{depth}.json" if cache_dir else None
                    kept = json.loads(cache.read_text()) if cache and cache.exists() else {}
                    t0, new = time.perf_counter(), 0
                    for item, results, lik in rows:
                        key = item["question"] + "\n" + "\n".join(r.path for r in results)
                        if key not in kept:
                            llm = llm or ondevice.load(model_name, threads=2)
                            kept[key] = [score(r, item["question"]) for r in results]
                            new += 1
                        lik[spec] = kept[key]
                    if cache and new:
                        cache.write_text(json.dumps(kept))
                    print(f"{name}: {spec}: {(time.perf_counter() - t0) / max(1, new):.2f} s per question scored "
                          f"({new} of {len(rows)}; the rest from {cache})", flush=True)
        finally:
            if llm is not None:
                llm.close()

    def grid_row(label, key, top):
        out = {}
        for name, rows in scored.items():
            ranks = []
            for item, results, lik in rows:
                n = min(top, len(results))
                order = sorted(range(n), key=lambda i: (key(results[:n], {p: v[:n] for p, v in lik.items()}, i), i))
                ranks.append(_rank([results[i] for i in order][:K], item["source"]))
            out[name] = {k: round(v, 3) for k, v in _metrics(ranks).items()}
        print(label, json.dumps(out), flush=True)

    for top in (5, 8, 10):
        for spec in specs + (["all"] if len(specs) > 1 else []):
            def lik_z(lik, spec=spec):
                return sum(_z(lik[s]) for s in specs) / len(specs) if spec == "all" else _z(lik[spec])
            grid_row(f"top {top}, {spec}: likelihood alone", lambda res, lik, i: -lik_z(lik)[i], top)
            for weight in (0.5, 1, 1.5, 2, 2.5, 3, 4, 6):
                grid_row(f"top {top}, {spec}: fusion + {weight} x likelihood",
                         lambda res, lik, i, w=weight: -(_z([r.score for r in res])[i] + w * lik_z(lik)[i]), top)


def smollm2_rerank(sets, only) -> None:
    """What `--rerank` does now: `Index.search(q, 5, rerank_model=SmolLM2)`, the fusion's top 10 re-ordered by the
    fused score plus SmolLM2's query likelihood (`retrieve.rerank`)."""
    import ondevice

    llm = ondevice.load("smollm2-135m", threads=2)
    try:
        row(sets, "--rerank: fusion top 10 re-ordered by fusion + 2 x SmolLM2 query likelihood (z-scores)",
            lambda index, q: index.search(q, K, rerank_model=llm), only)
    finally:
        llm.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/query-levers")
    parser.add_argument("--lever", nargs="*", default=["wording", "sentences"],
                        help="wording, more, sentences, expand, rerank, likelihood, rerank-smollm2")
    parser.add_argument("--sets", nargs="*", default=None, help="paraphrase, corpus, heldout, blind (default: the first three)")
    parser.add_argument("--models", nargs="*", default=["smollm2-135m", "gemma3-270m"], help="for expand")
    parser.add_argument("--reranker", default="smollm2-135m", help="for likelihood: the model that scores")
    parser.add_argument("--scorers", nargs="*", default=None,
                        help="for likelihood: model:prompt pairs (e.g. smollm2-135m:chat gemma3-270m:plain); "
                             "two or more also give their equal-weight ensemble")
    parser.add_argument("--prompts", nargs="*", default=None,
                        help="for expand: plain, note, synonyms; for likelihood: plain, chat, chat-title")
    args = parser.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    sets = setup(root)
    print({name: len(qa) for name, (_, qa) in sets.items()}, "load average", open("/proc/loadavg").read().split()[:3],
          flush=True)
    row(sets, "default fusion (baseline)", default, args.sets)
    if "wording" in args.lever:
        wording_levers(sets)
    if "more" in args.lever:
        more_levers(sets)
    if "sentences" in args.lever:
        sentence_levers(sets, root)
    if "expand" in args.lever:
        expansion_levers(sets, root, args.sets, args.models, args.prompts)
    if "rerank" in args.lever:
        rerank_levers(sets, args.sets)
    if "likelihood" in args.lever:
        likelihood_grid(sets, args.sets, args.prompts or ("plain", "chat"), reranker=args.reranker,
                        scorers=args.scorers, cache_dir=Path(args.dir))
    if "rerank-smollm2" in args.lever:
        smollm2_rerank(sets, args.sets)


if __name__ == "__main__":
    main()
