"""The map of packages in README holds: a package imports only those listed above it."""

from __future__ import annotations

import ast
from pathlib import Path

import logmr

ROOT = Path(logmr.__file__).parent
FOUNDATIONS = {"errors", "wire", "timeutil", "config", "files", "private", "heap"}
# README's order; the foundations come first, the command line last
LAYERS = [FOUNDATIONS, {"gearman"}, {"mapfn"}, {"jobs"}, {"ship"}, {"store"}, {"reduce"},
          {"client"}, {"cli", "__main__"}]


def layer_of(part: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part in names)


def imports_of(path: Path) -> set[str]:
    """The logmr modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("logmr"):
            if node.module != "logmr":
                found.add(node.module)
            else:  # from logmr import wire: the modules among the names
                found.update(f"logmr.{a.name}" for a in node.names
                             if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("logmr"))
    return found


def test_every_module_is_on_the_map() -> None:
    for path in ROOT.glob("*"):
        if path.name == "__init__.py" or path.name.startswith((".", "__pycache__")):
            continue
        layer_of(path.stem)  # StopIteration if README's map misses it


def test_no_package_imports_one_listed_below_it() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts == ("__init__",):
            continue
        mine = layer_of(parts[0])
        for module in imports_of(path):
            target = module.split(".")[1] if "." in module else None
            if target is not None and layer_of(target) > mine:
                wrong.append(f"{'/'.join(parts)} imports {module}")
    assert wrong == []


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from logmr.client.plan import discover\n")
    assert imports_of(bad) == {"logmr.client.plan"}
    assert layer_of("client") > layer_of("store")
