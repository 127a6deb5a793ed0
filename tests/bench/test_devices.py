"""The device catalog: coverage, a source for every number, lookup by name or alias, and the `devices` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bench.devices import find_device, list_devices, source_of, sources_table
from ondevice.cli.main import cli
from ondevice.errors import InvalidInput


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_catalog_has_at_least_30_devices_with_positive_bandwidth_and_ram():
    devices = list_devices()
    assert len(devices) >= 30
    assert len({d.name for d in devices}) == len(devices)
    for d in devices:
        assert d.bandwidth_gbps > 0 and d.ram_gb and all(r > 0 for r in d.ram_gb), d.name
        assert 1 <= d.perf_cores <= d.cpu_cores, d.name
        assert d.backends and set(d.backends) <= {"cpu", "gpu"}, d.name


def test_catalog_covers_the_families_people_run_models_on():
    names = {d.name for d in list_devices()}
    for chip in ("m1", "m2", "m3", "m4"):
        for tier in ("", "-pro", "-max"):
            assert f"apple-{chip}{tier}" in names
    for name in ("snapdragon-x-elite", "snapdragon-x-plus", "snapdragon-8-gen-3", "snapdragon-8-elite",
                 "intel-core-ultra-7-155h", "intel-core-ultra-7-258v", "intel-core-ultra-9-285k",
                 "amd-ryzen-ai-9-hx-370", "amd-ryzen-ai-max-395", "raspberry-pi-5", "amd-ryzen-7-7800x3d",
                 "amd-ryzen-9-9950x", "intel-core-i9-13900k", "intel-core-i9-14900k"):
        assert name in names


def test_every_number_names_a_source_a_derivation_or_says_unsourced():
    ids = {s.id for s in sources_table()}
    for d in list_devices():
        for what in ("bandwidth_gbps", "ram_gb", "cpu_cores", "gpu"):
            text = d.sources.get(what, "unsourced")
            assert text.startswith("unsourced") or any(i in text for i in ids), (d.name, what, text)
            if not text.startswith("unsourced"):
                assert "https://" in source_of(d, what)  # ids expand to title and URL


def test_every_source_has_a_title_and_a_url():
    for s in sources_table():
        assert s.title and s.url.startswith("https://"), s.id


def test_find_device_by_alias_any_case():
    assert find_device("M2 Max").name == "apple-m2-max"
    assert find_device("pi5").name == "raspberry-pi-5"
    assert find_device("X-ELITE").name == "snapdragon-x-elite"


def test_unknown_device_names_close_ones():
    with pytest.raises(InvalidInput) as err:
        find_device("apple-m4-maxx")
    assert "apple-m4-max" in str(err.value)


def test_devices_list_json_has_name_and_aliases():
    result = invoke("devices", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data) == len(list_devices())
    assert {"name", "aliases"} <= set(data[0])
    assert "m1" in next(d for d in data if d["name"] == "apple-m1")["aliases"]


def test_devices_alone_lists_and_info_shows_sources():
    assert invoke("devices").exit_code == 0
    result = invoke("devices", "info", "raspberry-pi-5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bandwidth_gbps"] == pytest.approx(17.07)
    assert "4267" in data["sources"]["bandwidth_gbps"]


def test_devices_info_unknown_is_one_line_exit_2():
    result = invoke("devices", "info", "nokia-3310")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown device")
