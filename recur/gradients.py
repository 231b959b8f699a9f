"""`recur.grad`: gradients through time of a run, by a backward run on the same engines.

The forward run keeps every state the backward pass reads (and the numbers its random
calls drew); `recur.compile.backward` turns the program into its adjoint, which any
engine runs like a spec; the gradients are then summed to the shapes the values were
given in. Where the stored states would not fit (or with `checkpoints=N`), the forward
run keeps only N snapshots and each segment is run again just before the backward
pass needs it (`recur.checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy

from recur import api
from recur.checkpoints import Plan, memory_plan
from recur.compile import backward, ir
from recur.compile.backward import Reach, Source
from recur.compile.lower import Compiled, lower_loop
from recur.compile.upstream import Upstream, fit
from recur.diagnostics import UsageError, did_you_mean, option
from recur.engine.memory import check_outputs_fit
from recur.spec import Spec


@dataclass(frozen=True)
class Gradients(api.NamedArrays):
    """One gradient per `wrt` name, in that order, shaped as the value was given."""

    arrays: dict[str, numpy.ndarray]
    objective: float  # J: the sum of output `of` as a run writes it
    of: str
    truncate: int
    steps_run: int
    stopped_by: str
    engine: str
    device: str
    seed: int
    plan: Plan  # where the forward states were kept


def grad(
    spec: Spec | str | Path,
    *,
    of: str,
    wrt: Sequence[str] | None = None,
    truncate: int = -1,
    checkpoints: int | None = None,
    steps: int | None = None,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    device: str = "cpu",
    last: bool = False,
    check: bool = False,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "auto",
    seed: int | None = None,
) -> Gradients:
    """The gradient of J, the sum of output `of` as `run` would keep it, by each value
    named in `wrt` (params, sequences, outputs' initials; default: every float param).

    `truncate` is Theano's `truncate_gradient`: only the last `truncate` steps run pass
    anything back (-1: all). `checkpoints` keeps that many snapshots of the forward
    states and runs the segments between them again (default: only where storing them
    all would take too much memory). The other keywords are `run`'s.

    Raises:
        RecurError: a bad spec or argument (exit_code 2), or a failed evaluation (1).
    """
    if not isinstance(spec, Spec):
        spec = api.load(spec)
    _check_numbers(truncate, checkpoints)
    _check_of(spec, of)
    compiled = api.prepare(spec, steps=steps, params=params, inputs=inputs, device=device,
                           last=last, check=check, seed=seed)
    gradient = plan_gradient(spec, compiled, of=of, wrt=wrt, truncate=truncate,
                             checkpoints=checkpoints, params=params, inputs=inputs)
    with api.sourced(spec):
        return _Pass(compiled, gradient, engine, progress, spec).run()


@dataclass(frozen=True, slots=True)
class GradientPlan:
    """What `grad` would do, for `recur explain --of`: J, by what, and the memory plan."""

    of: str
    wrt: tuple[str, ...]
    truncate: int
    plan: Plan
    upstream: Upstream  # the values made from others: gradients flow back through them
    reached: tuple[str, ...]  # what the backward pass gives a gradient of: `wrt`, and
    # the values made from them

    def lines(self) -> list[str]:
        reach = "all steps" if self.truncate == -1 else f"the last {self.truncate}"
        return [f"gradient of sum({self.of}) by {', '.join(self.wrt)}, through {reach}:",
                f"  forward states: {self.plan.words()}"]


def plan_gradient(spec: Spec, compiled: Compiled, *, of: str, wrt: Sequence[str] | None,
                  truncate: int = -1, checkpoints: int | None = None,
                  params: Mapping[str, Any] | None = None,
                  inputs: Mapping[str, Any] | None = None) -> GradientPlan:
    """The checks `grad` makes of its arguments, and how it would keep the forward
    states, without running anything; `params` and `inputs` as the run was given them
    (values given as arrays are made from nothing)."""
    _check_numbers(truncate, checkpoints)
    _check_of(spec, of)
    with api.sourced(spec):
        names = _wrt(spec, compiled, of, wrt)
    upstream = Upstream(spec, api.overrides_of(spec, params or {}), inputs or {})
    reached = tuple(name for name in upstream.reached(names)
                    if name in names or _differentiable(compiled, name))
    recording, _ = recording_program(compiled.program)
    return GradientPlan(of, names, truncate,
                        memory_plan(recording, checkpoints, _room(compiled.backend)),
                        upstream, reached)


class _Pass:
    """The forward run that keeps what the backward one reads, then the backward run."""

    def __init__(self, compiled: Compiled, gradient: GradientPlan, engine: str,
                 progress: Callable[[int, int], None] | None, spec: Spec) -> None:
        self.compiled = compiled
        self.gradient = gradient
        self.plan = gradient.plan
        self.spec = spec
        self.reverse = spec.reverse  # sequences are walked from their end
        self.program = compiled.program
        self.backend = compiled.backend
        self.of = gradient.of
        self.wrt = gradient.reached  # the backward pass's; `gradient.wrt` the caller's
        self.truncate = gradient.truncate
        self.engine = engine
        self.progress = progress

    def run(self) -> Gradients:
        program, plan = self.program, self.plan
        recording, draws = recording_program(program)
        check_outputs_fit({"the forward states of the gradient": plan.memory}, self.backend)
        forward: _Stored | _Checkpointed = (
            _Checkpointed(self, recording, draws, plan) if plan.checkpointed
            else _Stored(self, recording, draws))
        transform = backward.Backward(program, self.of, self.wrt, forward.T, self.truncate,
                                      forward.lengths)
        reached = self._backward(transform, forward.sources_for,
                                 plan.windows(forward.T, transform.steps), forward.T)
        totals = self.gradient.upstream.carried_back(reached, self._values(), self.backend)
        arrays = {name: numpy.asarray(totals[name]) for name in self.gradient.wrt}
        return Gradients(arrays, forward.objective, self.of, self.truncate, forward.T,
                         forward.stopped_by, forward.engine, program.device, program.seed,
                         plan)

    def _backward(self, transform: backward.Backward,
                  sources_for: Callable[[Reach], Mapping[tuple[str, Any], Source]],
                  windows: list[tuple[int, int]], T: int) -> dict[str, numpy.ndarray]:
        """The backward loop, window by window, each starting from the states the one
        before ended with; the gradients."""
        carried: dict[str, Any] = {}
        sequences = {name: self._sequence_zeros(name) for name in self.wrt
                     if name in self.program.sequences}
        products = {part.output: 0.0 for parts in transform.params.values() for part in parts
                    if part.by is not None}
        for first, stop in windows:
            window = transform.window(first, stop, sources_for(transform.reach(first, stop)))
            looped = self._lowered(window, carried)
            result, _ = api.execute(looped, self.backend, self.engine,
                                    self.reporter(self.program.steps + first))
            for name, total in sequences.items():
                for part in transform.sequence_parts.get(name, []):
                    _add_rows(total, result.arrays[part.output], first, part.rows, T)
            for parts in transform.params.values():
                for part in parts:
                    if part.by is not None:  # sum over steps of column * row
                        columns = numpy.asarray(result.arrays[part.output])
                        rows = numpy.asarray(result.arrays[part.by])
                        products[part.output] = products[part.output] + columns.T @ rows
            carried = _states_after(looped, result.arrays, self.backend)
        finals = {name: rows[-1] for name, rows in carried.items()}
        finals.update(products)
        return {name: self._gradient(name, transform, finals, sequences) for name in self.wrt}

    def _lowered(self, window: backward.Window, carried: Mapping[str, Any]) -> ir.Program:
        """A window of the backward loop as a `Program`: its state-free sub-expressions
        swept for the interpreter, which makes their rows when it reads them; a compiled
        kernel computes them in its loop (`recur.compile.sweeps`)."""
        params = {**self.program.params, backward.FIRST_STEP: window.first}
        return lower_loop(window.outputs, self.backend, params, window.sequences,
                          window.steps, carried)

    def reporter(self, offset: int) -> Callable[[int, int], None] | None:
        """A run's progress as part of one bar: the forward steps, then the backward
        ones, each run counting from `offset` (runs again of a segment are not shown)."""
        report = self.progress
        if report is None:
            return None
        total = 2 * max(self.program.steps, 1)
        return lambda done, _: report(min(offset + done, total), total)

    def _values(self) -> dict[str, Any]:
        """The params, and the sequences as given, on the host: what the values were
        made from."""
        to_host = self.backend.to_host
        values = {name: value if numpy.isscalar(value) else to_host(value)
                  for name, value in self.program.params.items()}
        for name, rows in self.program.sequences.items():
            walked = to_host(rows)
            values[name] = walked[::-1] if self.reverse else walked
        return values

    def _sequence_zeros(self, name: str) -> numpy.ndarray:
        walked = numpy.asarray(self.backend.to_host(self.program.sequences[name]))
        return numpy.zeros(walked.shape, _float(walked.dtype))

    def _gradient(self, name: str, transform: backward.Backward, finals: Mapping[str, Any],
                  sequences: Mapping[str, numpy.ndarray]) -> numpy.ndarray:
        """One gradient from the backward loop's final states (and the sequences' rows),
        summed to the shape the value was given in."""
        program = self.program
        if name in program.params:
            value = numpy.asarray(self.backend.to_host(program.params[name]))
            total = numpy.zeros(value.shape, _float(value.dtype))
            for part in transform.params.get(name, []):
                if part.output in finals:
                    total += fit(finals[part.output], value.shape)
            return total
        if name in sequences:
            return sequences[name][::-1].copy() if self.reverse else sequences[name]
        summary = next(o for o in self.compiled.outputs if o.name == name)
        assert summary.initial_shape is not None
        state, dtype = summary.initial_shape[1:], _float(numpy.dtype(summary.dtype))
        rows = [fit(finals[capture], state) if capture is not None and capture in finals
                else numpy.zeros(state, dtype)
                for capture in transform.initials.get(name, [])]
        depth = program.output(name).depth
        if depth == 0:
            return numpy.zeros(state, dtype)
        stacked = numpy.stack(rows).astype(dtype)
        return stacked if depth > 1 else stacked[0]


class _Stored:
    """The forward run keeping every state the backward pass reads."""

    def __init__(self, run: _Pass, recording: ir.Program, draws: Mapping[int, str]) -> None:
        program, backend = run.program, run.backend
        outcome, self.engine = api.execute(recording, backend, run.engine, run.reporter(0))
        self.T, self.stopped_by = outcome.steps_run, outcome.stopped_by
        trajectories = {o.name: _with_states_before(o, outcome.arrays[o.name], backend)
                        for o in program.outputs}
        self.objective = _objective(program.output(run.of), trajectories[run.of])
        self.sources: dict[tuple[str, Any], Source] = {
            ("output", name): Source.whole(rows) for name, rows in trajectories.items()}
        self.sources.update({("draw", site): Source.whole(outcome.arrays[name])
                             for site, name in draws.items()})
        self.sources.update({("sequence", name): Source.whole(backend.to_host(rows))
                             for name, rows in program.sequences.items()})
        self.lengths = {key: source.length for key, source in self.sources.items()}

    def sources_for(self, reach: Reach) -> Mapping[tuple[str, Any], Source]:
        return self.sources


class _Checkpointed:
    """The forward run in segments, keeping a snapshot of the states each one starts
    from; a segment is run again from its snapshot when the backward pass reaches it."""

    def __init__(self, run: _Pass, recording: ir.Program, draws: Mapping[int, str],
                 plan: Plan) -> None:
        self.run, self.recording, self.draws, self.plan = run, recording, draws, plan
        self.program = run.program
        self.snapshots: dict[int, dict[str, numpy.ndarray]] = {
            0: {o.name: _with_states_before(o, None, run.backend) for o in recording.outputs}}
        of = self.program.output(run.of)
        self.objective = 0.0
        step, end, self.stopped_by, self.engine = 0, recording.steps, "steps", run.engine
        while step < end:
            stop = min(step + plan.segment, end)
            kept = {of.name: stop - step} if of.keep == "all" else {}
            arrays, steps_run, self.stopped_by, self.engine = self._segment(step, stop, kept,
                                                                            shown=True)
            if of.keep == "all":
                self.objective += float(numpy.sum(arrays[of.name], dtype=numpy.float64))
            self.snapshots[steps_run] = {  # at least the last state: `of`'s, for J
                o.name: _last_rows(self.snapshots[step][o.name], arrays[o.name],
                                   max(o.depth, 1))
                for o in recording.outputs}
            step = steps_run
            if self.stopped_by == "until":
                break
        self.T = step
        if of.keep != "all":
            self.objective = _objective(of, self.snapshots[self.T][of.name][-1:])
        self.lengths: dict[tuple[str, Any], int] = {
            ("output", o.name): o.depth + self.T for o in self.program.outputs}
        self.lengths.update({("draw", site): self.T for site in draws})
        self.lengths.update({("sequence", name): len(rows)
                             for name, rows in self.program.sequences.items()})

    def _segment(self, step: int, stop: int, kept: Mapping[str, int], shown: bool = False
                 ) -> tuple[dict[str, Any], int, str, str]:
        """Forward steps `step` to `stop` from the snapshot at `step`, each output kept
        `last N` for the N given in `kept` (else its depth, at least 1)."""
        outputs = tuple(
            replace(o, keep=f"last {kept.get(o.name, max(o.depth, 1))}",
                    initial=None if o.depth == 0 else self._on_device(
                        self.snapshots[step][o.name][-o.depth:]))
            for o in self.recording.outputs)
        segment = replace(self.recording, outputs=outputs, start=step, stop=stop)
        outcome, engine = api.execute(segment, self.run.backend, self.run.engine,
                                      self.run.reporter(0) if shown else None)
        return outcome.arrays, outcome.steps_run, outcome.stopped_by, engine

    def _on_device(self, rows: numpy.ndarray) -> Any:
        return self.run.backend.xp.asarray(rows)

    def sources_for(self, reached: Reach) -> Mapping[tuple[str, Any], Source]:
        """The forward values a window of backward steps reads (the positions of each
        source it `reached`), run again from the snapshot at or before the first forward
        step they reach."""
        lowest = min((low - self._depth(key) for key, (low, _) in reached.items()
                      if key[0] != "sequence"), default=0)
        highest = max((high - self._depth(key) for key, (_, high) in reached.items()
                       if key[0] != "sequence"), default=-1)
        start = max(step for step in self.snapshots if step <= max(lowest, 0))
        stop_at = min(max(highest + 1, start), self.T)
        count = stop_at - start
        arrays = self._segment(start, stop_at, {o.name: count for o in self.recording.outputs}
                               )[0] if count else {}
        sources: dict[tuple[str, Any], Source] = {}
        for output in self.program.outputs:
            kept = self.snapshots[start][output.name]
            before = kept[len(kept) - output.depth:]
            rows = (before, numpy.asarray(arrays[output.name])) if count else before
            sources["output", output.name] = Source(rows, start, output.depth + self.T)
        for site, name in self.draws.items():
            rows = numpy.asarray(arrays[name]) if count else numpy.zeros((0,))
            sources["draw", site] = Source(rows, start, self.T)
        for name, rows in self.program.sequences.items():
            sources["sequence", name] = Source.whole(self.run.backend.to_host(rows))
        return sources

    def _depth(self, key: tuple[str, Any]) -> int:
        return self.program.output(key[1]).depth if key[0] == "output" else 0


def _with_states_before(output: ir.Output, states: Any, backend: Any) -> numpy.ndarray:
    """An output's states on the host after its initial rows (its `depth` of them)."""
    before = (numpy.zeros((0, *output.shape), output.dtype) if output.depth == 0
              else numpy.asarray(backend.to_host(output.initial)))
    if states is None:
        return before
    return numpy.concatenate([before, numpy.asarray(states)])


