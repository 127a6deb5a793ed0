"""Stored responses of the Responses API (`store`, `previous_response_id`, GET / DELETE /v1/responses/{id}).

A stored response keeps what a conversation needs to go on: the response object (for GET) and the conversation
that led to it as chat messages, the answer included (without the request's `instructions`, which OpenAI does not
carry over to the next response). A request naming it as `previous_response_id` continues from those messages;
its prompt then starts with the previous turn's prompt, so the KV state the engine filed after that turn (the
server's prefix cache, or a batch slot) is reused and only the new part is evaluated: `usage.input_tokens_details.
cached_tokens` shows it. Bounded in count, least recently used evicted; in memory, gone when the server stops.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredResponse:
    """One stored response: the object GET returns and the conversation a continuation starts from."""

    response: dict
    messages: tuple[dict, ...]


class ResponseStore:
    """At most `capacity` stored responses by id; a get or a put makes one the most recently used."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, rid: str, response: dict, messages: list[dict]) -> None:
        with self._lock:
            self._items[rid] = StoredResponse(response, tuple(messages))
            self._items.move_to_end(rid)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, rid: str) -> StoredResponse | None:
        with self._lock:
            item = self._items.get(rid)
            if item is not None:
                self._items.move_to_end(rid)
            return item

    def delete(self, rid: str) -> bool:
        with self._lock:
            return self._items.pop(rid, None) is not None
