"""examples/serve_and_call.py runs as written: chat, stream and embeddings through the openai client."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serve_and_call.py"


def test_serves_chats_streams_and_embeds_then_shuts_down():
    # one thread: on a shared 2-core machine two spinning llama.cpp threads wait on each other (see docs/server.md)
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--threads", "1"], text=True, capture_output=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "models: ['smollm2-135m', 'minilm-l6']" in out
    assert re.search(r"^chat: .*Paris", out, re.M)
    assert re.search(r"^stream: .*Paris", out, re.M)
    cat_kitten, cat_stocks = map(float, re.search(r"cat~kitten ([\d.-]+), cat~stocks ([\d.-]+)", out).groups())
    assert "embeddings: 3 x 384" in out
    assert cat_kitten > cat_stocks