def _last_rows(before: numpy.ndarray, rows: Any, count: int) -> numpy.ndarray:
    """The last `count` of the states `before` and `rows`, a copy (not a view that would
    keep a whole segment's states alive)."""
    joined = numpy.concatenate([before, numpy.asarray(rows)])
    return joined[max(len(joined) - count, 0):].copy()


def _add_rows(total: numpy.ndarray, rows: Any, first: int, row: int | None, T: int) -> None:
    """A window's rows of a sequence's gradient (backward steps `first`...) added to the
    sequence's rows they belong to: forward step t = T - 1 - u read row t + `row`."""
    rows = numpy.asarray(rows)
    count = max(min(len(rows), T - first), 0)
    if count == 0:
        return
    assert row is not None
    targets = T - 1 - (first + numpy.arange(count)) + row
    numpy.add.at(total, targets, fit_rows(rows[:count], total.shape[1:]))


def _states_after(looped: ir.Program, arrays: Mapping[str, Any], backend: Any
                  ) -> dict[str, numpy.ndarray]:
    """The states a window ended with, on the host: where the next one starts."""
    states = {}
    for output in looped.outputs:
        if output.depth == 0:
            continue
        if output.keep == "last":  # a sum or a capture: one state back
            states[output.name] = numpy.asarray(arrays[output.name])[None]
        else:  # an adjoint, kept `last N`: its taps' states
            before = numpy.asarray(backend.to_host(output.initial))
            rows = numpy.concatenate([before, numpy.asarray(arrays[output.name])])
            states[output.name] = rows[len(rows) - output.depth:]
    return states


