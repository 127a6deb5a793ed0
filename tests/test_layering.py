"""The house rules between packages: the runtime (`ondevice`) at the bottom, `quantize` on it, `bench` on both.

`ondevice` imports nothing from `quantize` or `bench` (not by import statement, not by a "module:function" string);
`quantize` does not import `bench`; and neither tool uses a `_private` name of `ondevice`. The tools' commands and
the HF-folder converter reach the runtime through entry points (ondevice/plugins.py), as a third party would.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("quantize", "bench")
# A "module:attr" or dotted-module string naming a tool: how a runtime would import one behind an import's back.
TOOL_STRING = re.compile(r"^(?:quantize|bench)(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?$")


def _names_a_tool_module(text: str) -> bool:
    """True for "quantize.materialize:to_runnable" or "bench.suite"; False for prose such as "bench.md"."""
    if not TOOL_STRING.match(text) or ("." not in text and ":" not in text):
        return False
    module = ROOT / text.partition(":")[0].replace(".", "/")
    return module.with_suffix(".py").is_file() or (module / "__init__.py").is_file()


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_modules(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every import statement, at any depth (lazy imports inside functions too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_runtime_imports_no_tool():
    offences = []
    for path in _sources("ondevice"):
        tree = ast.parse(path.read_text(), str(path))
        for line, module, _ in _imported_modules(tree):
            if _top(module) in TOOLS:
                offences.append(f"{path.relative_to(ROOT)}:{line}: import {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _names_a_tool_module(node.value):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert offences == [], offences


def test_quantize_does_not_import_bench():
    offences = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in _sources("quantize")
                for line, module, _ in _imported_modules(ast.parse(path.read_text())) if _top(module) == "bench"]
    assert offences == [], offences


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("package", TOOLS)
def test_tools_use_only_public_runtime_names(package):
    """No `from ondevice.x import _y`, no `ondevice._x` module, no `module._y` on an imported ondevice module."""
    offences = []
    for path in _sources(package):
        tree = ast.parse(path.read_text())
        runtime_aliases: set[str] = set()
        for line, module, names in _imported_modules(tree):
            if _top(module) != "ondevice":
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            offences += [f"{where}: {module}" for part in module.split(".") if _private(part)]
            offences += [f"{where}: {module}.{name}" for name in names if _private(name)]
        for node in ast.walk(tree):  # names bound to ondevice modules: `import ondevice.x as y`, `from ondevice import x`
            if isinstance(node, ast.Import):
                runtime_aliases |= {(a.asname or a.name).split(".")[0] for a in node.names if _top(a.name) == "ondevice"}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _top(node.module) == "ondevice":
                runtime_aliases |= {a.asname or a.name for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                base = node.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in runtime_aliases:
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offences == [], offences


RUNTIME_ONLY = """
import pkgutil, sys
import ondevice
from ondevice.cli.main import cli

for info in pkgutil.walk_packages(ondevice.__path__, "ondevice."):
    if info.name.endswith("__main__"):
        continue  # it runs the CLI
    try:
        __import__(info.name)
    except ImportError:
        pass  # an optional extra not installed here; what matters is what the others pull in
try:
    cli(["run", "--help"])
except SystemExit:
    pass
print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & {"quantize", "bench"}))
"""


def test_importing_the_whole_runtime_and_its_cli_loads_no_tool():
    proc = subprocess.run([sys.executable, "-c", RUNTIME_ONLY], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "LOADED []"


def _documented_public_names() -> dict[str, set[str]]:
    """The table "Public names of `ondevice`" in docs/ARCHITECTURE.md: module -> names."""
    table: dict[str, set[str]] = {}
    for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines():
        match = re.match(r"^\| `(ondevice[\w.]*)` \| (.+) \|$", line)
        if match:
            table[match.group(1)] = set(re.findall(r"`(\w+)`", match.group(2)))
    return table


def test_the_documented_public_names_exist_and_are_public():
    import importlib

    table = _documented_public_names()
    assert {"ondevice", "ondevice.model", "ondevice.models.store", "ondevice.models.memory", "ondevice.files"} <= set(table)
    missing = [f"{module}.{name}" for module, names in table.items() for name in sorted(names)
               if _private(name) or not hasattr(importlib.import_module(module), name)]
    assert missing == []


@pytest.mark.parametrize("package", TOOLS)
def test_tools_use_only_documented_runtime_names(package):
    """Every runtime name the tools import is in docs/ARCHITECTURE.md's table (add it there to use a new one)."""
    table = _documented_public_names()
    undocumented = []
    for path in _sources(package):
        for line, module, names in _imported_modules(ast.parse(path.read_text())):
            if _top(module) == "ondevice" and names:
                undocumented += [f"{path.relative_to(ROOT)}:{line}: {module}.{name}" for name in names
                                 if name not in table.get(module, set())]
    assert undocumented == [], "document these in docs/ARCHITECTURE.md section 3 (or stop using them)"


