"""The question-focus rules of the extractive "not found" (ondevice/rag/answerable.py): for each kept rule, a sentence
that answers passes it and an on-topic sentence that does not answer fails it. Pure functions: no model runs."""

from __future__ import annotations

import pytest

from ondevice.rag.answerable import check, has_kind, question_focus

KYOTO = "The ryokan in Kyoto is booked for three nights; it has a curfew at 23:00."
SCHOOL = "# School\n\nAda's nursery is Little Acorns, open from 8:00 to 17:30.\nThe teacher is called Miss Brennan.\n"


def passes(question: str, sentence: str, heading: str = "", file_text: str = "", **kw) -> bool:
    return check(question_focus(question), sentence, heading, file_text, **kw).passes


def test_names_the_question_states_must_be_in_the_sentence_or_its_title():
    assert passes("How many nights are we staying at the Kyoto inn?", KYOTO, "Japan trip")
    verdict = check(question_focus("How many nights are we staying in Osaka?"), KYOTO, "Japan trip",
                    "Flights to Osaka on 9 October.\n" + KYOTO)
    assert not verdict.passes and verdict.missing_names == ["Osaka"]  # the file names Osaka, the sentence does not
    assert not passes("Which hotel did we book in Tokyo?", KYOTO, "Japan trip")
    assert passes("Which airline are we flying to Japan with?", "Flights to Osaka on 9 October with Finnair.",
                  "Japan trip")  # the section title holds the name
    # words with digits and quoted terms are names too
    assert question_focus('What is my fastest 10k time at "the park"?').names == ["the park", "10k"]
    assert not passes("What is my fastest 10k time?", "Best for 5 km is 22:10.")


def test_a_possessive_name_may_be_the_notes_subject_anywhere_in_its_file():
    question = "What is the name of Ada's teacher?"
    sentence = "The teacher is called Miss Brennan."
    assert question_focus(question).possessive == {"Ada"}
    assert passes(question, sentence, "School", SCHOOL)
    assert not passes(question, sentence, "School", SCHOOL, name_scope="quote")
    assert not passes(question, sentence, "School", SCHOOL.replace("Ada's", "Her"))


def test_what_is_not_a_name_and_a_holiday_may_be_a_date():
    assert question_focus("What is my membership ID with the health insurer?").names == []
    assert question_focus("When is Grandma Rose's big birthday celebration?").names == ["Grandma", "Rose"]
    assert passes("What did the electricity meter read at New Year?", "Meter reading on 1 January was 48213.")
    assert not passes("What did the electricity meter read at New Year?", "The supplier is Octopus.")


@pytest.mark.parametrize("question, kind, answers, does_not", [
    ("How many nights are we staying at the Kyoto inn?", "quantity", KYOTO, "The ryokan in Kyoto has a curfew."),
    ("How much did the Skoda cost?", "quantity", "The Skoda cost 4,500 in 2019.",
     "The Skoda Fabia is due its MOT on 21 July."),  # a date's day is not an amount
    ("What is the price per kWh on my tariff?", "quantity", "The price is 24.5p per kWh.",
     "The tariff is fixed until October."),
    ("When is the car's next oil change due?", "date", "The next oil change is due in March.",
     "Last oil change at 61,200 miles, at the garage on Mill Lane."),
    ("When can I phone the helpline?", "date", "The hotline is open weekdays from 8 to 18.",
     "The hotline number is on the card."),
    ("What time does the gym open on weekdays?", "clock", "The gym opens at 6:30 on weekdays.",
     "Classes fill up: book spin on Friday via the app at least a day before."),
    ("How often is the recycling emptied?", "frequency", "Recycling goes out every second Tuesday.",
     "Recycling goes in the blue bin."),
    ("What is the code for the front door?", "identifier", "The front door code is 4-2-4-2.",
     "A spare front door key is with Mrs. Patel at number 14."),
    ("What is the reservation code for the flight?", "identifier", "Flights on 9 October, booking code QX7LMP.",
     "Flights to Osaka on 9 October with Finnair."),
    ("What is my brother Sam's phone number?", "phone", "Sam's number is 07700 900123.",
     "Lent my brother Sam 400 for the van repair on 5 March."),
    ("What is the name of Ada's best friend?", "name", "Ada's best friend is Lily.",
     "Niece Ada was born on 30 June 2021."),  # the question's own name and a month are not the answer
    ("What is the guest wifi network called?", "name", "Guest network name: Linden-Guest, passphrase x.",
     "The guest network has no password."),
])
def test_the_answer_type_the_wording_asks_for_must_be_in_the_sentence(question, kind, answers, does_not):
    focus = question_focus(question)
    assert focus.kind == kind
    assert check(focus, answers, file_text="Sam Ada Osaka").passes, answers
    verdict = check(focus, does_not, file_text="Sam Ada Osaka")
    assert not verdict.passes and verdict.kind_missing == kind, does_not


def test_questions_without_a_typed_focus_pass_on_any_sentence():
    for question in ("Which antibiotic am I allergic to?", "Who did the last boiler maintenance?",
                     "Where is the broadband router kept?", "What car do I drive?"):
        assert question_focus(question).kind == "", question
    assert has_kind("", "anything") and not has_kind("identifier", "number 14")
