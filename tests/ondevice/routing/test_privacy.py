"""The router's default privacy detector: what it finds, and what it must not flag."""

import pytest

from ondevice.routing.privacy import default_detector, find_sensitive


def kinds(text: str, **kw) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in find_sensitive(text, **kw)]


@pytest.mark.parametrize("text, kind, value", [
    ("Email me at jane.doe@example.com please", "email", "jane.doe@example.com"),
    ("Call +1 415-555-2671 tomorrow", "phone", "+1 415-555-2671"),
    ("card 4111 1111 1111 1111 exp 12/29", "card", "4111 1111 1111 1111"),
    ("pay to GB82 WEST 1234 5698 7654 32 today", "iban", "GB82 WEST 1234 5698 7654 32"),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD ok", "secret",
     "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"),
    ("aws AKIAIOSFODNN7EXAMPLE", "secret", "AKIAIOSFODNN7EXAMPLE"),
    ("password = 'hunter2secret'", "secret", "hunter2secret"),
])
def test_finds_each_kind_of_sensitive_data(text, kind, value):
    assert (kind, value) in kinds(text)


@pytest.mark.parametrize("text", [
    "What is the capital of France?",
    "Between 1999-2004 the order 12345678 shipped twice.",
    "def compute_average(values): return sum(values) / len(values)",
    "Summarise the history of the Roman empire in three sentences.",
    "4111 1111 1111 1112 fails the Luhn check",
])
def test_ordinary_text_is_not_flagged(text):
    assert find_sensitive(text) == []


def test_private_marker_marks_the_whole_text():
    detector = default_detector(private_markers=["#private"])
    findings = detector("notes #private: my therapist said")
    assert [f.kind for f in findings] == ["private"]


def test_redacted_form_never_contains_the_value():
    text = "mail jane.doe@example.com"
    finding = find_sensitive(text)[0]
    assert "jane.doe@example.com" not in finding.redacted(text)


def test_known_miss_names_and_addresses_are_not_detected():
    # Documented limitation: no NER model, so a name and a street address pass through.
    assert find_sensitive("John Smith lives at 12 Baker Street") == []