def recording_program(program: ir.Program) -> tuple[ir.Program, dict[int, str]]:
    """`program` keeping every state, and one more output per random call that keeps
    what it drew (the unit draw of `uniform` and `normal`, which the backward pass moves
    and scales as the call did); and the recording output of each call's site."""
    outputs = [replace(o, keep="all") for o in program.outputs]
    draws: dict[int, str] = {}
    for node in program.draws():
        if not node.output:  # `until`'s: nothing is differentiated through it
            continue
        name = f"draw {node.site}"
        assert node.type is not None
        drawn: ir.Node = node
        if node.kind != "integers":
            drawn = replace(node, args=(), type=ir.Type("float64", node.type.shape, False))
        assert drawn.type is not None
        outputs.append(ir.Output(name, drawn, drawn.type.dtype, drawn.type.shape, (), 0,
                                 "all", None, None, node.span))
        draws[node.site] = name
    return replace(program, outputs=tuple(outputs)), draws


def fit_rows(rows: numpy.ndarray, shape: tuple[int, ...]) -> numpy.ndarray:
    """`fit` for each row of `rows`, all at once (a row per step: no loop over them)."""
    count, inner = len(rows), rows.shape[1:]
    rank = max(len(inner), len(shape))
    have = (1,) * (rank - len(inner)) + inner
    want = (1,) * (rank - len(shape)) + shape
    aligned = rows.reshape((count, *have))
    axes = tuple(1 + axis for axis in range(rank) if want[axis] == 1 and have[axis] != 1)
    if axes:
        aligned = aligned.sum(axis=axes, keepdims=True)
    return numpy.broadcast_to(aligned, (count, *want)).reshape((count, *shape))


