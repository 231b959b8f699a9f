"""Spec + values -> the typed `Program` every engine runs (`recur.compile.ir`).

The pipeline, each step a function below: evaluate params and sequences, count the
steps, evaluate initials; lower each step to a tree with its names resolved (once per
spec: `--set` and later runs reuse it); probe one step to settle every state's shape
and dtype and record what each node gives; attach those types; then move out of the
loop what need not be in it: constant sub-expressions computed once (`Hoisted`), and
sub-expressions free of the state computed for all steps at once (`Swept`). A run
of a spec run before with values of the same kinds skips the probe and the typing: the
program kept then (`recur.compile.cache`) takes the new values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy

from recur.compile import cache, ir, rows
from recur.compile.analyze import Analysis
from recur.compile.closures import Builder, Closure
from recur.compile.evaluate import (
    count_steps,
    evaluate,
    evaluate_params,
    evaluate_sequences,
    failure_reason,
    initial_names,
)
from recur.compile.frame import Frame
from recur.compile.program import Scope, program_tree
from recur.compile.sweeps import Sweeps
from recur.diagnostics import Fault, RunError, SpecError
from recur.lang import nodes as n
from recur.lang.functions import FUNCTIONS
from recur.lang.keep import history_rows
from recur.spec import OutputSpec, Spec

MAX_STATE_DIMENSIONS = 32  # what NumPy broadcasts (numpy.broadcast_shapes)
# Sub-expressions free of state are computed for all steps at once, but only up to this
# many bytes, and only with operations that work lane by lane.
SWEEP_BUDGET = 64 * 2**20
_WIDE_DTYPES = frozenset({"float64", "int64", "complex128", "bool"})
FAILED = object()  # a sub-tree the mover could not compute out of the loop
_LEAVES = (ir.Literal, ir.Param, ir.Time, ir.Steps, ir.TimeIndex, ir.Tap, ir.SequenceRead)


@dataclass(frozen=True, slots=True)
class OutputSummary:
    """What `recur check` and `recur explain` show of an output."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    taps: tuple[int, ...]
    keep: str
    initial_shape: tuple[int, ...] | None  # (depth, *state) as given, None without one
    kept_bytes: int


@dataclass(frozen=True, slots=True)
class Compiled:
    """A program ready to run, and what was learned making it (for `check` and
    `explain`)."""

    program: ir.Program
    outputs: tuple[OutputSummary, ...]  # in declaration order
    steps_reason: str
    analysis: Analysis
    backend: Any  # the run's (`recur.engine.backend`): where the program's arrays live


def compile_spec(
    spec: Spec,
    analysis: Analysis,
    backend: Any,
    host: Any,
    *,
    steps: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    last: bool = False,
    every: int | None = None,
    check_finite: bool = False,
    seed: int | None = None,
    reuse: bool = False,
) -> Compiled:
    """Everything short of running: see the module docstring for the order.

    `seed` (None: the spec's) keys the random calls. With `reuse` (a run, which needs
    no more of a sequence than it reads), sequences are made only as far as the run
    reads them (`recur.compile.rows`), and a program kept from an earlier run of the
    same kind (`recur.compile.cache`) takes this run's values instead of a new probe.

    Params, sequences, the step count and initial states are evaluated with NumPy on the
    `host` backend whatever the device, then copied to it: constructors such as
    `linspace` round differently on CuPy, and a chaotic map would amplify that last bit.
    """
    inputs = inputs or {}
    params = evaluate_params(spec, {**(overrides or {}), **_param_inputs(spec, inputs)}, host)
    sequences = evaluate_sequences(spec, params, inputs, host, cut=reuse)
    n_steps, steps_reason = count_steps(spec, params, sequences, analysis.sequence_offsets,
                                        steps, host)
    sequences = rows.made(sequences, analysis.sequence_offsets, n_steps, spec.reverse, host)
    readable = initial_names(spec, params, sequences)
    initials = {
        o.name.name: _initial(spec, o, analysis.depth(o.name.name), readable, host)
        for o in spec.outputs
    }
    seed = spec.seed if seed is None else seed
    keeps = {o.name.name: _keep(o.keep, last, every) for o in spec.outputs}
    trees = structure(spec, analysis)
    deciding = _deciding(spec, trees) if reuse else None
    key = None if deciding is None else cache.key(
        (spec.path, spec.source, backend.name, n_steps, seed, tuple(keeps.values()),
         check_finite), deciding, params, sequences, initials)
    if host is not backend:
        params, sequences, initials = (
            {name: _to_device(value, backend.xp) for name, value in values.items()}
            for values in (params, sequences, initials))
    kept = None if key is None else cache.PROGRAMS.get(key)
    values = cache.snapshot(params, sequences, initials) if key is not None and _own(
        host, backend, inputs, overrides) else None
    if kept is not None and values is not None and kept.values == values:
        program = kept.last  # the same values: the same program
    else:
        program = None if kept is None else _rebound(kept, backend, params, sequences,
                                                      n_steps, initials, seed)
        if program is None:
            program, mover = _lowered(spec, analysis, trees, backend, params, sequences,
                                      n_steps, initials, seed, keeps, check_finite)
            kept = _kept(program, mover)
        if key is not None and kept is not None:
            cache.PROGRAMS.put(key, cache.remembered(kept, program, values))
    assert program is not None
    summaries = tuple(
        _summary(program.output(o.name.name), initials[o.name.name], n_steps)
        for o in spec.outputs
    )
    return Compiled(program, summaries, steps_reason, analysis, backend)


