"""`ondevice sweep`: (model, variant) cells quantised, evaluated and benched, each in its own process, on a real
local Ray cluster and on the local engine; failures retried once and reported; finished cells skipped on re-run."""

from __future__ import annotations

import json
import sys
import time

import pytest
from click.testing import CliRunner

from bench.sweep import SweepConfig, plan_cells, run_sweep
from ondevice.cli.main import cli

# Small on purpose: 2 windows of 64 tokens and -p 16 -n 8 -r 1 keep a cell at seconds of work.
CONFIG = dict(evaluate=True, bench=True, threads=1, window=64, chunks=2, n_prompt=16, n_gen=8, repetitions=1)
CLI_ARGS = ["--eval", "--bench", "-t", "1", "--window", "64", "--chunks", "2", "-p", "16", "-n", "8", "-r", "1"]


def _ray_processes() -> list:
    import psutil

    names = ("raylet", "gcs_server", "ray::", "default_worker", "dashboard", "log_monitor", "runtime_env_agent")
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            text = " ".join(child.cmdline()) or child.name()
        except psutil.Error:
            continue
        if any(n in text for n in names):
            found.append(child)
    return found


@pytest.fixture(scope="session")
def ray_cluster(isolated_store):
    """A real single-node Ray cluster on loopback with 2 CPUs, started once; its workers inherit the test store."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 30
    while _ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_processes(), "ray.shutdown() left processes behind"


@pytest.fixture(scope="module")
def corrupt_gguf(tmp_path_factory):
    """A file with the GGUF magic and nothing valid after it: found at planning, fails inside its cells."""
    path = tmp_path_factory.mktemp("corrupt") / "broken.gguf"
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    return path


@pytest.fixture(scope="module")
def ray_sweep(ray_cluster, corrupt_gguf, tmp_path_factory):
    """smollm2-135m and the corrupt file, each to gguf:Q8_0 and gguf:Q4_0, on Ray: 2 cells that work, 2 that fail."""
    out = tmp_path_factory.mktemp("sweep-ray")
    report = run_sweep(["smollm2-135m", str(corrupt_gguf)], ["gguf:Q8_0,Q4_0"], out, SweepConfig(**CONFIG),
                       engine="ray")
    return out, report


def test_ray_sweep_finishes_good_cells_and_reports_failed_ones_after_one_retry(ray_sweep):
    out, report = ray_sweep
    rows = {r.cell: r for r in report.rows}
    assert list(rows) == ["smollm2-135m--gguf-Q8_0", "smollm2-135m--gguf-Q4_0", "broken--gguf-Q8_0",
                          "broken--gguf-Q4_0"]
    for cell in ("smollm2-135m--gguf-Q8_0", "smollm2-135m--gguf-Q4_0"):
        row = rows[cell]
        assert row.status == "ok" and row.attempts == 1 and row.eval_windows == 2
        assert row.tg_tok_s > 0 and row.pp_tok_s > 0 and row.peak_rss_bytes > 0
        assert (out / "results" / f"{cell}.json").is_file()
    # Q4_0 is smaller than Q8_0 and further from the f16 reference, as llama.cpp's scoreboard has it.
    q8, q4 = rows["smollm2-135m--gguf-Q8_0"], rows["smollm2-135m--gguf-Q4_0"]
    assert q4.size_bytes < q8.size_bytes and q4.kld_mean > q8.kld_mean > 0
    for cell in ("broken--gguf-Q8_0", "broken--gguf-Q4_0"):
        row = rows[cell]
        assert row.status == "failed" and row.attempts == 2
        assert "InvalidModelFile" in row.error and "broken.gguf" in row.error
        assert not (out / "results" / f"{cell}.json").exists()
    assert [r.cell for r in report.failed] == ["broken--gguf-Q8_0", "broken--gguf-Q4_0"]


def test_sweep_merges_into_one_table_report_and_plot(ray_sweep):
    out, report = ray_sweep
    csv_lines = (out / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("cell,model,format,qtype,status") and len(csv_lines) == 5
    data = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in data["rows"]] == ["ok", "ok", "failed", "failed"]
    assert {(r["ram_gb"], r["model"]) for r in data["recommendations"]} == {
        (b, "smollm2-135m") for b in (2.0, 4.0, 8.0, 16.0)}
    assert all("smollm2-135m--gguf-Q4_0 is the smallest" in r["reason"] for r in data["recommendations"])
    md = (out / "report.md").read_text()
    assert "| smollm2-135m--gguf-Q4_0 |" in md and "## Failed cells" in md and "broken--gguf-Q8_0 (2 attempts)" in md
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.partial"))


def test_rerun_skips_finished_cells(ray_sweep):
    out, first = ray_sweep
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    result = CliRunner().invoke(cli, ["sweep", "smollm2-135m", "--to", "gguf:Q8_0,Q4_0", *CLI_ARGS,
                                      "--engine", "ray", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ran"] == [] and data["skipped"] == ["smollm2-135m--gguf-Q8_0", "smollm2-135m--gguf-Q4_0"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()} == stamps
    assert [r["kld_mean"] for r in data["rows"]] == [r.kld_mean for r in first.rows[:2]]


def test_local_engine_retries_a_failing_cell_once_and_exits_1(corrupt_gguf, tmp_path):
    out = tmp_path / "s"
    result = CliRunner().invoke(cli, ["sweep", str(corrupt_gguf), "--to", "gguf:Q4_0", "--out", str(out)])
    assert result.exit_code == 1
    assert "1 of 1 cells failed" in result.stderr
    (row,) = json.loads((out / "sweep.json").read_text())["rows"]
    assert (row["status"], row["attempts"]) == ("failed", 2) and "InvalidModelFile" in row["error"]
    assert not (out / "results").exists()


def test_changed_settings_run_the_cell_again(ray_sweep):
    from bench.sweep import load_result

    out, _ = ray_sweep
    cell = plan_cells(["smollm2-135m"], ["gguf:Q4_0"])[0]
    assert load_result(out, cell, SweepConfig(**CONFIG)) is not None
    assert load_result(out, cell, SweepConfig(**{**CONFIG, "chunks": 3})) is None


def test_local_and_ray_engines_give_identical_quality_numbers(ray_sweep, tmp_path):
    _, ray_report = ray_sweep
    local = run_sweep(["smollm2-135m"], ["gguf:Q4_0"], tmp_path, SweepConfig(**CONFIG), engine="local")
    (row,) = local.rows
    ray_row = next(r for r in ray_report.rows if r.cell == row.cell)
    assert row.status == "ok" and local.engine == "local"
    for key in ("size_bytes", "ppl", "ppl_ref", "delta_ppl", "kld_mean", "kld_p99", "same_top_pct"):
        assert getattr(row, key) == getattr(ray_row, key), key


def test_ray_engine_without_ray_installed_is_one_line_and_exit_2(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does where Ray is not installed
    result = CliRunner().invoke(cli, ["sweep", "smollm2-135m", "--to", "gguf:Q4_0", "--engine", "ray",
                                      "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --engine ray needs Ray, which is not installed (pip install 'ondevice-toolkit[sweep]')"]


@pytest.mark.parametrize("args, message", [
    (["--to", "gguf:Q9_9"], "Q9_9"),
    (["--to", "gguf:Q4_0", "--address", "127.0.0.1:6379"], "--address is the Ray cluster to use"),
    (["--to", "gguf:Q4_0", "--ram-gb", "4,x"], "GB numbers"),
    (["--to", "gguf:Q4_0", "--max-kld", "0.1"], "--max-kld needs --eval"),
])
def test_bad_sweep_arguments_fail_before_any_work(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["sweep", "smollm2-135m", *args, "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_missing_model_fails_before_any_work(tmp_path):
    result = CliRunner().invoke(cli, ["sweep", str(tmp_path / "nope.gguf"), "--to", "gguf:Q4_0",
                                      "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "no model named" in result.output
