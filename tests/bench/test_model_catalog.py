"""`ondevice models catalog`: small families per quant, sized and predicted for a device, best first."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bench.model_catalog import SPEED_TARGET, catalog, small_families


def test_small_families_only():
    from bench.families import FAMILIES, n_params_of

    names = small_families()
    assert "qwen2.5-0.5b" in names and "llama3.2-3b" in names and "llama3.1-8b" not in names
    assert all(n_params_of(FAMILIES[n]) < 5e9 for n in names)


def test_rows_answer_which_model_to_run_on_a_phone():
    title, rows = catalog("snapdragon-8-gen-3")
    assert "Snapdragon" in title
    fits = [r.fits for r in rows]
    assert fits == sorted(fits, reverse=True)  # everything that fits comes before anything that does not
    best = rows[0]
    assert best.fits and best.meets_target and best.predicted_tg_tok_s >= SPEED_TARGET
    # the best is the largest model that fits and is fast enough
    fast = [r for r in rows if r.fits and r.meets_target]
    assert best.n_params == max(r.n_params for r in fast)
    by_family = {}
    for r in rows:
        by_family.setdefault(r.family, {})[r.quant] = r.size_bytes
    for sizes in by_family.values():
        assert sizes["Q4_K_M"] < sizes["Q8_0"] < sizes["F16"]


def test_a_smaller_device_fits_less():
    _, big = catalog("apple-m4-max")
    _, small = catalog("raspberry-pi-5")
    assert sum(r.fits for r in small) <= sum(r.fits for r in big)
    assert all(r.fits for r in big)


def test_command_json_and_table():
    from bench.pull_cmd import catalog_command

    result = CliRunner().invoke(catalog_command, ["--device", "raspberry-pi-5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"][0]["fits"] and {"family", "quant", "size_bytes", "predicted_tg_tok_s"} <= set(data["rows"][0])
    table = CliRunner().invoke(catalog_command, ["--device", "raspberry-pi-5"])
    assert table.exit_code == 0 and "run here:" in table.output


def test_entry_points_declare_pull_and_catalog():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["ondevice.commands"]["pull"] == "bench.pull_cmd:pull_command"
    assert project["entry-points"]["ondevice.models_commands"]["catalog"] == "bench.pull_cmd:catalog_command"
