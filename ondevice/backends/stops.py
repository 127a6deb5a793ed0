"""Stop strings in streamed text, shared by the text-generation backends."""

from __future__ import annotations

from typing import Sequence


class StopMatcher:
    """Finds stop strings in streamed text, holding back only what could still become a stop string."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.sent = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add decoded text; return (text safe to emit now, whether a stop string was hit)."""
        self.text += piece
        if not self.stops:
            out, self.sent = self.text[self.sent:], len(self.text)
            return out, False
        window_start = max(0, self.sent - max(len(s) for s in self.stops))
        hits = [i for i in (self.text.find(s, window_start) for s in self.stops) if i >= 0]
        if hits:
            cut = min(hits)
            out, self.sent = self.text[self.sent:cut], cut
            return out, True
        hold = 0
        for stop in self.stops:  # longest suffix of the text that is a prefix of some stop string
            for n in range(min(len(stop) - 1, len(self.text)), 0, -1):
                if self.text.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        safe = max(self.sent, len(self.text) - hold)
        out, self.sent = self.text[self.sent:safe], safe
        return out, False

    def flush(self) -> str:
        out, self.sent = self.text[self.sent:], len(self.text)
        return out
