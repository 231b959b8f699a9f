"""Imports point down: cli -> api -> compiler -> analysis/values -> spec -> lang -> engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recur"

# What each module (or package) may import from recur; diagnostics is everyone's leaf.
ALLOWED: dict[str, set[str]] = {
    "recur.diagnostics": set(),
    "recur.engine": {"recur.engine", "recur.diagnostics"},
    "recur.io": {"recur.io", "recur.diagnostics"},
    "recur.lang": {"recur.lang", "recur.engine", "recur.diagnostics"},
    "recur.spec": {"recur.lang", "recur.diagnostics"},
    "recur.analysis": {"recur.spec", "recur.lang", "recur.diagnostics"},
    "recur.values": {"recur.spec", "recur.lang", "recur.engine", "recur.diagnostics"},
    "recur.compiler": {"recur.analysis", "recur.values", "recur.spec", "recur.lang",
                       "recur.engine", "recur.diagnostics"},
    "recur.codegen": {"recur.compiler", "recur.spec", "recur.lang", "recur.diagnostics"},
    "recur.lanegen": {"recur.codegen", "recur.compiler", "recur.spec", "recur.diagnostics"},
    "recur.cudagen": {"recur.codegen", "recur.lanegen", "recur.compiler", "recur.spec",
                      "recur.lang", "recur.diagnostics"},
    "recur.linear": {"recur.codegen", "recur.compiler", "recur.spec", "recur.lang",
                     "recur.diagnostics"},
    "recur.dispatch": {"recur.codegen", "recur.cudagen", "recur.lanegen", "recur.linear",
                       "recur.compiler",
                       "recur.spec", "recur.lang", "recur.engine", "recur.diagnostics"},
    "recur.api": {"recur.dispatch", "recur.analysis", "recur.compiler", "recur.values",
                  "recur.spec", "recur.lang", "recur.engine", "recur.diagnostics"},
    "recur.explain": {"recur.dispatch", "recur.compiler", "recur.spec", "recur.diagnostics"},
    "recur.progress": set(),
    "recur.runopts": {"recur.dispatch", "recur.api", "recur.io", "recur.engine",
                      "recur.diagnostics", "recur.progress"},
    "recur.meta": {"recur.runopts", "recur.io", "recur.diagnostics"},
    "recur.plot": {"recur.runopts", "recur.api", "recur.io", "recur.diagnostics"},
    "recur.diff": {"recur.io", "recur.diagnostics"},
    "recur.cli": {"recur.api", "recur.io", "recur.engine", "recur.diagnostics",
                  "recur.runopts", "recur.explain", "recur.meta", "recur.plot",
                  "recur.diff"},
    "recur": {"recur.api", "recur.diagnostics", "recur.spec"},
    "recur.__main__": {"recur.cli"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    for candidate in sorted(ALLOWED, key=len, reverse=True):
        if module == candidate or module.startswith(candidate + "."):
            return candidate
    raise AssertionError(f"{module} belongs to no layer in ALLOWED")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "recur":
            found.update(f"recur.{alias.name}" for alias in node.names)  # submodules
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "recur" or name.startswith("recur.")}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_imports_point_down(path: Path) -> None:
    module = _module_name(path)
    layer = _layer(module)
    for imported in _imports(path):
        target = _layer(imported)
        assert target == layer or target in ALLOWED[layer], (
            f"{path.relative_to(PACKAGE.parent)} imports {imported} "
            f"({layer} may import only {sorted(ALLOWED[layer])})"
        )
