"""With --rag-index: /v1/rag/query answers with citations, and a chat can opt in to grounding."""

from __future__ import annotations

import httpx
import pytest

from tests.ondevice.server.conftest import NOTES, rag_available

pytestmark = pytest.mark.skipif(not rag_available(), reason="ondevice.rag is not installed")


def test_rag_query_answers_from_the_note_and_cites_it(server):
    response = httpx.post(server.base_url + "/v1/rag/query", timeout=120,
                          json={"query": "How often does my puppy need his pill?", "k": 2, "max_tokens": 64})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "first day of every month" in body["answer"]
    assert body["citations"][0]["source"].startswith("[1] ")
    assert "pets/biscuit.md" in body["citations"][0]["source"]


def test_rag_query_extractive_mode_quotes_the_note_verbatim_with_its_lines(server):
    response = httpx.post(server.base_url + "/v1/rag/query", timeout=120,
                          json={"query": "What is the guest wifi passphrase?", "k": 2, "mode": "extractive"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "extractive" and body["found"] is True
    [quote] = body["quotes"]
    assert quote["text"] == "Router passphrase for the guest wifi: sunflower-meadow-42."
    assert quote["path"].endswith("home/network.md") and quote["start_line"] == quote["end_line"] == 3
    assert NOTES["home/network.md"].splitlines()[2] == quote["text"]
    assert body["answer"] == quote["text"] + " [1]" and body["citations"][0]["source"] == quote["source"]
    assert quote["source"].endswith("home/network.md:3")
    bad = httpx.post(server.base_url + "/v1/rag/query", json={"query": "x", "mode": "quote"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "mode"


def test_chat_can_opt_in_to_grounding(client):
    question = [{"role": "user", "content": "What is the guest wifi passphrase?"}]
    grounded = client.chat.completions.create(model="smollm2-135m", messages=question, temperature=0, max_tokens=64,
                                              extra_body={"rag": {"k": 2}})
    assert "sunflower-meadow-42" in grounded.choices[0].message.content
    assert "home/network.md" in grounded.model_extra["citations"][0]["source"]
    plain = client.chat.completions.create(model="smollm2-135m", messages=question, temperature=0, max_tokens=48)
    assert "sunflower-meadow-42" not in plain.choices[0].message.content


def test_rag_query_can_rerank_and_refuses_unknown_fields(server):
    body = {"query": "How often does my puppy need his pill?", "k": 2, "mode": "extractive"}
    plain = httpx.post(server.base_url + "/v1/rag/query", json=body, timeout=120).json()
    reranked = httpx.post(server.base_url + "/v1/rag/query", json={**body, "rerank": True}, timeout=300)
    assert reranked.status_code == 200, reranked.text
    assert "first day of every month" in reranked.json()["answer"] and "first day of every month" in plain["answer"]
    assert "pets/biscuit.md" in reranked.json()["citations"][0]["source"]
    misspelt = httpx.post(server.base_url + "/v1/rag/query", json={**body, "re_rank": True}, timeout=30)
    assert misspelt.status_code == 400 and "re_rank" in misspelt.text


def test_empty_rag_query_is_400(server):
    response = httpx.post(server.base_url + "/v1/rag/query", json={"query": ""}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "query"
