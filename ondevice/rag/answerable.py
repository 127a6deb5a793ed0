"""Does a quoted sentence answer the question, or only talk about its subject? (issue 29's "not found")

A similarity threshold tells off-topic questions from answerable ones, but not a question that asks for a property
its note does not state ("How many nights are we staying in Osaka?" beside the nights in Kyoto; "What is the code
for the front door?" beside the shed's code): the closest sentence is on topic, so it scores like an answer. These
rules read the question's focus instead, and a candidate sentence that fails one is not the answer:

- `names`: the names the question states (a capitalised word not at the start, a word with digits, a quoted term)
  appear in the sentence or its section title. A possessive name ("Ada's teacher") may be the note's subject, which
  the sentence calls "she" or "the teacher", so it may appear anywhere in the sentence's file instead; a holiday's
  name ("at New Year") may be any date in the sentence ("on 1 January").
- `answer_type`: the kind of answer the wording asks for is in the sentence: "how many/how much" a quantity (a
  number that is not part of a date), "when/which day" a date or time, "what time" a clock time, "how often" a
  frequency, "what is the code/number/password" an identifier (a token of 3+ digits, or digits mixed with letters
  or joined by hyphens), "phone number" a phone-length run of digits, "what is the name of"/"called" a capitalised
  name the question does not already state. "Who" is not typed: a name at the start of a sentence ("Jonas
  borrowed...") cannot be told from an ordinary capitalised first word.

The rules read the best sentence alone, not the quote with its neighbour (whose extra sentence often holds the very
name the question adds). Each was measured on its own on the QA set's dev and held-out splits (docs/rag.md, "Answer
quality"); both are kept. `ondevice.rag.answer.answer_extractive` answers "not found" when the best sentence fails
`check`. Pure functions: no model runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MONTHS = ("january february march april may june july august september october november december "
          "jan feb mar apr jun jul aug sep sept oct nov dec").split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday weekday weekend".split()
NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty "
                "hundred thousand million half dozen couple single double twice once").split()
# Capitalised words that are no name: the pronoun I, and ID and PIN (the kind of answer asked for).
_NOT_NAMES = {"i", "i'm", "i've", "i'd", "id", "pin"}
# A holiday named in the question may be a date in the note ("at New Year": "on 1 January").
HOLIDAYS = {"new", "year", "christmas", "easter", "eve"}

_WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*[\w]|[A-Za-z0-9]")
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b|\b\d{1,2}\s?(?:am|pm|a\.m\.|p\.m\.)|\b(?:at|before|after|from|until|till|"
                    r"by|to|between)\s+\d{1,2}(?:[:.]\d{2})?\b(?![\d.,%]|\s*(?:a|per|each|euros?|pounds?|"
                    r"dollars?|g|kg|ml|km|miles?|bar|days?|weeks?|months?|years?)\b)|\b(?:noon|midnight|"
                    r"o'clock|morning|evening|afternoon|night)\b", re.IGNORECASE)
_DATE_WORDS = re.compile(r"\b(?:" + "|".join(MONTHS + WEEKDAYS) + r")s?\b|\b(?:19|20)\d\d\b|\b\d{1,2}(?:st|nd|rd|th)\b"
                         r"|\b(?:today|tomorrow|tonight|yesterday|daily|weekly|monthly|yearly|annual|annually|"
                         r"quarter|spring|summer|autumn|winter|christmas|easter|new year|end of|beginning of|"
                         r"next week|next month|next year|last year|this year|every|each)\b", re.IGNORECASE)
_FREQUENCY = re.compile(r"\b(?:every|each|daily|weekly|fortnightly|monthly|yearly|annual|annually|once|twice|"
                        r"per|a (?:day|week|month|year))\b|\btimes? a\b", re.IGNORECASE)
_DIGITS = re.compile(r"\d")


@dataclass
class Focus:
    """What a question asks for: the names it states, and the kind of answer (`kind`, "" when any will do)."""

    question: str
    names: list[str] = field(default_factory=list)
    possessive: set[str] = field(default_factory=set)  # names written "X's": may be the note's subject
    kind: str = ""


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _strip_possessive(word: str) -> tuple[str, bool]:
    for suffix in ("'s", "’s", "s'", "s’"):
        if word.endswith(suffix):
            return word[: -len(suffix)] + ("s" if suffix[0] == "s" else ""), True
    return word, False


def question_focus(question: str) -> Focus:
    """The names and the kind of answer `question` asks for (see the module docstring)."""
    focus = Focus(question)
    q = question.strip()
    for quoted in re.findall(r"[\"“']([^\"”']{2,40})[\"”']", q):
        focus.names.append(quoted)
    words = _words(q)
    for n, word in enumerate(words):
        bare, possessive = _strip_possessive(word.strip(".,;:?!"))
        if not bare or bare.lower() in _NOT_NAMES:
            continue
        if _DIGITS.search(bare) or (n > 0 and bare[0].isupper()):
            if bare not in focus.names:
                focus.names.append(bare)
            if possessive:
                focus.possessive.add(bare)
    focus.kind = _kind(q.lower())
    return focus


def _kind(q: str) -> str:
    if re.search(r"\bphone number\b|\bphone\b.*\bnumber\b|\bnumber\b.*\bphone\b|\bmobile number\b", q):
        return "phone"
    if re.search(r"\bhow often\b", q):
        return "frequency"
    if re.search(r"\b(?:what|which) time\b|\bat what time\b|\bwhat hours?\b|\bopening hours\b", q):
        return "clock"
    if re.search(r"^(?:when|since when|until when|by when)\b|\b(?:what|which) (?:date|day|month|year|weekday)\b"
                 r"|\bin which (?:month|year)\b|\bon (?:what|which) (?:date|day)\b", q):
        return "date"
    if re.search(r"\bhow (?:many|much|long|far|old|high)\b|\bwhat (?:is |was |are )?(?:the |my )?(?:percentage|share|"
                 r"age|price|cost|fee|amount)\b", q):
        return "quantity"
    if re.search(r"\bwhat(?: is|'s| was) (?:the )?name of\b|\bwhat(?: is|'s| are)\b.*\bcalled\b", q):
        return "name"
    if re.search(r"\b(?:what|which)(?: is| are|'s)? (?:the |my |our |his |her )?(?:[\w'-]+ ){0,3}"
                 r"(?:code|number|id|pin|password|passphrase|combination|reference|extension|tag|serial|"
                 r"registration|digits)\b|\b(?:what|which) (?:code|number|pin|password|extension)\b", q):
        return "identifier"
    return ""


def _has_quantity(text: str) -> bool:
    """A number that is not only a date's day or year: "48 euros", "three nights", "2.3 bar", "5%"."""
    without_dates = re.sub(r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:" + "|".join(MONTHS) + r")\b(?:\s+\d{4})?", " ", text,
                           flags=re.IGNORECASE)
    without_dates = re.sub(r"\b(?:" + "|".join(MONTHS) + r")\s+\d{4}\b|\b(?:19|20)\d\d\b|\b\d{1,2}:\d{2}\b", " ",
                           without_dates, flags=re.IGNORECASE)
    if re.search(r"\d", without_dates):
        return True
    return bool(re.search(r"\b(?:" + "|".join(NUMBER_WORDS) + r")\b", without_dates, re.IGNORECASE))


