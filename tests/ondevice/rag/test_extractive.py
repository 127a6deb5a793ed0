"""Extractive answers: the embedded SmolLM2 picks a retrieved sentence by constrained decoding at temperature 0;
the answer quotes it verbatim with its exact file and lines, or says it is not in the files.

The QA set in tests/ondevice/rag/answers/ (30 notes, 48 answerable and 12 unanswerable questions) is measured in
full by `ondevice rag eval` (docs/rag.md); here a handful of its questions, so the suite stays quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice.errors import InvalidInput
from ondevice.rag.answer import NOT_IN_FILES, resolve_mode
from ondevice.rag.extractive import _units, candidates, choice_schema

ANSWERS = Path(__file__).parent / "answers"
QA = [json.loads(line) for line in (ANSWERS / "qa.jsonl").read_text().splitlines()]
# Questions the model gets right at temperature 0 (it does not get them all: docs/rag.md has the full rates), so
# that a change in candidates, ranking or the choice prompt shows up here as a different quote.
ASKED = ["What make and model is the central heating unit?", "What is the reservation code for the flight to Osaka?",
         "How much does the music streaming subscription cost each month?", "Who is the cat's vet?"]
WRONG = "What is my membership ID with the health insurer?"  # the model picks another line of the note
UNANSWERABLE = ["What is my blood type?", "Who borrowed my camping tent?"]


@pytest.fixture(scope="module")
def answers_index(embedder, tmp_path_factory):
    from ondevice.rag import Index

    index = Index(tmp_path_factory.mktemp("answers") / "answers.sqlite", embedder=embedder)
    index.add([ANSWERS / "notes"])
    yield index
    index.close()


def assert_verbatim(text: str, path: str, start_line: int, end_line: int) -> None:
    """`text` is the file's own text at lines start..end: it begins on the first and ends on the last."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    region = "\n".join(lines[start_line - 1:end_line])
    assert text in region, (text, path, start_line, end_line)
    assert text.split("\n")[0] in lines[start_line - 1] and text.split("\n")[-1] in lines[end_line - 1]
    # it starts on start_line, and ends on end_line (not a neighbour's lines)
    offset = region.index(text)
    assert offset <= len(lines[start_line - 1]) and offset + len(text) >= len(region) - len(lines[end_line - 1])


def by_question(question: str) -> dict:
    return next(item for item in QA if item["question"] == question)


def test_units_keep_wrapped_sentences_whole_and_split_lists_and_labels():
    lines = ["# Title", "", "Biscuit gets his tablet on the first day of every month,",
             "wrapped in cheese. Dr. Haas agrees.", "Member number: HC-1", "Plan: basic", "- one item",
             "- another item", "", "Title", "=====", "Last line."]
    assert _units(lines, 1) == [
        ("Biscuit gets his tablet on the first day of every month,\nwrapped in cheese.", 3, 4),
        ("Dr. Haas agrees.", 4, 4), ("Member number: HC-1", 5, 5), ("Plan: basic", 6, 6),
        ("- one item", 7, 7), ("- another item", 8, 8), ("Last line.", 12, 12)]


def test_every_candidate_of_every_chunk_is_the_files_own_text_at_its_lines(answers_index):
    """Not only the quotes the model picked: any sentence it could pick is byte-identical to the file's text."""
    store = answers_index.store
    ids = [row[0] for row in store.conn.execute("SELECT id FROM chunks")]
    from ondevice.rag.retrieve import SearchResult

    rows = store.chunk_rows(ids)
    sources = [SearchResult(r.path, r.start_line, r.end_line, r.page, 0.0, r.text, r.id) for r in rows.values()]
    found = candidates(sources)
    assert len(found) >= 90 and all(c.verbatim for c in found)
    for candidate in found:
        assert_verbatim(candidate.text, candidate.path, candidate.start_line, candidate.end_line)
    # every fact of the QA set is inside one candidate (else no choice could ever contain it)
    texts = [" ".join(c.text.split()).lower() for c in found]
    for item in QA:
        if item["answer"]:
            assert any(item["answer"].lower() in t for t in texts), item


