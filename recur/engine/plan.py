"""What the compiler hands the engine: closures bound to histories, and the run's shape.

The engine consumes these and nothing else: no YAML, no expression trees (a node is
carried only as an opaque object whose `span` says where an error points).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recur.compile.frame import Frame
from recur.compile.ir import Program
from recur.diagnostics import RunError, Span
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

    @property
    def shape(self) -> tuple[int, ...]:
        return self.history.shape


@dataclass(frozen=True, slots=True)
class Plan:
    outputs: tuple[OutputPlan, ...]  # in evaluation order
    steps: int
    until: Callable[[Frame], Any] | None
    until_span: Span | None
    frame: Frame
    backend: Any
    check_finite: bool


@dataclass(frozen=True, slots=True)
class Buffers:
    """The states one run of a `Program` writes, built afresh for each run: the program
    itself stays untouched, so it can run again (a fault replayed by the interpreter)."""

    histories: Mapping[str, History]
    backend: Any


def allocate(program: Program, backend: Any) -> Buffers:
    """Each output's history, its initial states in place."""
    return Buffers({
        output.name: History(backend.xp, output.shape, output.dtype, output.initial,
                             output.depth, program.steps if output.keep == "all" else None)
        for output in program.outputs
    }, backend)


def collect(program: Program, buffers: Buffers, steps: int) -> dict[str, Any]:
    """The kept outputs after `steps` steps, copied to the host (any engine's last act)."""
    to_host = buffers.backend.to_host
    arrays: dict[str, Any] = {}
    for output in program.outputs:
        history = buffers.histories[output.name]
        if output.keep == "all":
            arrays[output.name] = to_host(history.trajectory(steps))
        elif output.keep == "last":
            last = history.last(steps)
            if last is None:
                raise RunError(
                    f"output '{output.name}' has no state after 0 steps: it has no 'initial'"
                )
            arrays[output.name] = to_host(last)
    return arrays
