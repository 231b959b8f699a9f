"""Spec + values -> a runnable `Plan`: settle shapes and dtypes, then bind closures.

The pipeline, each step a function below: evaluate params and sequences, count the
steps, evaluate initials, probe one step to settle every state's shape and dtype
(and record what each arithmetic node sees), check the memory the kept outputs
need, then build the step closures for exactly those types, bound to histories.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy

from recur.compile import ir
from recur.compile.analyze import Analysis
from recur.compile.closures import Builder, Closure, Observation
from recur.compile.evaluate import (
    count_steps,
    evaluate,
    evaluate_params,
    evaluate_sequences,
    failure_reason,
    initial_names,
)
from recur.compile.frame import Fault, Frame
from recur.compile.program import Scope, typed_tree
from recur.diagnostics import RunError, SpecError
from recur.engine.backend import NumpyBackend
from recur.engine.history import History
from recur.engine.memory import fitting_hint, host_room
from recur.engine.plan import OutputPlan, Plan
from recur.lang import exact
from recur.lang import nodes as n
from recur.spec import OutputSpec, Spec

MAX_STATE_DIMENSIONS = 32  # what NumPy broadcasts (numpy.broadcast_shapes)
# Outputs this small fit anywhere recur runs: asking the OS (a tenth of a millisecond,
# a noticeable part of a small run) is not worth it.
ALWAYS_AVAILABLE = 16 * 2**20


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
    """A plan ready to run, and what was learned making it (for `check` and `explain`)."""

    plan: Plan
    outputs: tuple[OutputSummary, ...]  # in declaration order
    params: dict[str, Any]
    sequences: dict[str, Any]  # as walked (reversed under `reverse`)
    steps_reason: str
    hoisted: tuple[n.Node, ...]  # sub-expressions computed once, before the loop
    swept: tuple[n.Node, ...]  # sub-expressions computed for all steps, before the loop
    analysis: Analysis
    # For compiled engines: what each node gave in the probe, and the values of the
    # hoisted (one per run) and swept (rows by step) sub-expressions, by node id.
    observations: dict[int, Observation]
    hoisted_values: dict[int, Any]
    swept_values: dict[int, Any]
    program: ir.Program


def compile_spec(
    spec: Spec,
    analysis: Analysis,
    backend: Any,
    *,
    steps: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    last: bool = False,
    check_finite: bool = False,
) -> Compiled:
    """Everything short of running: see the module docstring for the order.

    Params, sequences, the step count and initial states are evaluated with NumPy on the
    host whatever the device, then copied to it: constructors such as `linspace` round
    differently on CuPy, and a chaotic map would amplify that last bit.
    """
    inputs = inputs or {}
    host = backend if backend.name == "cpu" else NumpyBackend()
    params = evaluate_params(spec, {**(overrides or {}), **_param_inputs(spec, inputs)}, host)
    sequences = evaluate_sequences(spec, params, inputs, host)
    n_steps, steps_reason = count_steps(spec, params, sequences, analysis.sequence_offsets,
                                        steps, host)
    readable = initial_names(spec, params, sequences)
    initials = {
        o.name.name: _initial(o, analysis.depth(o.name.name), readable, host)
        for o in spec.outputs
    }
    if host is not backend:
        params, sequences, initials = (
            {name: _to_device(value, backend.xp) for name, value in values.items()}
            for values in (params, sequences, initials))
    probe = _Probe(spec, analysis, backend, params, sequences, n_steps, initials)
    shapes, types, bounds, observations = probe.settle()
    for root in (*(o.step for o in spec.outputs), *([spec.until] if spec.until else [])):
        _check_int_literals(root, observations)
    keeps = {o.name.name: "last" if last and o.keep == "all" else o.keep for o in spec.outputs}
    sizes = _kept_bytes(spec, analysis, shapes, keeps, n_steps)
    _check_memory(sizes, backend)

    xp = backend.xp
    histories = {
        name: History(
            xp, shapes[name], spec.output(name).dtype,
            _broadcast_initial(initials[name], shapes[name], xp),
            analysis.depth(name), n_steps if keeps[name] == "all" else None,
        )
        for name in analysis.order
    }
    bindings = _StepBindings(params, sequences, analysis.sequence_offsets, n_steps, histories)
    sweep = _SweepBindings(params, sequences, analysis.sequence_offsets, n_steps, None)
    builder = Builder(backend, bindings, types=types, hoist=True,
                      sweep=(sweep, n_steps, observations))
    outputs = tuple(
        OutputPlan(
            name=name,
            step=builder.build(spec.output(name).step),
            history=histories[name],
            dtype=spec.output(name).dtype,
            keep=keeps[name],
            span=spec.output(name).step.span,
            check_range=bounds[name],
        )
        for name in analysis.order
    )
    until = builder.build(spec.until) if spec.until is not None else None
    plan = Plan(outputs, n_steps, until, spec.until.span if spec.until else None, Frame(),
                backend, check_finite)
    summaries = tuple(
        OutputSummary(
            o.name.name, o.dtype, shapes[o.name.name], analysis.taps[o.name.name],
            keeps[o.name.name],
            None if initials[o.name.name] is None else tuple(initials[o.name.name].shape),
            sizes[o.name.name],
        )
        for o in spec.outputs
    )
    hoisted = {key: value for key, (_, value) in builder.hoisted.items()}
    swept = {key: value for key, (_, value) in builder.swept.items()}
    program = _program(spec, analysis, observations, types, hoisted, swept, shapes, keeps,
                       bounds, initials, n_steps, params, sequences, backend, check_finite)
    return Compiled(plan, summaries, params, dict(sequences), steps_reason,
                    tuple(node for node, _ in builder.hoisted.values()),
                    tuple(node for node, _ in builder.swept.values()), analysis, observations,
                    hoisted, swept, program)


def _program(spec: Spec, analysis: Analysis, observations: Mapping[int, Observation],
             types: Mapping[int, str], hoisted: Mapping[int, Any], swept: Mapping[int, Any],
             shapes: Mapping[str, tuple[int, ...]], keeps: Mapping[str, str],
             bounds: Mapping[str, tuple[int, int] | None], initials: Mapping[str, Any],
             steps: int, params: Mapping[str, Any], sequences: Mapping[str, Any],
             backend: Any, check_finite: bool) -> ir.Program:
    slots = {key: ("hoisted", k) for k, key in enumerate(hoisted)}
    slots.update({key: ("swept", k) for k, key in enumerate(swept)})

    def type_of(node: n.Node) -> ir.Type | None:
        seen = observations.get(id(node))
        if seen is None:
            return None
        return ir.Type(seen.dtype, seen.shape, seen.python, types.get(id(node)))

    scope = Scope(frozenset(params), {name: analysis.sequence_offsets[name][0]
                                      for name in sequences}, frozenset(analysis.order))

    def lower(node: n.Node) -> ir.Node:
        return typed_tree(node, scope, type_of, lambda part: slots.get(id(part)))

    outputs = tuple(
        ir.Output(name, lower(spec.output(name).step), spec.output(name).dtype, shapes[name],
                  analysis.taps[name], analysis.depth(name), keeps[name],
                  _broadcast_initial(initials[name], shapes[name], backend.xp), bounds[name],
                  spec.output(name).step.span)
        for name in analysis.order)
    return ir.Program(outputs, lower(spec.until) if spec.until is not None else None,
                      spec.until.span if spec.until is not None else None, steps,
                      backend.name, dict(params), dict(sequences), tuple(hoisted.values()),
                      tuple(swept.values()), check_finite)


def _to_device(value: Any, xp: Any) -> Any:
    """An array copied to the device's array module; numbers and None as they are."""
    if isinstance(value, numpy.ndarray):
        return xp.asarray(numpy.ascontiguousarray(value))  # reversed sequences too
    return value


