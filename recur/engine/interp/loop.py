"""The interpreter: runs a `Plan` step by step, the reference every engine must match.

Semantics, as a plain loop (`keep: all` outputs, no faults):

    for t in range(steps):
        for x in outputs_in_dependency_order:
            x[t] = cast(step_x(t, taps of earlier steps, x'[t] of outputs already done))
        if until is given and until(t): stop, step t included

Results are copied to the host once, at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy

from recur.compile.frame import Fault
from recur.compile.ir import Output
from recur.diagnostics import EXIT_USAGE, RunError
from recur.engine.plan import OutputPlan, Plan


@dataclass(frozen=True, slots=True)
class Outcome:
    """The host arrays of the kept outputs, and how the run ended."""

    arrays: dict[str, numpy.ndarray]
    steps_run: int
    stopped_by: str  # "steps" or "until"


PROGRESS_EVERY = 4096  # steps between progress reports: rare enough to cost nothing


def run_plan(plan: Plan, progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Run every step of `plan`; `progress(done, total)` is called every few thousand steps.

    Raises:
        RunError: an integer fault, a non-finite value under `--check`, a state whose
            shape changes, or any failure of an operation, with the output and `t`.
    """
    steps_run, stopped_by = run_steps(plan, progress)
    return Outcome(collect(plan, steps_run), steps_run, stopped_by)


def run_steps(plan: Plan, progress: Callable[[int, int], None] | None = None
              ) -> tuple[int, str]:
    """`run_plan` short of copying the results out: the steps run and what stopped them."""
    steps_run, stopped_by = plan.steps, "steps"
    frame = plan.frame
    stores = [(output, _store(plan, output)) for output in plan.outputs]
    until = plan.until
    output: OutputPlan | None = None
    chunk = PROGRESS_EVERY if progress is not None else max(plan.steps, 1)
    with plan.backend.errstate():
        try:
            for start in range(0, plan.steps, chunk):
                for t in range(start, min(start + chunk, plan.steps)):
                    frame.t = t
                    for output, store in stores:
                        store(t, output.step(frame))
                    output = None
                    if until is not None and until(frame):
                        steps_run, stopped_by = t + 1, "until"
                        break
                if stopped_by == "until":
                    break
                if progress is not None:
                    progress(min(start + chunk, plan.steps), plan.steps)
        except Fault as fault:
            raise _fault_error(fault, output, frame.t) from None
        except RunError:
            raise
        except (ArithmeticError, ValueError, TypeError, IndexError, MemoryError) as exc:
            where = f"the step of output '{output.name}'" if output else "'until'"
            span = output.span if output else plan.until_span
            raise RunError(f"evaluating {where} failed at t={frame.t}: {exc}", span) from None
    return steps_run, stopped_by


def _store(plan: Plan, output: OutputPlan) -> Any:
    """The function that casts, checks and writes one step's value of `output`."""
    write = output.history.writer()
    xp = plan.backend.xp
    check_finite = plan.check_finite and numpy.dtype(output.dtype).kind in "fc"
    bounds = output.check_range
    shape = output.history.shape
    read_back = output.history.reader(0)

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
            ) from None
        if check_finite:
            finite = xp.isfinite(read_back(plan.frame))
            if not bool(finite.all()):
                raise not_finite(output, t, xp.logical_not(finite))

    def _check_bounds(t: int, value: Any, bounds: tuple[int, int]) -> None:
        bad = (value < bounds[0]) | (value > bounds[1])
        if bool(bad.any()):
            raise RunError(
                f"integer overflow: the step of output '{output.name}' gives a value outside "
                f"{output.dtype} at t={t}{_lane(bad, shape)}", output.span,
            )

    return store


def not_finite(output: OutputPlan | Output, t: int, bad: Any) -> RunError:
    """The error of `--check` for `output` at step `t`, `bad` marking its lanes."""
    return RunError(f"output '{output.name}' is not finite at t={t}"
                    f"{_lane(bad, output.shape)}", output.span)


def _lane(bad: Any, shape: tuple[int, ...]) -> str:
    """` (lane i)` for the first bad lane of a state that has lanes."""
    if not shape:
        return ""
    flat = numpy.asarray(bad.get() if hasattr(bad, "get") else bad)
    where = numpy.argwhere(numpy.broadcast_to(flat, shape))
    if not len(where):
        return ""
    lane = tuple(int(i) for i in where[0])
    return f" (lane {lane[0] if len(lane) == 1 else lane})"


def _fault_error(fault: Fault, output: OutputPlan | None, t: int) -> RunError:
    where = f"the step of output '{output.name}'" if output else "'until'"
    shape = output.history.shape if output else ()
    lane = "" if fault.mask is None else _lane(fault.mask, shape)
    return RunError(f"{fault.kind} in {where} at t={t}{lane}", fault.node.span)


def collect(plan: Plan, steps: int) -> dict[str, numpy.ndarray]:
    """The kept outputs after `steps` steps, copied to the host (any engine's last act)."""
    to_host = plan.backend.to_host
    arrays: dict[str, numpy.ndarray] = {}
    for output in plan.outputs:
        if output.keep == "all":
            arrays[output.name] = to_host(output.history.trajectory(steps))
        elif output.keep == "last":
            last = output.history.last(steps)
            if last is None:
                raise RunError(
                    f"output '{output.name}' has no state after 0 steps: it has no 'initial'"
                )
            arrays[output.name] = to_host(last)
    return arrays
