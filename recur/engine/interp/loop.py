"""The interpreter: runs a `Program` step by step, the reference every engine must match.

Semantics, as a plain loop (`keep: all` outputs, no faults):

    for t in range(steps):
        for x in outputs_in_dependency_order:
            x[t] = cast(step_x(t, taps of earlier steps, x'[t] of outputs already done))
        if until is given and until(t): stop, step t included

Each run builds the closures of the program's trees (`recur.compile.closures`) bound
to that run's buffers; results are copied to the host once, at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from recur.compile.closures import Builder, Closure
from recur.compile.frame import Frame
from recur.compile.ir import Output, Program
from recur.diagnostics import EXIT_USAGE, Fault, RunError
from recur.engine.plan import Buffers
from recur.lang.host import to_host

PROGRESS_EVERY = 4096  # steps between progress reports: rare enough to cost nothing


class _RunBindings:
    """The leaves of a step in the run: params, `t`, `steps`, the outputs' histories and
    the sequences' rows."""

    def __init__(self, program: Program, buffers: Buffers) -> None:
        self.program = program
        self.buffers = buffers

    def param(self, name: str) -> Closure:
        value = self.program.params[name]
        return lambda frame: value

    def time(self) -> Closure:
        return lambda frame: frame.t

    def steps(self) -> Closure:
        steps = self.program.steps
        return lambda frame: steps

    def tap(self, output: str, lag: int) -> Closure:
        return self.buffers.histories[output].reader(lag)

    def sequence(self, name: str, row: int) -> Closure:
        array = self.program.sequences[name]
        return lambda frame: array[frame.t + row]

    def state_shape(self, output: str) -> tuple[int, ...]:
        return self.program.output(output).shape if output else ()


def run_steps(program: Program, buffers: Buffers,
              progress: Callable[[int, int], None] | None = None) -> tuple[int, str]:
    """Run the steps of `program` (`start` to `end`) into `buffers`: the steps run (all
    of them, counted from 0) and what stopped them;
    `progress(done, total)` is called every few thousand steps.

    Raises:
        RunError: an integer fault, a non-finite value under `check_finite`, a state
            whose shape changes, or any failure of an operation, with the output and `t`.
    """
    builder = Builder(buffers.backend, _RunBindings(program, buffers), slots=program)
    frame = Frame()
    steps = [(output, builder.build(output.step), _store(program, buffers, output, frame))
             for output in program.outputs]
    until = builder.build(program.until) if program.until is not None else None
    end = program.end
    steps_run, stopped_by = end, "steps"
    output: Output | None = None
    chunk = PROGRESS_EVERY if progress is not None else max(end - program.start, 1)
    with buffers.backend.errstate():
        try:
            for start in range(program.start, end, chunk):
                for t in range(start, min(start + chunk, end)):
                    frame.t = t
                    for output, step, store in steps:  # noqa: B007 (the handlers name it)
                        store(t, step(frame))
                    output = None
                    if until is not None and until(frame):
                        steps_run, stopped_by = t + 1, "until"
                        break
                if stopped_by == "until":
                    break
                if progress is not None:
                    progress(min(start + chunk, end), program.steps)
        except Fault as fault:
            raise _fault_error(fault, output, frame.t, program.first_lane) from None
        except RunError:
            raise
        except (ArithmeticError, ValueError, TypeError, IndexError, MemoryError) as exc:
            where = f"the step of output '{output.name}'" if output else "'until'"
            span = output.span if output else program.until_span
            raise RunError(f"evaluating {where} failed at t={frame.t}: {exc}", span,
                           output=output.name if output else None, t=frame.t) from None
    return steps_run, stopped_by


def _store(program: Program, buffers: Buffers, output: Output, frame: Frame) -> Any:
    """The function that casts, checks and writes one step's value of `output`."""
    history = buffers.histories[output.name]
    write = history.writer()
    xp = buffers.backend.xp
    check_finite = program.check_finite and numpy.dtype(output.dtype).kind in "fc"
    bounds = output.check_range
    shape, first = output.shape, program.first_lane
    read_back = history.reader(0)

    def store(t: int, value: Any) -> None:
        if bounds is not None:
            _check_bounds(t, xp.asarray(value), bounds)
        try:
            write(t, value)
        except ValueError:
            got = tuple(getattr(value, "shape", ()))
            raise RunError(
                f"the state of output '{output.name}' changes shape at t={t}: "
                f"{shape} before, {got} now", output.span, exit_code=EXIT_USAGE,
                output=output.name, t=t,
            ) from None
        if check_finite:
            finite = xp.isfinite(read_back(frame))
            if not bool(finite.all()):
                raise not_finite(output, t, xp.logical_not(finite), first)

    def _check_bounds(t: int, value: Any, bounds: tuple[int, int]) -> None:
        bad = (value < bounds[0]) | (value > bounds[1])
        if bool(bad.any()):
            lane = _first_lane(bad, shape, first)
            raise RunError(
                f"integer overflow: the step of output '{output.name}' gives a value outside "
                f"{output.dtype} at t={t}{_lane_words(lane)}", output.span,
                output=output.name, t=t, lane=lane,
            )

    return store


def not_finite(output: Output, t: int, bad: Any, first: int = 0) -> RunError:
    """The error of `check_finite` for `output` at step `t`, `bad` marking its lanes (of
    a chunk whose lanes start at `first`)."""
    lane = _first_lane(bad, output.shape, first)
    return RunError(f"output '{output.name}' is not finite at t={t}{_lane_words(lane)}",
                    output.span, output=output.name, t=t, lane=lane)


def _first_lane(bad: Any, shape: tuple[int, ...], first: int) -> tuple[int, ...] | None:
    """The index of the first bad lane (C order) of a state that has lanes, in the whole
    sweep: a chunk's lanes start at `first` (`Program.first_lane`)."""
    if not shape:
        return None
    where = numpy.argwhere(numpy.broadcast_to(to_host(bad), shape))
    if not len(where):
        return None
    return (int(where[0][0]) + first, *(int(i) for i in where[0][1:]))


def _lane_words(lane: tuple[int, ...] | None) -> str:
    """` (lane i)`, or ` (lane (i, j))` for a grid of lanes, for a message."""
    if lane is None:
        return ""
    return f" (lane {lane[0] if len(lane) == 1 else lane})"


def _fault_error(fault: Fault, output: Output | None, t: int, first: int) -> RunError:
    where = f"the step of output '{output.name}'" if output else "'until'"
    shape = output.shape if output else ()
    lane = None if fault.mask is None else _first_lane(fault.mask, shape, first)
    return RunError(f"{fault.kind} in {where} at t={t}{_lane_words(lane)}", fault.node.span,
                    output=output.name if output else None, t=t, lane=lane)

