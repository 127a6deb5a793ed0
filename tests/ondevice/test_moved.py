"""The 0.2 module paths (`ondevice.sampling`, `ondevice.store`, ...) still import, as the same modules, with a
DeprecationWarning that names the new path (ondevice/moved.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import ondevice
from ondevice.moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_imports_the_module_at_its_new_path_with_a_warning(old):
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new and module.__name__ == MOVED[old] and module.__spec__.name == MOVED[old]


def test_from_an_old_path_gives_the_same_objects():
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "import ondevice\n"                      # importing the package itself warns about nothing
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "from ondevice.store import resolve\n"
            "from ondevice.sampling import SamplingParams\n"
            "assert resolve is ondevice.resolve and SamplingParams is ondevice.SamplingParams\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_old_attribute_of_the_package_is_the_module():
    vars(ondevice).pop("structured", None)  # an earlier `import ondevice.structured` binds the attribute itself
    with pytest.warns(DeprecationWarning, match="ondevice.structured moved to ondevice.decoding.structured"):
        assert ondevice.structured is importlib.import_module("ondevice.decoding.structured")
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        ondevice.no_such_module  # noqa: B018