def _lowered(spec: Spec, analysis: Analysis, trees: Mapping[str, ir.Node], backend: Any,
             params: Mapping[str, Any], sequences: Mapping[str, Any], n_steps: int,
             initials: Mapping[str, Any], seed: int, keeps: Mapping[str, str],
             check_finite: bool) -> tuple[ir.Program, _Mover]:
    """The program of a run: a probe step types every node, then the mover takes out of
    the loop what need not be in it (the mover returned says what it moved)."""
    probe = _Probe(spec, analysis, trees, backend, params, sequences, n_steps, initials, seed)
    shapes, bounds, types = probe.settle()
    typed = {name: with_types(tree, types) for name, tree in trees.items()}
    for tree in typed.values():
        _check_int_literals(tree)
    mover = _Mover(backend, params, sequences, n_steps)
    moved = {name: mover.move(tree) for name, tree in typed.items()}
    outputs = tuple(
        ir.Output(name, moved[name], spec.output(name).dtype, shapes[name],
                  analysis.taps[name], analysis.depth(name), keeps[name],
                  _broadcast_initial(initials[name], shapes[name], backend.xp), bounds[name],
                  spec.output(name).step.span)
        for name in analysis.order)
    program = ir.Program(outputs, moved.get(UNTIL), spec.until.span if spec.until else None,
                         n_steps, backend.name, backend.xp, MappingProxyType(dict(params)),
                         MappingProxyType(dict(sequences)), tuple(mover.hoisted),
                         Sweeps(mover.swept), check_finite, seed)
    return program, mover


def _kept(program: ir.Program, mover: _Mover) -> cache.Kept:
    """What the cache keeps of a program: its trees and types, not its values."""
    bare = replace(program, outputs=tuple(replace(o, initial=None) for o in program.outputs),
                   params=_NONE, sequences=_NONE, hoisted=(), swept=())
    return cache.Kept(bare, tuple(mover.hoisted_sources), tuple(mover.swept_sources),
                      tuple(mover.unmoved))


_NONE: Mapping[str, Any] = MappingProxyType({})


def _rebound(kept: cache.Kept, backend: Any, params: Mapping[str, Any],
             sequences: Mapping[str, Any], n_steps: int, initials: Mapping[str, Any],
             seed: int) -> ir.Program | None:
    """The kept program with this run's values, its moved parts computed from them:
    the program `_lowered` would make. None where a move fails now, or one that failed
    would not (the mover would make another program)."""
    mover = _Mover(backend, params, sequences, n_steps)
    hoisted = tuple(mover.constant(node) for node in kept.hoisted)
    swept = Sweeps([mover.sweep_of(node) for node in kept.swept])
    if any(value is FAILED for value in hoisted) or any(
            mover.constant(node) is not FAILED for node in kept.unmoved):
        return None
    template, xp = kept.program, backend.xp
    outputs = tuple(replace(o, initial=_broadcast_initial(initials[o.name], o.shape, xp))
                    for o in template.outputs)
    return replace(template, outputs=outputs, params=MappingProxyType(dict(params)),
                   sequences=MappingProxyType(dict(sequences)), hoisted=hoisted,
                   swept=swept, seed=seed)