def _has_identifier(text: str) -> bool:
    """A token of 3+ digits, or one mixing digits with letters or joined by hyphens or dots ("QX7LMP", "3-7-1-9")."""
    for token in re.findall(r"[\w.-]*\d[\w.-]*", text):
        token = token.strip(".-")
        digits = sum(ch.isdigit() for ch in token)
        if digits >= 3 or (digits and re.search(r"[A-Za-z]", token) and not re.fullmatch(r"\d+(?:st|nd|rd|th)",
                                                                                          token)) \
                or re.search(r"\d[-.]\d", token):
            return True
    return False


def _has_phone(text: str) -> bool:
    return any(sum(ch.isdigit() for ch in m) >= 6 for m in re.findall(r"\+?\d[\d ()-]{4,}\d", text))


def has_kind(kind: str, text: str, exclude=()) -> bool:
    """Whether `text` holds an answer of `kind` (see `question_focus`); an empty kind always passes. A name
    answer ("who", "what is the name of") is a capitalised word other than those in `exclude` (the question's)."""
    if kind == "quantity":
        return _has_quantity(text)
    if kind == "date":
        return bool(_DATE_WORDS.search(text) or _CLOCK.search(text))
    if kind == "clock":
        return bool(_CLOCK.search(text))
    if kind == "frequency":
        return bool(_FREQUENCY.search(text))
    if kind == "identifier":
        return _has_identifier(text)
    if kind == "phone":
        return _has_phone(text)
    if kind == "name":
        return bool(_names_in(text, exclude))
    return True


def _names_in(text: str, exclude=()) -> list[str]:
    """Capitalised words of `text` that are not a sentence's first word, a month or a weekday, nor in `exclude`."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
        for word in _words(sentence)[1:]:
            bare = _strip_possessive(word)[0]
            if bare[:1].isupper() and bare.lower().rstrip("s") not in MONTHS + WEEKDAYS \
                    and bare.lower() not in {e.lower() for e in exclude}:
                out.append(bare)
    return out


def _contains(haystack: str, name: str) -> bool:
    """`name` in `haystack` as whole words, ignoring case (a plural "Wednesdays" finds "Wednesday" too)."""
    pattern = r"(?<!\w)" + re.escape(name.lower().rstrip("s")) + r"(?:s|'s|’s)?(?!\w)"
    return bool(re.search(pattern, haystack.lower()))


@dataclass
class Verdict:
    """`check`'s result: whether the sentence passes, the question's names it lacks, and the answer kind it lacks."""

    passes: bool
    missing_names: list[str] = field(default_factory=list)
    kind_missing: str = ""


def check(focus: Focus, quote: str, heading: str = "", file_text: str = "", rules=("names", "answer_type"),
          name_scope: str = "possessive-file") -> Verdict:
    """Whether `quote` (a sentence, under section title `heading`, in a file whose text is `file_text`) can answer
    `focus`; `rules` is any of "names" and "answer_type".

    name_scope: where a name must appear: "quote" (quote and title), "file" (anywhere in the file), or
    "possessive-file" (the default: a possessive name anywhere in the file, any other in the quote or title)."""
    near = f"{heading}\n{quote}"
    missing = []
    if "names" in rules:
        for name in focus.names:
            wide = name_scope == "file" or (name_scope == "possessive-file" and name in focus.possessive)
            if _contains(near, name) or (wide and _contains(file_text, name)):
                continue
            if name.lower() in HOLIDAYS and has_kind("date", quote):
                continue
            missing.append(name)
    kind_missing = focus.kind if "answer_type" in rules and not has_kind(focus.kind, quote, focus.names) \
        else ""
    return Verdict(not missing and not kind_missing, missing, kind_missing)

