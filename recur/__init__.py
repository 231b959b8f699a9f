"""recur: evaluate recurrences written as YAML specs, on NumPy or CuPy."""

from __future__ import annotations

from recur.api import Report, Result, check, load, run
from recur.diagnostics import RecurError, render
from recur.spec import Spec

__version__ = "0.1.0"

__all__ = ["RecurError", "Report", "Result", "Spec", "check", "load", "render", "run"]
