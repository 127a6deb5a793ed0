"""Speed figures stated in the tables of README.md and docs/*.md, for tests/test_claims.py.

A table states speed figures when a column header names a rate or a time (t/s, tok/s, tokens/s, GB/s, ms, TTFT,
speed-up, ratio, gain, public / native). Three kinds of table are not claims measured by this project and are
left out, each recognised by its header: published measurements with a source column (`source`), predictions
(`verdict`: `ondevice predict`'s output for catalog devices) and fitted model parameters (`fit points`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEED_HEADER = re.compile(r"t/s|tok/s|tokens/s|GB/s|\bms\b|ttft|speed|ratio|\bgain\b|public / native|/s\b", re.I)
NOT_CLAIMS = re.compile(r"^source$|^verdict$|fit points", re.I)
NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class SpeedCell:
    path: str         # relative to the repository root
    line: int
    row: str          # the row's first cell
    column: str
    text: str

    @property
    def numbers(self) -> list[str]:
        return NUMBER.findall(self.text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables(text: str):
    """(line number of the header, header cells, [(line number, cells)]) of every markdown table in `text`."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|\s*$", lines[i + 1]):
            head, rows, j = _cells(lines[i]), [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                rows.append((j + 1, _cells(lines[j])))
                j += 1
            yield i + 1, head, rows
            i = j
        else:
            i += 1


def speed_cells(path: Path) -> list[SpeedCell]:
    """Every cell with a digit in a speed column of a claims table in `path`."""
    out = []
    for _, head, rows in tables(path.read_text(encoding="utf-8")):
        if any(NOT_CLAIMS.search(h) for h in head):
            continue
        columns = [k for k, h in enumerate(head) if SPEED_HEADER.search(h)]
        if head and SPEED_HEADER.search(head[0]):  # the header's first cell names the figure: every column holds it
            columns = list(range(1, len(head)))
        for line, cells in rows:
            for k in columns:
                if k < len(cells) and NUMBER.search(cells[k]):
                    out.append(SpeedCell(str(path.relative_to(ROOT)), line, cells[0], head[k], cells[k]))
    return out


def documents() -> list[Path]:
    """README.md and every docs page but the claims table itself."""
    return [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "claims.md")