def _param_inputs(spec: Spec, inputs: Mapping[str, Any]) -> dict[str, Any]:
    names = {p.name.name for p in spec.params}
    return {name: value for name, value in inputs.items() if name in names}


def _initial(output: OutputSpec, depth: int, names: Mapping[str, Any], backend: Any) -> Any:
    """The initial states as an array (depth, *state), cast to the output's dtype."""
    if output.initial is None:
        return None
    name = output.name.name
    value = backend.xp.asarray(
        evaluate(output.initial, names, backend, f"the initial of output '{name}'")
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


class _StepBindings:
    """Names in a step: params, sequences at `t + offset`, outputs' histories, `t`, `steps`."""

    def __init__(
        self, params: Mapping[str, Any], sequences: Mapping[str, Any],
        offsets: Mapping[str, tuple[int, int]], steps: int,
        histories: Mapping[str, History] | None,
    ) -> None:
        self.params = params
        self.sequences = sequences
        self.offsets = offsets
        self.steps = steps
        self.histories = histories

    def name(self, name: str) -> Closure:
        if name == "t":
            return lambda frame: frame.t
        if name == "steps":
            steps = self.steps
            return lambda frame: steps
        if name in self.sequences:
            return self.sequence(name, 0)
        value = self.params[name]
        return lambda frame: value

    def output(self, name: str, lag: int) -> Closure:
        if self.histories is None or name not in self.histories:
            raise KeyError(name)
        return self.histories[name].reader(lag)

    def sequence(self, name: str, offset: int) -> Closure:
        array = self.sequences[name]
        shift = offset - self.offsets[name][0]
        return lambda frame: array[frame.t + shift]

    def is_constant(self, name: str) -> bool:
        return name in self.params or name == "steps"

    def is_sequence(self, name: str) -> bool:
        return name in self.sequences


class _SweepBindings(_StepBindings):
    """Every step at once: `t` and sequence reads as arrays with time first.

    Leaves are padded to `rank` dimensions (time, then each value's own shape aligned
    right), so that element-wise operations broadcast as they do step by step.
    """

    rank = 1

    def name(self, name: str) -> Closure:
        if name == "t":
            return self._constant(self._pad(numpy.arange(self.steps), 0))
        if name in self.sequences:
            return self.sequence(name, 0)
        value: Any = self.params[name] if name != "steps" else self.steps
        if hasattr(value, "ndim"):
            value = value.reshape((1,) * (self.rank - value.ndim) + tuple(value.shape))
        return self._constant(value)

    def sequence(self, name: str, offset: int) -> Closure:
        shift = offset - self.offsets[name][0]
        rows = self.sequences[name][shift:shift + self.steps]
        return self._constant(self._pad(rows, rows.ndim - 1))

    def _pad(self, rows: Any, element_rank: int) -> Any:
        ones = (1,) * (self.rank - 1 - element_rank)
        return rows.reshape((rows.shape[0], *ones, *rows.shape[1:]))

    @staticmethod
    def _constant(value: Any) -> Closure:
        return lambda frame: value


class _ProbeBindings(_StepBindings):
    """Step 0 with states given as plain values, tolerant of empty sequences."""

    def __init__(self, base: _StepBindings, states: dict[str, Any], current: dict[str, Any],
                 depths: Mapping[str, int]) -> None:
        super().__init__(base.params, base.sequences, base.offsets, base.steps, None)
        self.states = states
        self.current = current
        self.depths = depths

    def output(self, name: str, lag: int) -> Closure:
        if name not in self.depths:
            raise KeyError(name)
        if lag == 0:
            current = self.current
            return lambda frame: current[name]
        rows = self.states[name]
        row = self.depths[name] - lag
        return lambda frame: rows[row]

    def sequence(self, name: str, offset: int) -> Closure:
        array = self.sequences[name]
        index = offset - self.offsets[name][0]
        if index >= len(array):  # zero steps over an empty sequence: any element will do
            element = numpy.zeros(array.shape[1:], array.dtype)
            return lambda frame: element
        return lambda frame: array[index]


class _Probe:
    """Step 0, repeated until every state's shape stops changing (lanes spread)."""

    def __init__(self, spec: Spec, analysis: Analysis, backend: Any, params: Mapping[str, Any],
                 sequences: Mapping[str, Any], steps: int, initials: Mapping[str, Any]) -> None:
        self.spec = spec
        self.analysis = analysis
        self.backend = backend
        self.base = _StepBindings(params, sequences, analysis.sequence_offsets, steps, None)
        self.initials = initials

    def settle(self) -> tuple[dict[str, tuple[int, ...]], dict[int, str],
                              dict[str, tuple[int, int] | None], dict[int, Observation]]:
        """State shapes, the types each node saw, integer bounds to check on store, and
        what each node gave."""
        shapes = {name: _per_step_shape(init) for name, init in self.initials.items()}
        for _ in range(len(self.spec.outputs) + 2):
            record: dict[int, str] = {}
            observations: dict[int, Observation] = {}
            new_shapes, bounds = self.step(shapes, record, observations)
            if self._settled(shapes, new_shapes):
                return new_shapes, record, bounds, observations
            shapes = new_shapes
        raise SpecError("the state shapes do not settle", self.spec.span)

    def _settled(self, old: Mapping[str, tuple[int, ...]],
                 new: Mapping[str, tuple[int, ...]]) -> bool:
        """Whether another step would see what this one saw: only states read steps back
        enter a step (reads at `t` see this step's values, already of their new shape)."""
        return all(new[name] == shape or self.analysis.depth(name) == 0
                   for name, shape in old.items())

    def step(self, shapes: dict[str, tuple[int, ...]], record: dict[int, str],
             observations: dict[int, Observation]) -> tuple[
        dict[str, tuple[int, ...]], dict[str, tuple[int, int] | None]
    ]:
        xp = self.backend.xp
        states = {name: _broadcast_initial(init, shapes[name], xp)
                  for name, init in self.initials.items()}
        current: dict[str, Any] = {}
        bindings = _ProbeBindings(self.base, states, current,
                                  {o: self.analysis.depth(o) for o in self.analysis.order})
        builder = Builder(self.backend, bindings, record=record, observe=observations)
        frame = Frame()
        frame.faults.append([])  # faults surface in the run, at the step where they occur
        new_shapes = dict(shapes)
        bounds: dict[str, tuple[int, int] | None] = {}
        for name in self.analysis.order:
            output = self.spec.output(name)
            closure = builder.build(output.step)
            where = f"the step of output '{name}'"
            value = self.evaluate(_as_array(xp, closure), frame, output.step, where)
            _check_dimensions(value.ndim, output.step.span, where)
            new_shapes[name] = self.merge(name, shapes[name], tuple(value.shape), output)
            bounds[name] = self.check_dtype(output, value.dtype)
            current[name] = xp.broadcast_to(value.astype(output.dtype), new_shapes[name])
        if self.spec.until is not None:
            value = self.evaluate(builder.build(self.spec.until), frame, self.spec.until,
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


def _check_int_literals(root: n.Node, observations: Mapping[int, Observation]) -> None:
    """Refuse an integer literal that an operation on a narrower integer dtype cannot
    hold (`x % 4294967296`, x int32): NumPy refuses it too, and a kernel working in
    int64 would quietly give another answer. Comparisons are exact and exempt."""
    for node in n.walk(root):
        seen = observations.get(id(node))
        if (seen is None or seen.python or isinstance(node, n.Compare)
                or seen.dtype not in _NARROW_INTS):
            continue
        info = numpy.iinfo(seen.dtype)
        for child in n.children(node):
            value = exact.literal(child)
            if type(value) is int and not info.min <= value <= info.max:
                raise SpecError(
                    f"the integer literal {value} does not fit {seen.dtype}, the dtype this "
                    "operation works in", child.span,
                    (f"{seen.dtype} holds {info.min} to {info.max}; declare the output "
                     "'dtype: int64', or use a literal in that range",))


_NARROW_INTS = frozenset({"int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64"})


def _kept_bytes(spec: Spec, analysis: Analysis, shapes: Mapping[str, tuple[int, ...]],
                keeps: Mapping[str, str], steps: int) -> dict[str, int]:
    """The bytes each output's history takes: every step, or a ring of its taps."""
    sizes = {}
    for output in spec.outputs:
        name = output.name.name
        rows = analysis.depth(name) + (steps if keeps[name] == "all" else 1)
        sizes[name] = rows * math.prod(shapes[name]) * numpy.dtype(output.dtype).itemsize
    return sizes


def _check_memory(sizes: Mapping[str, int], backend: Any) -> None:
    """Refuse, before allocating, a run whose outputs cannot fit in memory: on the device,
    and on the host, where they come back; leaving a margin free (`Room.usable`)."""
    needed = sum(sizes.values())
    if needed <= ALWAYS_AVAILABLE:
        return
    rooms = [backend.memory_room(), *([] if backend.name == "cpu" else [host_room()])]
    for room in rooms:
        if room is not None and needed > room.usable():
            parts = ", ".join(f"{name}: {format_bytes(size)}" for name, size in sizes.items())
            raise RunError(
                f"the outputs need {format_bytes(needed)} ({parts}), more than the "
                f"{format_bytes(room.usable())} of memory available: "
                f"{format_bytes(room.size)} under {room.source}, less "
                f"{format_bytes(room.margin())} kept free",
                notes=(fitting_hint(),),
            )


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _as_array(xp: Any, closure: Closure) -> Closure:
    """The closure's value as an array of the backend (a Python number becomes 0-d)."""
    return lambda frame: xp.asarray(closure(frame))