def _own(host: Any, backend: Any, inputs: Mapping[str, Any],
         overrides: Mapping[str, Any] | None) -> bool:
    """Whether every value of the run is its own: made by the spec or from numbers (a
    caller's array may change after the run), on the host (where they are compared)."""
    return host is backend and not inputs and all(
        isinstance(value, n.Node | bool | int | float | complex)
        for value in (overrides or {}).values())


def _deciding(spec: Spec, trees: Mapping[str, ir.Node]) -> frozenset[str] | None:
    """`cache.deciding` of the spec's trees, kept with the spec."""
    if "deciding" not in spec.derived:
        spec.derived["deciding"] = cache.deciding(trees)
    found: frozenset[str] | None = spec.derived["deciding"]
    return found


@dataclass(frozen=True, slots=True)
class LoopOutput:
    """An output of a loop made by a transformation rather than written in a spec (the
    adjoint of a run): its untyped step tree, and states of at least `shape` that start
    at zero."""

    name: str
    step: ir.Node
    dtype: str
    shape: tuple[int, ...]
    keep: str  # a spec's keep, or CARRIED
    span: Any  # where errors at run time point


# Keep the states the loop's taps read, and no more: what a later run of the same loop
# starts from (`keep: last N` for N its depth).
CARRIED = "carried"


def lower_loop(outputs: tuple[LoopOutput, ...], backend: Any, params: Mapping[str, Any],
               sequences: Mapping[str, Any], steps: int,
               initials: Mapping[str, Any] | None = None) -> ir.Program:
    """A `Program` from outputs given as trees (in evaluation order): typed by a probe
    step at t = 0, with sub-trees moved out of the loop, as `compile_spec` does for a
    spec. Its states before step 0 are zeros, or where `initials` has an output's, those
    (its `depth` rows, on the host)."""
    initials = initials or {}
    xp = backend.xp
    lags: dict[str, set[int]] = {o.name: set() for o in outputs}
    for output in outputs:
        for node in ir.walk(output.step):
            if isinstance(node, ir.Tap) and node.lag > 0:
                lags[node.output].add(node.lag)
    depths = {name: max(found, default=0) for name, found in lags.items()}
    sequences = {name: _to_device(value, xp) for name, value in sequences.items()}
    shapes = {o.name: o.shape for o in outputs}
    for _ in range(len(outputs) + 2):
        observed: dict[ir.Node, ir.Type] = {}
        new_shapes = _probe_loop(outputs, backend, params, sequences, steps, depths, shapes,
                                 observed)
        if new_shapes == shapes:
            break
        shapes = new_shapes
    mover = _Mover(backend, params, sequences, steps)
    lowered = tuple(
        ir.Output(o.name, mover.move(with_types(o.step, observed)), o.dtype,
                  shapes[o.name], tuple(sorted(-lag for lag in lags[o.name])),
                  depths[o.name], _carried(o.keep, depths[o.name]),
                  _states_before(o, depths[o.name], shapes[o.name],
                                                          initials.get(o.name), xp),
                  None, o.span)
        for o in outputs)
    return ir.Program(lowered, None, None, steps, backend.name, xp,
                      MappingProxyType(dict(params)), MappingProxyType(sequences),
                      tuple(mover.hoisted), Sweeps(mover.swept), False)


def _carried(keep: str, depth: int) -> str:
    if keep != CARRIED:
        return keep
    return f"last {depth}" if depth else "none"


def _states_before(output: LoopOutput, depth: int, shape: tuple[int, ...], given: Any,
                   xp: Any) -> Any:
    if not depth:
        return None
    if given is None:
        return xp.zeros((depth, *shape), output.dtype)
    return xp.broadcast_to(_to_device(numpy.asarray(given, output.dtype), xp), (depth, *shape))


