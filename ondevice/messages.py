"""Chat messages as the backends take them: the one normaliser every front end's messages go through.

`check_messages` is called once per request by `ondevice.request.build_request` (and by sessions for their
history): known roles, content as one string (OpenAI's text parts joined; image and audio parts refused by name).
"""

from __future__ import annotations

from typing import Sequence

from ondevice.errors import InvalidInput


def _content_text(i: int, content) -> str:
    """A message's content as text: a string, or OpenAI's list of parts ([{"type": "text", "text": ...}])."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("image_url", "image", "input_image", "input_audio", "file"):
                raise InvalidInput(f"message {i}: content part {j} is {kind!r}; this runtime reads text only")
            else:
                raise InvalidInput(f"message {i}: content part {j} must be {{'type': 'text', 'text': ...}}")
        return "".join(texts)
    raise InvalidInput(f"message {i} must be a dict with string 'role' and 'content' (a string or text parts)")


def check_messages(messages: Sequence[dict]) -> list[dict]:
    """Chat messages as the backends take them: known roles, content as one string (text parts joined)."""
    if not messages:
        raise InvalidInput("messages is empty: give at least one {'role': ..., 'content': ...}")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidInput(f"message {i} must be a dict with string 'role' and 'content'")
        if message["role"] not in ("system", "user", "assistant", "tool"):
            raise InvalidInput(f"message {i}: unknown role {message['role']!r}")
        checked.append({"role": message["role"], "content": _content_text(i, message.get("content"))})
    return checked
