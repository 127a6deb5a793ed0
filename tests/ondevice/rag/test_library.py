"""The generated library (`ondevice rag bench --library N`): real files of every kind, and every fact is found."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

from ondevice.rag.library import _sentences, plant, write_library


def test_every_planted_fact_is_retrieved_in_the_top_5(embedder, tmp_path):
    from ondevice.rag import Index

    facts = write_library(tmp_path / "lib", 24, seed=5)
    kinds = Counter(Path(f.path).suffix for f in facts)
    assert set(kinds) == {".md", ".txt", ".py", ".pdf", ".docx"}, kinds
    with Index(tmp_path / "lib.sqlite", embedder=embedder) as index:
        summary = index.add([tmp_path / "lib"])
        assert summary.added == 24 and not summary.failed
        for fact in facts:
            results = index.search(fact.question, 5)
            hit = next((r for r in results if r.path.endswith(fact.path)), None)
            assert hit is not None, (fact, [r.path for r in results])
            # the chunk found holds the answer (a PDF's text may wrap it onto the next line)
            assert fact.answer.split()[-1] in " ".join(r.text for r in results if r.path.endswith(fact.path))


def test_the_same_seed_writes_the_same_library(tmp_path):
    a = write_library(tmp_path / "a", 12, seed=1)
    b = write_library(tmp_path / "b", 12, seed=1)
    assert a == b
    for fact in a:
        if not fact.path.endswith((".pdf", ".docx")):
            assert (tmp_path / "a" / fact.path).read_bytes() == (tmp_path / "b" / fact.path).read_bytes()


def test_facts_are_found_where_many_subjects_share_their_names_words(embedder, tmp_path):
    """At 13,000 files every name's words recur in 50 files ("Amber Heron 100482", "Amber Heron 100742", ...) and
    only 11 of 100 facts came back in the top 5: BM25 ranked the right file first but not by twice the next file
    that shared the words, so the vectors, which cannot tell the numbers apart, decided. 120 short files whose
    names cycle through 6 word pairs (20 files each) show the same in seconds; the old fusion found 0.61 here."""
    from ondevice.rag import Index

    facts = write_library(tmp_path / "lib", 120, seed=5, paragraphs=(1, 2), names=6)
    assert len({re.search(r"([A-Z]\w+ [A-Z]\w+) \d{6}", f.question)[1] for f in facts}) == 6
    with Index(tmp_path / "lib.sqlite", embedder=embedder) as index:
        index.add([tmp_path / "lib"])
        top = [[r.path for r in index.search(fact.question, 5)] for fact in facts]
    missed = [f.question for f, paths in zip(facts, top) if not any(p.endswith(f.path) for p in paths)]
    assert not missed, missed
    first = sum(paths[0].endswith(f.path) for f, paths in zip(facts, top))
    assert first >= 0.95 * len(facts), first


def test_each_subject_is_named_by_a_token_no_other_file_holds_at_20000_files():
    """Subject numbers start at 100000: a fact's number is never another fact's value (locker codes, tickets and
    booking references have at most five digits), a day, a year or a number of the prose, at any library size."""
    rng = random.Random(0)
    planted = [plant(i, rng) for i in range(20_000)]
    subjects = [subject for subject, *_ in planted]
    assert len(set(subjects)) == len(subjects)
    tokens = Counter(t for _, statement, _, _ in planted for t in set(re.findall(r"[^\W_]+", statement.lower())))
    prose = {t for s in _sentences() for t in re.findall(r"[^\W_]+", s.lower())}
    for subject, statement, question, answer in planted:
        number = subject.split()[-1]
        assert number in question and number in statement and number not in answer
        assert tokens[number] == 1 and number not in prose, subject
