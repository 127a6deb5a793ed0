"""`ondevice bench structured` runs end to end (one schema, GGUF only): the answer validates and the row has speeds."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bench.structured_schemas import SCHEMAS
from ondevice.cli.main import cli


def test_suite_has_fifty_valid_schemas():
    import jsonschema

    assert len(SCHEMAS) == 50
    for _, _, schema in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(schema)


def test_one_schema_run_writes_a_valid_row(tmp_path):
    out = tmp_path / "rows.json"
    result = CliRunner().invoke(cli, ["bench", "structured", "--onnx", "none", "--limit", "1", "--temperatures", "0",
                                      "--max-tokens", "48", "--free-tokens", "8", "--threads", "1", "--out", str(out)])
    (row,) = json.loads(out.read_text())
    assert result.exit_code == 0 and row["valid"] == row["schemas"] == 1, result.output
    assert row["constrained_tok_s"] > 0 and row["free_tok_s"] > 0 and row["mask_ms_per_token"] > 0
    assert "| gguf:smollm2-135m | 0.0 | 1/1 (100%) |" in result.stdout