def _probe_loop(outputs: tuple[LoopOutput, ...], backend: Any, params: Mapping[str, Any],
                sequences: Mapping[str, Any], steps: int, depths: Mapping[str, int],
                shapes: Mapping[str, tuple[int, ...]],
                observed: dict[ir.Node, ir.Type]) -> dict[str, tuple[int, ...]]:
    """One step of a transformed loop at t = 0 from zero states: the shapes it gives."""
    xp = backend.xp
    states = {o.name: xp.zeros((depths[o.name], *shapes[o.name]), o.dtype) for o in outputs}
    current: dict[str, Any] = {}
    bindings = _ProbeBindings(params, sequences, steps, states, current, depths, shapes)
    builder = Builder(backend, bindings, observe=observed)
    frame = Frame()
    frame.faults.append([])
    new_shapes = dict(shapes)
    for output in outputs:
        with backend.errstate():
            value = xp.asarray(builder.build(output.step)(frame))
        new_shapes[output.name] = tuple(numpy.broadcast_shapes(shapes[output.name],
                                                               value.shape))
        current[output.name] = xp.broadcast_to(value.astype(output.dtype),
                                               new_shapes[output.name])
    return new_shapes


def _keep(keep: str, last: bool, every: int | None) -> str:
    """An output's keep under `last=True` (every kept output keeps its final state only)
    and `every=K` (what keeps every step keeps every K-th)."""
    if keep == "none":
        return keep
    if last:
        return "last"
    return f"every {every}" if every is not None and keep == "all" else keep


def _summary(output: ir.Output, initial: Any, steps: int) -> OutputSummary:
    """What `check` and `explain` show of an output; its kept bytes are its history's:
    the initial rows and every step, or a ring of its taps (`recur.lang.keep`)."""
    rows = history_rows(output.keep, output.depth, steps)
    return OutputSummary(output.name, output.dtype, output.shape, output.taps, output.keep,
                         None if initial is None else tuple(initial.shape),
                         rows * output.lanes * numpy.dtype(output.dtype).itemsize)


UNTIL = ""  # the key of `until`'s tree among the outputs' (no output has an empty name)


def structure(spec: Spec, analysis: Analysis) -> dict[str, ir.Node]:
    """Each output's step, and `until`, as untyped `Program` trees with names resolved:
    the same for every run of the spec, so made once and kept with it."""
    trees = spec.derived.get("structure")
    if trees is None:
        scope = Scope(frozenset(p.name.name for p in spec.params),
                      {s.name.name: analysis.sequence_offsets[s.name.name][0]
                       for s in spec.sequences},
                      frozenset(analysis.order))
        sites = analysis.draw_sites
        trees = {name: program_tree(spec.output(name).step, scope, output=name,
                                  sites=sites.get(name, ())) for name in analysis.order}
        if spec.until is not None:
            trees[UNTIL] = program_tree(spec.until, scope, sites=sites.get(UNTIL, ()))
        spec.derived["structure"] = trees
    return dict(trees)


def with_types(node: ir.Node, types: Mapping[ir.Node, ir.Type]) -> ir.Node:
    """A copy of an untyped tree with what the probe saw of each node."""
    return ir.map_children(node, lambda child: with_types(child, types),
                           type=types.get(node))


def _to_device(value: Any, xp: Any) -> Any:
    """An array copied to the device's array module; numbers and None as they are."""
    if isinstance(value, numpy.ndarray):
        return xp.asarray(numpy.ascontiguousarray(value))  # reversed sequences too
    return value


def _param_inputs(spec: Spec, inputs: Mapping[str, Any]) -> dict[str, Any]:
    names = {p.name.name for p in spec.params}
    return {name: value for name, value in inputs.items() if name in names}


def _initial(spec: Spec, output: OutputSpec, depth: int, names: Mapping[str, Any],
             backend: Any) -> Any:
    """The initial states as an array (depth, *state), cast to the output's dtype."""
    if output.initial is None:
        return None
    name = output.name.name
    value = backend.xp.asarray(
        evaluate(output.initial, names, backend, f"the initial of output '{name}'", spec)
    )
    span = output.initial.span
    if not numpy.can_cast(value.dtype, output.dtype, "same_kind"):
        raise SpecError(
            f"the initial of output '{name}' is {value.dtype}, which cannot be stored in "
            f"its dtype {output.dtype}", span,
        )
    if depth > 1 and (value.ndim == 0 or value.shape[0] != depth):
        raise SpecError(
            f"output '{name}' is read {depth} steps back, so its initial needs {depth} "
            f"states, oldest first (a first axis of length {depth}); it has shape "
            f"{tuple(value.shape)}", span,
        )
    _check_dimensions(value.ndim - (depth > 1), span, f"the initial of output '{name}'")
    _check_int_range(value, output.dtype, span, f"the initial of output '{name}'")
    _check_float_range(value, output.dtype, span, f"the initial of output '{name}'")
    stacked = value if depth > 1 else value[None]
    return stacked.astype(output.dtype)