# --- floors inside the runtime ----------------------------------------------------------------------------------
def _runtime_modules() -> dict[str, Path]:
    """ondevice's modules by dotted name (packages by their own name)."""
    modules = {}
    for path in _sources("ondevice"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return modules


def _runtime_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The ondevice modules `path` imports at run time, lazily too (imports under `if TYPE_CHECKING:` are for type
    checkers only and do not count)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(branch.test) for stmt in branch.body for node in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if _top(a.name) == "ondevice"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _top(node.module) == "ondevice":
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
    resolved = set()
    for name in found:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        resolved.add(name)
    return resolved


def _floors() -> dict[str, int]:
    """docs/ARCHITECTURE.md's floor table: module path -> floor number."""
    floors = {}
    for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines():
        match = re.match(r"^\| (\d) \| [^|]+ \| [^|]+ \| (.+) \|$", line)
        if match:
            for path in re.findall(r"`(ondevice/[\w/]+\.py)`", match.group(2)):
                floors[path] = int(match.group(1))
    return floors


def test_every_runtime_module_has_a_floor_in_the_architecture_doc():
    floors = _floors()
    paths = {str(p.relative_to(ROOT)) for p in _runtime_modules().values()}
    assert sorted(paths - set(floors)) == [], "add these to docs/ARCHITECTURE.md's floor table"
    assert sorted(set(floors) - paths) == [], "the floor table names modules that no longer exist"


def test_every_module_of_a_sub_package_sits_on_one_floor():
    by_package: dict[str, set[int]] = {}
    for path, floor in _floors().items():
        package = str(Path(path).parent)
        if package != "ondevice":  # the top-level modules are foundations (floor 0) or public objects (floor 5)
            by_package.setdefault(package, set()).add(floor)
    assert {package: floors for package, floors in by_package.items() if len(floors) > 1} == {}


def test_the_repository_uses_no_0_2_module_path():
    """ondevice/moved.py keeps `ondevice.decoding.sampling` & co importable for users' code; ours imports the new paths."""
    from ondevice.moved import MOVED

    offences = []
    for package in ("ondevice", "quantize", "bench", "tests", "examples"):
        for path in _sources(package):
            for line, module, names in _imported_modules(ast.parse(path.read_text())):
                used = [module] + [f"{module}.{name}" for name in names]
                offences += [f"{path.relative_to(ROOT)}:{line}: {name}" for name in used if name in MOVED
                             and path.name != "test_moved.py"]
    assert offences == []


def test_runtime_modules_import_only_their_floor_or_below():
    floors, modules = _floors(), _runtime_modules()
    floor_of = {name: floors.get(str(path.relative_to(ROOT)), 9) for name, path in modules.items()}
    upward = [f"{name} (floor {floor_of[name]}) imports {dep} (floor {floor_of[dep]})"
              for name, path in modules.items() for dep in sorted(_runtime_imports(path, modules))
              if dep != name and floor_of[dep] > floor_of[name]]
    assert upward == []


def test_the_runtime_has_no_import_cycle():
    modules = _runtime_modules()
    graph = {name: _runtime_imports(path, modules) - {name} for name, path in modules.items()}
    done: set[str] = set()
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycles.append(" -> ".join(trail[trail.index(name):] + [name]))
            return
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, trail + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []
