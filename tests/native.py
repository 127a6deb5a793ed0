"""llama.cpp's own tools for tests: used when already built in the user's store, else the test is skipped.

Building them takes minutes (`make native-tools`), too slow for the suite. The lookup runs when this module is
imported, during collection, before `isolated_store` points ONDEVICE_HOME at a temporary store; the fixture-side
helper then links the built folder into that temporary store, so code under test finds it the normal way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quantize.native_tools import find_tools

BUILT = find_tools()
SKIP_REASON = ("llama.cpp's own tools are not built for this libllama (minutes, once): run `make native-tools` "
               "or `ondevice bench native --build`")


def link_built_tools(store: Path):
    """Make the already-built tools visible in the test store `store`; skip the test if there are none."""
    if BUILT is None:
        pytest.skip(SKIP_REASON)
    folder = BUILT.bin_dir.parent
    link = Path(store) / "native" / folder.name
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(folder, target_is_directory=True)
    tools = find_tools()
    assert tools is not None and tools.bin_dir.resolve() == BUILT.bin_dir.resolve()
    return tools


def _find_converter():
    from quantize.native_tools import find_converter

    try:
        return find_converter()
    except Exception:  # llama-cpp-python missing: the tests that need it skip
        return None


CONVERTER = _find_converter()
CONVERTER_SKIP = ("llama.cpp's convert_hf_to_gguf.py is not unpacked for this libllama: run `make native-tools` "
                  "or `ondevice bench native --build`")


def link_converter(store: Path) -> Path:
    """Make the already-unpacked llama.cpp converter visible in the test store `store`; skip if there is none."""
    if CONVERTER is None:
        pytest.skip(CONVERTER_SKIP)
    link = Path(store) / "native" / CONVERTER.name
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(CONVERTER, target_is_directory=True)
    return link