def _check_dimensions(ndim: int, span: Any, what: str) -> None:
    if ndim > MAX_STATE_DIMENSIONS:
        raise SpecError(f"{what} gives a state of {ndim} dimensions; the limit is "
                        f"{MAX_STATE_DIMENSIONS}", span)


def _check_int_range(value: Any, dtype: str, span: Any, what: str) -> None:
    bounds = _bounds(value.dtype, dtype)
    if bounds is not None and bool(((value < bounds[0]) | (value > bounds[1])).any()):
        raise RunError(f"integer overflow: {what} does not fit in {dtype}", span)


def _check_float_range(value: Any, dtype: str, span: Any, what: str) -> None:
    """Refuse finite values that a narrower float dtype would store as inf (NumPy would
    only warn): a typed value that does not fit, like an integer literal that does not."""
    target = numpy.dtype(dtype)
    if target.kind not in "fc" or value.dtype.kind not in "fc" or (
            value.dtype.itemsize <= target.itemsize):
        return
    with numpy.errstate(over="ignore"):
        stored = value.astype(target)
    if bool(((abs(stored) == math.inf) & (abs(value) != math.inf)).any()):
        raise SpecError(
            f"{what} has values beyond {dtype} (largest {numpy.finfo(target).max:.8g}): "
            "stored, they would be inf", span,
            (f"declare 'dtype: {value.dtype}', or give values within {dtype}",))


def _bounds(source: Any, target: str) -> tuple[int, int] | None:
    """Integer limits to check when `source` values are stored as `target`."""
    source, target_dtype = numpy.dtype(source), numpy.dtype(target)
    if target_dtype.kind != "i" or source.kind not in "iu":
        return None
    if source.itemsize <= target_dtype.itemsize and source.kind == "i":
        return None
    info = numpy.iinfo(target_dtype)
    return int(info.min), int(info.max)


def _broadcast_initial(initial: Any, shape: tuple[int, ...], xp: Any) -> Any:
    """(depth, *per_step) -> (depth, *shape): per-step shapes align right, depth stays first."""
    if initial is None:
        return None
    per_step = initial.shape[1:]
    padded = initial.reshape((initial.shape[0],) + (1,) * (len(shape) - len(per_step))
                             + tuple(per_step))
    return xp.broadcast_to(padded, (initial.shape[0], *shape))


def _per_step_shape(initial: Any) -> tuple[int, ...]:
    return () if initial is None else tuple(initial.shape[1:])


class _ConstantBindings:
    """What a constant sub-expression reads: params and `steps` (at step 0)."""

    def __init__(self, params: Mapping[str, Any], steps: int) -> None:
        self.params = params
        self.n_steps = steps

    def param(self, name: str) -> Closure:
        value = self.params[name]
        return lambda frame: value

    def time(self) -> Closure:
        return lambda frame: frame.t

    def steps(self) -> Closure:
        steps = self.n_steps
        return lambda frame: steps

    def tap(self, output: str, lag: int) -> Closure:
        raise KeyError(output)

    def sequence(self, name: str, row: int) -> Closure:
        raise KeyError(name)

    def state_shape(self, output: str) -> tuple[int, ...]:
        raise KeyError(output)  # draws stay in the loop


class _ProbeBindings(_ConstantBindings):
    """Step 0 with states given as plain values, tolerant of empty sequences."""

    def __init__(self, params: Mapping[str, Any], sequences: Mapping[str, Any], steps: int,
                 states: dict[str, Any], current: dict[str, Any],
                 depths: Mapping[str, int], shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(params, steps)
        self.sequences = sequences
        self.states = states
        self.current = current
        self.depths = depths
        self.shapes = shapes

    def state_shape(self, output: str) -> tuple[int, ...]:
        return self.shapes.get(output, ())

    def tap(self, output: str, lag: int) -> Closure:
        if lag == 0:
            current = self.current
            return lambda frame: current[output]
        rows = self.states[output]
        row = self.depths[output] - lag
        return lambda frame: rows[row]

    def sequence(self, name: str, row: int) -> Closure:
        array = self.sequences[name]
        if row >= len(array):  # zero steps over an empty sequence: any element will do
            element = numpy.zeros(array.shape[1:], array.dtype)
            return lambda frame: element
        return lambda frame: array[row]


class _SweepBindings(_ConstantBindings):
    """Every step at once: `t` and sequence reads as arrays with time first.

    Leaves are padded to `rank` dimensions (time, then each value's own shape aligned
    right), so that element-wise operations broadcast as they do step by step.
    """

    def __init__(self, params: Mapping[str, Any], sequences: Mapping[str, Any], steps: int,
                 rank: int) -> None:
        super().__init__(params, steps)
        self.sequences = sequences
        self.rank = rank

    def param(self, name: str) -> Closure:
        value = self.params[name]
        if hasattr(value, "ndim"):
            value = value.reshape((1,) * (self.rank - value.ndim) + tuple(value.shape))
        return lambda frame: value

    def time(self) -> Closure:
        times = self._pad(numpy.arange(self.n_steps), 0)
        return lambda frame: times

    def sequence(self, name: str, row: int) -> Closure:
        rows = self.sequences[name][row:row + self.n_steps]
        padded = self._pad(rows, rows.ndim - 1)
        return lambda frame: padded

    def _pad(self, rows: Any, element_rank: int) -> Any:
        ones = (1,) * (self.rank - 1 - element_rank)
        return rows.reshape((rows.shape[0], *ones, *rows.shape[1:]))


class _Probe:
    """Step 0, repeated until every state's shape stops changing (lanes spread)."""

    def __init__(self, spec: Spec, analysis: Analysis, trees: Mapping[str, ir.Node],
                 backend: Any, params: Mapping[str, Any], sequences: Mapping[str, Any],
                 steps: int, initials: Mapping[str, Any], seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self.analysis = analysis
        self.trees = trees
        self.backend = backend
        self.params = params
        self.sequences = sequences
        self.steps = steps
        self.initials = initials

    def settle(self) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, int] | None],
                              dict[ir.Node, ir.Type]]:
        """State shapes, integer bounds to check on store, and what each node gave (with
        what each checked operation saw)."""
        shapes = {name: _per_step_shape(init) for name, init in self.initials.items()}
        for _ in range(len(self.spec.outputs) + 2):
            observed: dict[ir.Node, ir.Type] = {}
            record: dict[ir.Node, str] = {}
            new_shapes, bounds = self.step(shapes, observed, record)
            if self._settled(shapes, new_shapes):
                types = {node: ir.Type(seen.dtype, seen.shape, seen.python, record.get(node))
                         for node, seen in observed.items()}
                return new_shapes, bounds, types
            shapes = new_shapes
        raise SpecError("the state shapes do not settle", self.spec.span)

    def _settled(self, old: Mapping[str, tuple[int, ...]],
                 new: Mapping[str, tuple[int, ...]]) -> bool:
        """Whether another step would see what this one saw: only states read steps back
        enter a step (reads at `t` see this step's values, already of their new shape),
        and the shapes random calls draw for."""
        drawing = {site.output for site in self.analysis.draws}
        return all(new[name] == shape or (self.analysis.depth(name) == 0
                                          and name not in drawing)
                   for name, shape in old.items())

    def step(self, shapes: dict[str, tuple[int, ...]], observed: dict[ir.Node, ir.Type],
             record: dict[ir.Node, str]) -> tuple[
        dict[str, tuple[int, ...]], dict[str, tuple[int, int] | None]
    ]:
        xp = self.backend.xp
        states = {name: _broadcast_initial(init, shapes[name], xp)
                  for name, init in self.initials.items()}
        current: dict[str, Any] = {}
        bindings = _ProbeBindings(self.params, self.sequences, self.steps, states, current,
                                  {o: self.analysis.depth(o) for o in self.analysis.order},
                                  shapes)
        builder = Builder(self.backend, bindings, observe=observed, record=record,
                          seed=self.seed)
        frame = Frame()
        frame.faults.append([])  # faults surface in the run, at the step where they occur
        new_shapes = dict(shapes)
        bounds: dict[str, tuple[int, int] | None] = {}
        for name in self.analysis.order:
            output = self.spec.output(name)
            closure = builder.build(self.trees[name])
            where = f"the step of output '{name}'"
            value = self.evaluate(_as_array(xp, closure), frame, output.step, where)
            _check_dimensions(value.ndim, output.step.span, where)
            new_shapes[name] = self.merge(name, shapes[name], tuple(value.shape), output)
            bounds[name] = self.check_dtype(output, value.dtype)
            current[name] = xp.broadcast_to(value.astype(output.dtype), new_shapes[name])
        if self.spec.until is not None:
            value = self.evaluate(builder.build(self.trees[UNTIL]), frame, self.spec.until,
                                  "'until'")
            if getattr(value, "size", 1) != 1:
                raise SpecError(
                    f"'until' must give one true/false value, not shape {value.shape}",
                    self.spec.until.span, ("reduce lanes with any(...) or all(...)",),
                )
        return new_shapes, bounds

    def evaluate(self, closure: Closure, frame: Frame, node: n.Node, where: str) -> Any:
        try:
            with self.backend.errstate():
                return closure(frame)
        except Fault as fault:  # an unchecked path; the run reports it at its step
            raise RunError(f"{fault.kind} in {where} at t=0", fault.node.span) from None
        except MemoryError as exc:
            raise RunError(f"{where} asks for too much memory: {exc}", node.span) from None
        except (ArithmeticError, ValueError, TypeError, IndexError) as exc:
            raise SpecError(f"cannot evaluate {where}: {failure_reason(exc)}",
                            node.span) from None

    def merge(self, name: str, old: tuple[int, ...], new: tuple[int, ...],
              output: OutputSpec) -> tuple[int, ...]:
        try:
            return tuple(numpy.broadcast_shapes(old, new))
        except ValueError:
            raise SpecError(
                f"the state of output '{name}' changes shape from step to step: "
                f"{old} before, {new} after its step", output.step.span,
            ) from None

    def check_dtype(self, output: OutputSpec, dtype: Any) -> tuple[int, int] | None:
        if not numpy.can_cast(dtype, output.dtype, "same_kind"):
            raise SpecError(
                f"the step of output '{output.name.name}' gives {dtype} values, which cannot "
                f"be stored in its dtype {output.dtype}", output.step.span,
                (f"declare 'dtype: {dtype}' for output '{output.name.name}', or change "
                 "the step",),
            )
        return _bounds(dtype, output.dtype)