def _float(dtype: numpy.dtype) -> numpy.dtype:
    return dtype if dtype.kind in "fc" else numpy.dtype("float64")


def _objective(output: ir.Output, states: numpy.ndarray) -> float:
    """J as `run` writes the output: the sum of every step kept (after its initial
    rows), or of the last state."""
    kept = states[output.depth:] if output.keep == "all" else states[-1:]
    return float(numpy.sum(kept, dtype=numpy.float64))


def _check_numbers(truncate: int, checkpoints: int | None) -> None:
    if isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < -1:
        raise UsageError(f"{option('truncate')} must be -1 (all steps) or a step count "
                         f">= 0, not {truncate!r}")
    if checkpoints is not None and (isinstance(checkpoints, bool)
                                    or not isinstance(checkpoints, int) or checkpoints < 1):
        raise UsageError(f"{option('checkpoints')} must be a number of snapshots >= 1, "
                         f"not {checkpoints!r}")


def _room(backend: Any) -> int | None:
    room = backend.memory_room()
    return None if room is None else room.usable()


def _check_of(spec: Spec, of: str) -> None:
    names = [o.name.name for o in spec.outputs]
    if of not in names:
        raise UsageError(f"{option('of', of)}: the spec has no output '{of}'",
                         notes=did_you_mean(of, names) or (f"outputs: {', '.join(names)}",))
    output = spec.output(of)
    if output.keep == "none":
        raise UsageError(
            f"{option('of', of)}: output '{of}' has 'keep: none', so a run writes nothing "
            "of it to sum", output.name.span,
            ("J is the sum of the output as a run writes it: keep it ('keep: all' or "
             "'keep: last')",))


