"""Every speed figure the README and the docs state in a table appears in docs/claims.md, in that page's section,
where the claim's command, date, machine and spread are given (tests/claims_tables.py says what counts)."""

from __future__ import annotations

import re

import pytest

from tests.claims_tables import ROOT, documents, speed_cells, tables

CLAIMS = ROOT / "docs" / "claims.md"


def sections() -> dict[str, str]:
    """docs/claims.md cut at its `## <page>` headings: page path -> that section's text."""
    out, name = {}, None
    for line in CLAIMS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return out


def _has_number(text: str, number: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text) is not None


def test_the_parser_finds_speed_tables_and_leaves_out_predictions_and_published_points():
    devices = (ROOT / "docs" / "devices.md").read_text(encoding="utf-8")
    heads = [head for _, head, _ in tables(devices)]
    assert any("verdict" in head for head in heads) and any("source" in head for head in heads)
    assert speed_cells(ROOT / "docs" / "devices.md") == []  # predictions and cited measurements only
    cells = speed_cells(ROOT / "docs" / "bench.md")
    assert cells and all(c.numbers for c in cells)


@pytest.mark.parametrize("page", [p for p in documents() if speed_cells(p)], ids=lambda p: p.name)
def test_every_speed_figure_in_a_table_is_in_the_claims_table(page):
    rel = str(page.relative_to(ROOT))
    section = sections().get(rel)
    assert section is not None, f"docs/claims.md has no '## {rel}' section"
    missing = [f"{c.path}:{c.line} {c.row!r} {c.column}: {n}" for c in speed_cells(page) for n in c.numbers
               if not _has_number(section, n)]
    assert not missing, "figures stated but not in docs/claims.md:\n" + "\n".join(missing)


def test_every_claims_section_says_how_to_reproduce_it():
    for name, text in sections().items():
        for block in text.split("\n### ")[1:]:
            assert "- command:" in block and "- date:" in block and "machine:" in block and "- spread:" in block, \
                f"{name}: {block.splitlines()[0]}"
