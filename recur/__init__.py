"""recur: evaluate recurrences written as YAML specs, on NumPy or CuPy.

The names below are imported when first used (PEP 562), so that `import recur`, which
the `recur` command does before anything else, costs nothing: NumPy comes later.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recur.api import Report, Result, RunOptions, check, load, run, run_with
    from recur.diagnostics import RecurError, render
    from recur.gradients import Gradients, grad
    from recur.spec import Spec

__version__ = "0.1.0"

__all__ = ["Gradients", "RecurError", "Report", "Result", "RunOptions", "Spec", "check", "grad",
           "load", "render", "run", "run_with"]

_HOMES = {"RecurError": "recur.diagnostics", "render": "recur.diagnostics", "Spec": "recur.spec",
          "Report": "recur.api", "Result": "recur.api", "check": "recur.api", "load": "recur.api",
          "run": "recur.api", "RunOptions": "recur.api", "run_with": "recur.api",
          "grad": "recur.gradients", "Gradients": "recur.gradients"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'recur' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
