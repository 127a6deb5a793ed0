"""Hybrid retrieval: BM25 (FTS5) and vector (sqlite-vec) candidates fused by reciprocal rank fusion.

BM25 finds rare exact tokens (an invoice number, an error code) that embeddings blur; vectors find paraphrases
that share no words with the text. RRF (Cormack et al. 2009) adds weight/(k + rank) from each list, so neither
list's raw scores need calibrating against the other (k and the weights: see RRF_K below). `--rerank` then
re-orders the top candidates by the fused score plus how likely the local LLM finds the question after each one
(`rerank`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ondevice.errors import InvalidInput
from ondevice.rag.embedder import Embedder
from ondevice.rag.store import STOPWORDS, IndexStore

# Fusion, measured lever by lever in docs/rag.md: RRF with k=10 (not the customary 60, which lets a chunk ranked
# middling by both lists beat the one vectors rank first). BM25 counts only when the query names something (a word
# with a digit such as an order number, or a capitalised name): double when its best match is decisive (twice the
# best chunk of any other file), 0.2 otherwise; over a question's ordinary words it does not count at all (in a
# library of long documents BM25 on "cost" or "class" mostly finds prose that shares them, and outvoted the vector
# side's right answer). Measured on the 41-question paraphrase set, the test corpus and a generated library's 100
# facts together: ordinary words 0.2 -> 0 raised paraphrase recall@1 0.73 -> 0.83 and left the others equal or
# better; named-but-not-decisive at 0.5 or 1.0 helped the facts and cost paraphrases (docs/rag.md).
RRF_K = 10
FUSION_WEIGHTS = (1.0, 1.0)  # (BM25 when decisive, vector)
BM25_DECISIVE_RATIO = 2.0
BM25_WEAK_WEIGHT = 0.0
BM25_NAMED_WEIGHT = 0.2  # the query names something, but BM25 is not decisive
BM25_DECISIVE_WEIGHT = 2.0  # a decisive exact match must beat chunks that both lists rank second or third
MODES = ("hybrid", "bm25", "vector")
# Below this cosine similarity (all-MiniLM-L6-v2 scale) a chunk is not about the question, unless BM25 finds
# most of the question's content words in it.
MIN_SIMILARITY = 0.3
MIN_TERM_COVERAGE = 0.6


def span_text(start_line: int | None, end_line: int | None, page: int | None) -> str:
    """Where a passage is in its file, as citations show it: "12-18", "12", "p. 3", or "" when unknown."""
    if page is not None:
        return f"p. {page}"
    if start_line is None:
        return ""
    return str(start_line) if start_line == end_line else f"{start_line}-{end_line}"


@dataclass
class SearchResult:
    """One retrieved chunk. Lines are 1-based and inclusive; `page` is set for PDFs instead."""

    path: str
    start_line: int | None
    end_line: int | None
    page: int | None
    score: float
    text: str
    chunk_id: int
    similarity: float | None = None
    bm25: float | None = None
    relevance: float | None = None

    @property
    def span(self) -> str:
        """"12-18", "p. 3", or "" when the source has neither."""
        return span_text(self.start_line, self.end_line, self.page)


def check_query(query: str) -> str:
    """The query, stripped; InvalidInput when it is not a string or is blank."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the query is empty")
    return query.strip()


