"""The Responses API's store: bounded, least recently used evicted (through the server: test_protocols.py)."""

from ondevice.server.response_store import ResponseStore


def test_the_least_recently_used_response_is_evicted_first():
    store = ResponseStore(2)
    store.put("a", {"id": "a"}, [{"role": "user", "content": "1"}])
    store.put("b", {"id": "b"}, [])
    assert store.get("a").messages == ({"role": "user", "content": "1"},)  # a is now the most recently used
    store.put("c", {"id": "c"}, [])
    assert store.get("b") is None and store.get("a").response == {"id": "a"} and len(store) == 2
    assert store.delete("a") and not store.delete("a") and store.get("a") is None


def test_capacity_zero_keeps_nothing():
    store = ResponseStore(0)
    store.put("a", {}, [])
    assert store.get("a") is None and len(store) == 0
