"""The device catalog: laptops, phones, boards and desktops people run local models on, with their public numbers.

The data ships as `bench/devices.json` (package data). Every number there names its source (an id into the
file's `sources` table, with title and URL), says how it was derived from a sourced memory type and bus width, or
says "unsourced". Bandwidth is the theoretical peak of the memory bus; how much of it llama.cpp reaches is
`bench.predict`'s calibrated efficiency, not a catalog number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from ondevice.errors import InvalidInput


@dataclass(frozen=True)
class Device:
    """One catalog entry."""

    name: str
    title: str
    kind: str                      # laptop, desktop, phone, sbc
    aliases: tuple[str, ...]
    bandwidth_gbps: float          # theoretical peak memory bandwidth, GB/s (1e9 bytes)
    ram_gb: tuple[float, ...]      # RAM options, GB
    cpu_cores: int
    perf_cores: int                # cores llama.cpp should use for decode (the performance cores)
    gpu: str | None
    npu: str | None
    backends: dict[str, str]       # "cpu" / "gpu" -> calibration class (cpu, metal, vulkan-igpu)
    sources: dict[str, str] = field(default_factory=dict)  # field -> source id, derivation or "unsourced"
    gpu_cores: int | None = None   # where the GPU's core count drives a calibrated prefill model (Apple)

    @property
    def default_backend(self) -> str:
        """The fastest calibrated backend: the GPU where one is calibrated, else the CPU."""
        return "gpu" if "gpu" in self.backends else "cpu"

    @property
    def max_ram_gb(self) -> float:
        return max(self.ram_gb)


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    url: str


@lru_cache(maxsize=1)
def _catalog() -> tuple[dict[str, Device], dict[str, Source]]:
    data = json.loads(resources.files("bench").joinpath("devices.json").read_text())
    sources = {k: Source(k, v["title"], v["url"]) for k, v in data["sources"].items()}
    devices = {}
    for d in data["devices"]:
        devices[d["name"]] = Device(d["name"], d["title"], d["kind"], tuple(d["aliases"]), float(d["bandwidth_gbps"]),
                                    tuple(float(r) for r in d["ram_gb"]), int(d["cpu_cores"]), int(d["perf_cores"]),
                                    d.get("gpu"), d.get("npu"), dict(d["backends"]), dict(d.get("sources", {})),
                                    d.get("gpu_cores"))
    return devices, sources


def list_devices() -> list[Device]:
    """Every catalog device, in catalog order."""
    return list(_catalog()[0].values())


def _names() -> dict[str, str]:
    """Lower-case name or alias -> device name."""
    table = {}
    for d in list_devices():
        table[d.name] = d.name
        for a in d.aliases:
            table[a.lower()] = d.name
    return table


THIS_MACHINE = ("this", "here", "local")


def this_machine() -> Device:
    """The machine this runs on as a CPU device: its measured read bandwidth (`ondevice.machine.bandwidth.machine_bandwidth`,
    the figure `doctor` shows; measured, not a spec peak, like the catalog's local calibration points), its RAM and
    its cores. `predict --device this` uses it."""
    from ondevice.machine.autoconfig import memory
    from ondevice.machine.bandwidth import machine_bandwidth
    from ondevice.machine.cpu import detect_cpu

    cpu, bw = detect_cpu(), machine_bandwidth()
    ram = round(memory().total_bytes / 1e9, 1)
    measured = f"measured here by ondevice.machine.bandwidth ({bw.measured_at[:10]})"
    return Device("this", f"this machine: {cpu.model}", "local", THIS_MACHINE[1:], bw.gbps, (ram,),
                  cpu.logical_cores, cpu.physical_cores, None, None, {"cpu": "cpu"},
                  {"bandwidth_gbps": measured, "ram_gb": "measured here", "cpu_cores": "measured here"})


def find_device(name: str) -> Device:
    """A device by name or alias (case-insensitive), `this` (this machine, measured: `this_machine`), or
    InvalidInput naming the closest names."""
    import difflib

    key = name.strip().lower().replace(" ", "-").replace("_", "-")
    if key in THIS_MACHINE:
        return this_machine()
    names = _names()
    if key in names:
        return _catalog()[0][names[key]]
    # Rank names and aliases by similarity, favouring those that start like the query ("m5" -> the Apple M chips).
    scored = sorted(((difflib.SequenceMatcher(None, key, n).ratio() + 0.2 * (n[:1] == key[:1]), n) for n in names),
                    reverse=True)
    close = list(dict.fromkeys(names[n] for score, n in scored if score >= 0.6))[:4]
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise InvalidInput(f"unknown device {name!r}{hint} (`ondevice devices list` shows all {len(list_devices())})")


def source_of(device: Device, what: str) -> str:
    """Where a device number comes from, with source ids expanded to 'title <url>'."""
    text = device.sources.get(what, "unsourced")
    sources = _catalog()[1]
    for sid, src in sources.items():
        if sid in text:
            text = text.replace(sid, f"{src.title} <{src.url}>", 1)
    return text


def sources_table() -> list[Source]:
    """Every public source the catalog cites."""
    return list(_catalog()[1].values())