def search(store: IndexStore, embedder: Embedder | None, query: str, k: int = 5, mode: str = "hybrid",
           candidates: int = 50, weights: tuple[float, float] = FUSION_WEIGHTS,
           rrf_k: int = RRF_K) -> list[SearchResult]:
    """The top `k` chunks for `query`, best first. mode: "hybrid", "bm25" or "vector".

    weights: (BM25, vector) multipliers of each list's reciprocal-rank score in the fusion.

    `query` is one `check_query` accepted (`Index.search` checks it once, for every caller above it).
    """
    if mode not in MODES:
        raise InvalidInput(f"unknown search mode {mode!r}; choose from {', '.join(MODES)}")
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    pool = max(candidates, k)
    lexical = store.bm25(query, pool) if mode in ("hybrid", "bm25") else []
    semantic: list[tuple[int, float]] = []
    if mode in ("hybrid", "vector"):
        if embedder is None:
            raise InvalidInput("vector search needs an embedding model")
        semantic = store.nearest(embedder.embed([query])[0], pool)
    fused: dict[int, float] = {}
    named = names_something(query)
    decisive = named and _decisive(store, lexical)
    held = _identified(store, query, lexical) if mode == "hybrid" and named and IDENTIFIER_DECIDES else []
    decisive = decisive or bool(held)
    lexical_weight = weights[0] * (BM25_DECISIVE_WEIGHT if decisive else 1.0 if mode == "bm25" else
                                   BM25_NAMED_WEIGHT if named else BM25_WEAK_WEIGHT)
    for ranked, weight in ((held or lexical, lexical_weight), (semantic, weights[1])):
        for rank, (chunk_id, _) in enumerate(ranked, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (rrf_k + rank)
    top = sorted(fused, key=lambda cid: -fused[cid])[:k]
    rows = store.chunk_rows(top)
    sims, scores = dict(semantic), dict(lexical)
    return [SearchResult(rows[c].path, rows[c].start_line, rows[c].end_line, rows[c].page, round(fused[c], 6),
                         rows[c].text, c, sims.get(c), scores.get(c)) for c in top if c in rows]


DECISIVE_SAME_FILE = True  # compare BM25's best with the best chunk of another file (lever; docs/rag.md)


def _decisive(store: IndexStore, lexical: list[tuple[int, float]]) -> bool:
    """BM25's best chunk scores at least BM25_DECISIVE_RATIO times the best chunk of any other file (other
    chunks of the same file, which share its name, do not count against it)."""
    if len(lexical) < 2:
        return len(lexical) == 1
    if not DECISIVE_SAME_FILE:
        return lexical[0][1] >= BM25_DECISIVE_RATIO * lexical[1][1]
    head = lexical[:8]
    files = store.chunk_files([c for c, _ in head])
    best_file = files.get(head[0][0])
    runner = next((score for c, score in head[1:] if files.get(c) != best_file), None)
    if runner is None:
        runner = lexical[len(head)][1] if len(lexical) > len(head) else 0.0
    return lexical[0][1] >= BM25_DECISIVE_RATIO * runner


# An identifier of the query (a word with a digit) that one file alone holds decides too, whatever the ratio: where
# many files share a name's words ("Amber Heron 100482", "Amber Heron 100742", ...) those words lift other files'
# chunks above half the best one's, or even above it, and the vectors, which cannot tell the numbers apart, decided
# (planted facts found in the top 5: 0.11 at 13,000 files; docs/rag.md). Then only that file's chunks holding it
# count from BM25, so chunks of the files that merely share the name's words get nothing from it (also where the
# ratio is decisive: there the second file of BM25's list, helped by the vectors, could still come first).
IDENTIFIER_DECIDES = True
IDENTIFIER_HOLDERS = 200  # an identifier in this many chunks or more is not one file's


def _identified(store: IndexStore, query: str, lexical: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The chunks holding an identifier of the query that no other file holds (BM25's candidates first, in their
    order); [] when there is none."""
    held: dict[int, float] = {}
    for word in dict.fromkeys(w for w in re.findall(r"\w+", query.lower()) if any(ch.isdigit() for ch in w)):
        holders = store.bm25(word, IDENTIFIER_HOLDERS)
        if holders and len(holders) < IDENTIFIER_HOLDERS and \
                len(set(store.chunk_files([c for c, _ in holders]).values())) == 1:
            held.update(holders)
    first = [(c, score) for c, score in lexical if c in held]
    seen = {c for c, _ in first}
    return first + [(c, score) for c, score in held.items() if c not in seen]


def names_something(query: str) -> bool:
    """Whether the query names something BM25 can match exactly: a word with a digit (an order number, a code) or
    a capitalised word after the first (a name)."""
    words = re.findall(r"\w+", query)
    return any(any(ch.isdigit() for ch in w) for w in words) or any(w[0].isupper() and w != "I" for w in words[1:])


def content_terms(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def is_relevant(query: str, result: SearchResult, embedder: Embedder | None = None) -> bool:
    """Whether a retrieved chunk is plausibly about the query: close in meaning, sharing an identifier from the
    query (a word with digits: a code, an order number), or sharing most of the query's content words."""
    similarity = result.similarity
    if similarity is None and embedder is not None:
        q, t = embedder.embed([query, result.text])
        similarity = float(np.dot(q, t))
    if similarity is not None and similarity >= MIN_SIMILARITY:
        return True
    terms = content_terms(query)
    if not terms:
        return False
    found = content_terms(result.text)
    # Porter-ish leniency: "invoices" in the query should count "invoice" in the text
    hits = {t for t in terms if t in found or t.rstrip("s") in found}
    if len(hits) / len(terms) >= MIN_TERM_COVERAGE:
        return True
    # An identifier (a code, an order or invoice number) is specific enough on its own.
    return any(any(ch.isdigit() for ch in t) for t in hits)


# How much the reranker's query likelihood counts against the fusion's own score, both as z-scores over the
# candidates. Chosen on three sets (the paraphrase set, the test corpus, the answer set's questions): weights 1 to 3
# all helped on all three and hurt none; from 2 every paraphrase question is in the top 5, and 2 puts the most
# first (docs/rag.md, "Fourth pass").
LIKELIHOOD_WEIGHT = 2.0


def rerank(results: Sequence[SearchResult], query: str, model) -> list[SearchResult]:
    """Re-order by the fusion's score plus the local reranker's (`ondevice.rag.rerank`: how likely the LLM finds
    the question after each passage), each standardised over these candidates; `relevance` holds the reranker's."""
    from ondevice.rag.rerank import rerank as rerank_texts

    results = list(results)
    if not results:
        return []
    for index, score in rerank_texts(query, [r.text for r in results], model):
        results[index].relevance = score
    fused = _standardised([r.score for r in results])
    likely = _standardised([r.relevance for r in results])
    combined = [f + LIKELIHOOD_WEIGHT * l for f, l in zip(fused, likely)]
    return [results[i] for i in sorted(range(len(results)), key=lambda i: (-combined[i], i))]


def _standardised(values: Sequence[float]) -> list[float]:
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return [(v - mean) / spread if spread > 0 else 0.0 for v in values]
