"""`rag ask --remote`: retrieved sources with sensitive data never leave the device."""

import pytest

from ondevice.rag import Index

NOTES = {
    "garden.md": "The tomatoes in the garden are watered every Tuesday morning with the blue hose.",
    "contacts.md": "The plumber for the garden tap is Bob, reach him at bob.plumber@example.com or +1 415-555-2671.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    with Index(folder / "idx.sqlite", threads=1) as idx:
        idx.add([folder])
        yield idx


def test_sensitive_sources_are_withheld_from_the_remote(index, smollm2, remote_model, proxy):
    answer = index.ask("When are the garden tomatoes watered?", model=smollm2, remote=remote_model, max_tokens=24)
    sent = proxy.sent_text()
    assert "bob.plumber@example.com" not in sent and "555-2671" not in sent
    assert answer.found and answer.routed_to == "remote" and "tomatoes" in sent  # the clean note went out
    assert all(w.path.endswith("contacts.md") for w in answer.withheld)


def test_a_sensitive_question_is_answered_on_the_device(index, smollm2, remote_model, proxy):
    answer = index.ask("Who is bob.plumber@example.com?", model=smollm2, remote=remote_model, max_tokens=16)
    assert answer.routed_to == "local" and "privacy" in answer.route_reason
    assert proxy.requests == []