class _Mover:
    """Moves out of the loop what need not run in it, keeping the values in slots: a
    constant sub-expression is computed once (`Hoisted`); one free of the state, made
    of lane-wise operations and small enough, for every step at once (`Swept`). One
    that fails to compute stays in the loop, to fail at its step, and so does all
    inside it."""

    def __init__(self, backend: Any, params: Mapping[str, Any], sequences: Mapping[str, Any],
                 steps: int) -> None:
        self.backend = backend
        self.params = params
        self.sequences = sequences
        self.steps = steps
        self.hoisted: list[Any] = []
        self.swept: list[Callable[[], Any]] = []  # each slot's rows, when read
        self.hoisted_sources: list[ir.Node] = []  # each slot's sub-tree
        self.swept_sources: list[ir.Node] = []
        self.unmoved: list[ir.Node] = []  # the constant sub-trees that failed to compute

    def move(self, node: ir.Node) -> ir.Node:
        if not isinstance(node, _LEAVES):
            if node.varies == ir.CONSTANT:
                return self._hoisted(node)
            if node.varies == ir.PER_STEP and self._sweepable(node):
                return self._swept(node)
        return ir.map_children(node, self.move)

    def _hoisted(self, node: ir.Node) -> ir.Node:
        value = self.constant(node)
        if value is FAILED:
            self.unmoved.append(node)
            return node
        self.hoisted.append(value)
        self.hoisted_sources.append(node)
        return ir.Hoisted(node.span, node.type, node.varies, len(self.hoisted) - 1, node)

    def constant(self, node: ir.Node) -> Any:
        """The value of a constant sub-tree, or `FAILED`."""
        closure = Builder(self.backend, _ConstantBindings(self.params, self.steps)).build(node)
        try:
            with self.backend.errstate():
                return closure(Frame())
        except (Fault, ArithmeticError, ValueError, TypeError, IndexError, MemoryError):
            return FAILED

    def _sweepable(self, node: ir.Node) -> bool:
        """State-free, lane-by-lane, worth it, and giving the loop's exact values."""
        if self.steps == 0:
            return False
        parts = _parts(node)
        if not all(_lane_wise(part) for part in parts):
            return False
        seen = [part.type for part in parts]
        if any(typed is None for typed in seen):
            return False
        largest = max(math.prod(typed.shape) for typed in seen if typed is not None)
        if self.steps * largest * 16 > SWEEP_BUDGET:
            return False
        # A Python number in the loop is "weak"; swept, it becomes a strong array. That
        # changes results only next to narrower dtypes, so those are left in the loop.
        weak = any(typed.python for part, typed in zip(parts, seen, strict=True)
                   if typed is not None and part.varies != ir.CONSTANT)
        return not weak or all(typed.dtype in _WIDE_DTYPES for typed in seen
                               if typed is not None)

    def _swept(self, node: ir.Node) -> ir.Node:
        """All steps' values at once, as rows indexed by `t`, made when first read
        (`recur.compile.sweeps`)."""
        self.swept.append(self.sweep_of(node))
        self.swept_sources.append(node)
        return ir.Swept(node.span, node.type, node.varies, len(self.swept) - 1, node)

    def sweep_of(self, node: ir.Node) -> Callable[[], Any]:
        """What makes a sweepable sub-tree's rows each time they are read (`_rows`)."""
        return lambda: self._rows(node)

    def _rows(self, node: ir.Node) -> Any:
        """A sweepable sub-tree's rows, one per step, or None."""
        seen = node.type
        assert seen is not None
        rank = 1 + max(len(part.type.shape) for part in _parts(node) if part.type is not None)
        bindings = _SweepBindings(self.params, self.sequences, self.steps, rank)
        try:
            with self.backend.errstate():
                value = self.backend.xp.asarray(
                    Builder(self.backend, bindings, typed=False).build(node)(Frame()))
                rows = self.backend.xp.broadcast_to(
                    value, (self.steps, *value.shape[1:])).reshape((self.steps, *seen.shape))
        except (Fault, ArithmeticError, ValueError, TypeError, IndexError, MemoryError):
            return None
        return rows if str(rows.dtype) == seen.dtype else None


