"""Imports point down: cli -> report -> api (gradients) -> (cluster ->) (storing -> io,)
engine -> compile -> spec/lang -> diagnostics."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recur"

# What each layer (a package or module) may import from recur besides itself;
# diagnostics is everyone's leaf.
_BASE = {"recur.diagnostics"}
_FRONT = {"recur.lang", "recur.spec", *_BASE}
ALLOWED: dict[str, set[str]] = {
    "recur.diagnostics": set(),
    "recur.lang": _BASE,
    "recur.spec": _FRONT,
    "recur.compile": _FRONT,  # engines are passed down as values, never imported
    "recur.engine": {"recur.compile", "recur.lang", *_BASE},  # never the spec
    "recur.io": _BASE,
    # Dask's side; its workers write a store's lanes as a run in one process writes it
    "recur.cluster": {"recur.storing", "recur.io", "recur.engine", "recur.compile",
                      "recur.lang", *_BASE},
    "recur.storing": {"recur.engine", "recur.compile", "recur.io", *_FRONT},
    "recur.api": {"recur.cluster", "recur.storing", "recur.engine", "recur.compile",
                  "recur.io", *_FRONT},
    # gradients run beside `api` (which would grow too large holding them): the passes,
    # and the plan of where the forward states live
    "recur.checkpoints": {"recur.compile", "recur.engine", *_BASE},
    "recur.gradients": {"recur.api", "recur.checkpoints", "recur.engine", "recur.compile",
                        *_FRONT},
    "recur.report": {"recur.api", "recur.engine", "recur.compile", "recur.io", *_FRONT},
    "recur.cli": {"recur.report", "recur.api", "recur.gradients", "recur.engine", "recur.io",
                  *_FRONT},
    "recur": {"recur.api", "recur.gradients", "recur.diagnostics", "recur.spec"},
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


@pytest.mark.parametrize("path", sorted((PACKAGE / "engine").rglob("*.py")),
                         ids=lambda p: p.name)
def test_engines_read_the_program_not_the_spec(path: Path) -> None:
    """Every engine reads the typed `Program` only: no spec tree, no lookup of a node by
    its identity."""
    text = path.read_text()
    assert "id(node)" not in text and "spec.output(" not in text
