"""What the compiler hands the engine: closures bound to histories, and the run's shape.

The engine consumes these and nothing else: no YAML, no expression trees (a node is
carried only as an opaque object whose `span` says where an error points).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recur.compile.frame import Frame
from recur.diagnostics import Span
from recur.engine.history import History


@dataclass(frozen=True, slots=True)
class OutputPlan:
    name: str
    step: Callable[[Frame], Any]
    history: History
    dtype: str
    keep: str  # "all", "last" or "none"
    span: Span  # the step expression, for runtime errors
    check_range: tuple[int, int] | None  # integer bounds when the step's dtype is wider


@dataclass(frozen=True, slots=True)
class Plan:
    outputs: tuple[OutputPlan, ...]  # in evaluation order
    steps: int
    until: Callable[[Frame], Any] | None
    until_span: Span | None
    frame: Frame
    backend: Any
    check_finite: bool