def test_a_changed_file_gives_no_stale_quotes(tmp_path, embedder):
    from ondevice.rag import Index

    note = tmp_path / "notes" / "a.md"
    note.parent.mkdir()
    note.write_text("# A\n\nThe shed code is 3-7-1-9.\nThe gate code is 4242.\n")
    with Index(tmp_path / "i.sqlite", embedder=embedder) as index:
        index.add([note.parent])
        hits = index.search("shed code", k=1)
    note.write_text("# A\n\nThe shed code is 1-1-1-1.\nThe gate code is 4242.\n")  # not re-indexed
    assert [c.text for c in candidates(hits)] == ["The gate code is 4242."]


def test_the_schema_allows_only_the_candidate_numbers_or_none():
    assert choice_schema(3) == {"enum": ["1", "2", "3", "none"]}


@pytest.mark.parametrize("question", ASKED)
def test_extractive_answer_quotes_the_sentence_with_the_fact_at_its_exact_lines(answers_index, smollm2,
                                                                              question):
    item = by_question(question)
    streamed = []
    answer = answers_index.ask(question, model=smollm2, mode="extractive", on_text=streamed.append)
    assert answer.mode == "extractive" and answer.found, answer.answer
    assert "".join(streamed) == answer.answer
    [quote] = answer.quotes
    assert item["answer"].lower() in " ".join(quote.text.split()).lower(), answer.answer
    assert answer.answer == f"{quote.text} [1]"
    [citation] = answer.citations
    assert citation.path.endswith(item["source"]) and quote.path == citation.path
    expected_span = str(quote.start_line) if quote.start_line == quote.end_line else \
        f"{quote.start_line}-{quote.end_line}"
    assert citation.span == expected_span
    assert_verbatim(quote.text, str(ANSWERS / "notes" / item["source"]), quote.start_line, quote.end_line)


def test_a_wrong_pick_is_still_quoted_verbatim_from_its_file(answers_index, smollm2):
    answer = answers_index.ask(WRONG, model=smollm2, mode="extractive")
    [quote] = answer.quotes  # (at temperature 0 the 135M model picks the plan line above the member number)
    assert quote.path.endswith("health/insurance.md") and answer.citations[0].path == quote.path
    assert_verbatim(quote.text, str(ANSWERS / "notes" / "health/insurance.md"), quote.start_line, quote.end_line)


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_a_question_the_files_do_not_answer_is_not_found(answers_index, smollm2, question):
    answer = answers_index.ask(question, model=smollm2, mode="extractive")
    assert not answer.found and answer.quotes == [] and answer.citations == []
    assert answer.answer in (NOT_IN_FILES, "I could not find anything relevant to this question in the indexed files.")


def test_lead_in_is_one_line_before_the_verbatim_quote(answers_index, smollm2):
    answer = answers_index.ask(ASKED[1], model=smollm2, mode="extractive", lead_in=True)
    assert answer.lead_in and "\n" not in answer.lead_in
    assert answer.answer == f"{answer.lead_in}\n{answer.quotes[0].text} [1]"


def test_auto_mode_is_extractive_for_the_embedded_model_and_bad_modes_are_errors(smollm2):
    assert resolve_mode("auto", smollm2) == "generative"  # until extractive measures ahead (answer.py)
    assert resolve_mode("extractive", smollm2) == "extractive"
    assert resolve_mode("generative", smollm2) == "generative"
    assert resolve_mode("auto", smollm2, remote="remote:x@http://localhost:1") == "generative"
    with pytest.raises(InvalidInput, match="unknown answer mode"):
        resolve_mode("quote", smollm2)
    with pytest.raises(InvalidInput, match="remote"):
        resolve_mode("extractive", smollm2, remote="remote:x@http://localhost:1")


def test_the_qa_set_has_40_answerable_and_10_unanswerable_questions_that_parse(tmp_path):
    from ondevice.rag.evaluate import contains_fact, read_qa

    items = read_qa(ANSWERS / "qa.jsonl")
    assert sum(i.answerable for i in items) >= 40 and sum(not i.answerable for i in items) >= 10
    for item in items:
        if item.answerable:  # the fact is in its source (line breaks aside), and the question does not give it away
            assert contains_fact((ANSWERS / "notes" / item.source).read_text(), item.answer), item
            assert not contains_fact(item.question, item.answer), item
    assert contains_fact("on the first day of every\nmonth", "First day of every month")
    assert contains_fact("size 9", ["nine", "9"]) and not contains_fact("size 8", "9")