def _parts(node: ir.Node) -> list[ir.Node]:
    """The nodes of a subtree as evaluated (a power's literal exponent is not)."""
    return [part for part in ir.walk(node) if not isinstance(part, ir.Exponent)]


def _lane_wise(node: ir.Node) -> bool:
    if isinstance(node, ir.Call):
        return FUNCTIONS[node.func].kind == "elementwise" or (
            node.func in ("min", "max") and len(node.args) > 1)
    if isinstance(node, ir.Binary):
        return node.op != "@"
    return isinstance(node, ir.Literal | ir.Param | ir.Time | ir.Steps | ir.TimeIndex
                      | ir.SequenceRead | ir.Unary | ir.Compare | ir.Select)


def _check_int_literals(root: ir.Node) -> None:
    """Refuse an integer literal that an operation on a narrower integer dtype cannot
    hold (`x % 4294967296`, x int32): NumPy refuses it too, and a kernel working in
    int64 would quietly give another answer. Comparisons are exact and exempt."""
    for node in ir.walk(root):
        seen = node.type
        if (seen is None or seen.python or isinstance(node, ir.Compare)
                or seen.dtype not in _NARROW_INTS):
            continue
        info = numpy.iinfo(seen.dtype)
        for child in ir.children(node):
            value = _literal(child)
            if type(value) is int and not info.min <= value <= info.max:
                raise SpecError(
                    f"the integer literal {value} does not fit {seen.dtype}, the dtype this "
                    "operation works in", child.span,
                    (f"{seen.dtype} holds {info.min} to {info.max}; declare the output "
                     "'dtype: int64', or use a literal in that range",))


def _literal(node: ir.Node) -> Any:
    """The value of a number literal, signed ones (`-3`, `+2`) included, else None."""
    sign = 1
    while isinstance(node, ir.Unary) and node.op in ("-", "+"):
        sign = -sign if node.op == "-" else sign
        node = node.operand
    if not isinstance(node, ir.Literal) or isinstance(node.value, bool):
        return None
    return sign * node.value


_NARROW_INTS = frozenset({"int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64"})


def _as_array(xp: Any, closure: Closure) -> Closure:
    """The closure's value as an array of the backend (a Python number becomes 0-d)."""
    return lambda frame: xp.asarray(closure(frame))
