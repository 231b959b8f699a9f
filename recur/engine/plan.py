"""One run of a `Program`: the states it writes, built afresh for each run, and the
kept outputs collected from them at the end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recur.compile.ir import Program
from recur.diagnostics import RunError
from recur.engine.history import History
from recur.lang.keep import of, per_step

if TYPE_CHECKING:  # the protocol names `Buffers` in turn
    from recur.engine.protocol import Engine, Progress


@dataclass(frozen=True, slots=True)
class Buffers:
    """The states one run of a `Program` writes, built afresh for each run: the program
    itself stays untouched, so it can run again (a fault replayed by the interpreter)."""

    histories: Mapping[str, History]
    backend: Any


def allocate(program: Program, backend: Any, block: int | None = None) -> Buffers:
    """Each output's history, its initial states in place before `program.start`; for a
    run streamed in blocks of `block` steps, an `every K` keep holds a block's rows."""
    return Buffers({
        output.name: History(backend.xp, output.shape, output.dtype, output.initial,
                             output.depth, output.keep, program.steps, program.start,
                             None if block is None else block // max(of(output.keep).n, 1) + 1)
        for output in program.outputs
    }, backend)


def collect(program: Program, buffers: Buffers, steps: int) -> dict[str, Any]:
    """The kept outputs after `steps` steps, copied to the host (any engine's last act)."""
    to_host = buffers.backend.to_host
    arrays: dict[str, Any] = {}
    for output in program.outputs:
        history = buffers.histories[output.name]
        if output.keep == "none":
            continue
        if per_step(output.keep):
            # the run is over: a ring's rows are not written again
            arrays[output.name] = to_host(history.window(program.start, steps, final=True))
        else:
            last = history.last(steps)
            if last is None:
                raise RunError(
                    f"output '{output.name}' has no state after 0 steps: it has no 'initial'"
                )
            arrays[output.name] = to_host(last)
    return arrays


@dataclass(frozen=True, slots=True)
class Outcome:
    """The host arrays of the kept outputs, and how the run ended."""

    arrays: dict[str, Any]
    steps_run: int
    stopped_by: str  # "steps" or "until"


def run_on(engine: Engine, program: Program, backend: Any,
           progress: Progress | None = None) -> Outcome:
    """One run of `program` on `engine`, into fresh buffers, its results on the host."""
    buffers = allocate(program, backend)
    steps_run, stopped_by = engine.run(program, buffers, progress)
    return Outcome(collect(program, buffers, steps_run), steps_run, stopped_by)