def _wrt(spec: Spec, compiled: Compiled, of: str, wrt: Sequence[str] | None
         ) -> tuple[str, ...]:
    """The names to differentiate by, checked: float values of the spec, each once."""
    program = compiled.program
    output = program.output(of)
    if numpy.dtype(output.dtype).kind != "f":
        raise UsageError(
            f"{option('of', of)}: output '{of}' is {output.dtype}; a gradient needs a float "
            "output", spec.output(of).name.span,
            (f"declare 'dtype: float64' for '{of}', or take the gradient of another output",))
    params = [p.name.name for p in spec.params]
    if wrt is None:
        floats = tuple(name for name in params if _dtype_of(compiled, name).kind == "f")
        if not floats:
            raise UsageError("the spec has no float param to differentiate by",
                             notes=(f"name a sequence or an output's initial with "
                                    f"{option('wrt')}",))
        return floats
    names = [*params, *(s.name.name for s in spec.sequences),
             *(o.name.name for o in spec.outputs)]
    seen: list[str] = []
    for name in wrt:
        if name not in names:
            raise UsageError(f"{option('wrt', name)}: the spec has no param, sequence "
                             f"or output '{name}'", notes=did_you_mean(name, names))
        if name in seen:
            raise UsageError(f"{option('wrt', name)} is given twice")
        dtype = _dtype_of(compiled, name)
        if dtype is None:
            raise UsageError(f"{option('wrt', name)}: output '{name}' has no "
                             "'initial' to differentiate by")
        if dtype.kind != "f":
            raise UsageError(f"{option('wrt', name)}: '{name}' is {dtype}; only float "
                             "values have a gradient (integers and bools are constants "
                             "for it)", notes=(f"to differentiate by it, give '{name}' "
                                               "float values (2.0, not 2)",))
        seen.append(name)
    return tuple(seen)


def _differentiable(compiled: Compiled, name: str) -> bool:
    """Whether a value made from one in `wrt` carries a gradient back to it."""
    dtype = _dtype_of(compiled, name)
    return dtype is not None and dtype.kind == "f"


def _dtype_of(compiled: Compiled, name: str) -> Any:
    program = compiled.program
    if name in program.params:
        return numpy.asarray(compiled.backend.to_host(program.params[name])).dtype
    if name in program.sequences:
        return numpy.dtype(str(program.sequences[name].dtype))
    summary = next(o for o in compiled.outputs if o.name == name)
    return None if summary.initial_shape is None else numpy.dtype(summary.dtype)
