"""One-off evaluations before the loop: params, sequences, the step count, initials.

Each is an expression over params, evaluated once with the run-time-checked closures
of `recur.compile.closures`; integer faults and NumPy's complaints become errors at the
expression's place in the spec.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast

import numpy

from recur.compile import ir, rows
from recur.compile.closures import Builder, Closure
from recur.compile.frame import Frame
from recur.compile.program import Scope, program_tree
from recur.diagnostics import (
    ExprError,
    Fault,
    RunError,
    Span,
    SpecError,
    option,
    option_entry,
    speaking_flags,
)
from recur.lang import nodes as n
from recur.spec import Spec


class ParamBindings:
    """What params, sequences, `steps` and initials read: the values given so far."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def param(self, name: str) -> Closure:
        value = self.values[name]
        return lambda frame: value

    def time(self) -> Closure:
        raise KeyError("t")

    def steps(self) -> Closure:
        raise KeyError("steps")

    def tap(self, output: str, lag: int) -> Closure:
        raise KeyError(output)

    def sequence(self, name: str, row: int) -> Closure:
        raise KeyError(name)

    def state_shape(self, output: str) -> tuple[int, ...]:
        raise KeyError(output)  # random calls are refused before the loop (analyze)


def evaluate(node: n.Node, values: Mapping[str, Any], backend: Any, where: str,
             spec: Spec | None = None) -> Any:
    """The value of an expression over `values` (params, and in an initial sequences as
    whole arrays); lists become arrays, 0-d arrays numbers. An expression of `spec` is
    lowered once, and kept with it.

    A 0-d result becomes a Python number, so that a scalar param is "weak" in NumPy 2's
    promotion, like a number literal: a float32 state times a param stays float32.
    """
    tree = lowered_value(node, spec)
    closure = Builder(backend, ParamBindings(values)).build(tree)
    try:
        with backend.errstate():
            value = closure(Frame())
            return as_value(value, backend.xp)
    except Fault as fault:
        raise RunError(f"{fault.kind} in {where}", fault.node.span) from None
    except MemoryError as exc:
        raise RunError(f"{where} asks for too much memory: {exc}", node.span) from None
    except (ArithmeticError, ValueError, TypeError, IndexError) as exc:
        raise ExprError(f"cannot evaluate {where}: {failure_reason(exc)}", node.span) from None


_EVERY_NAME_A_VALUE = Scope(frozenset(), {}, frozenset())  # every name reads `values`


def lowered_value(node: n.Node, spec: Spec | None) -> ir.Node:
    """`node` as an untyped tree; kept with the spec (whose nodes live as long as it)."""
    if spec is None:
        return program_tree(node, _EVERY_NAME_A_VALUE)
    memo = spec.derived.setdefault("lowered values", {})
    tree = memo.get(id(node))
    if tree is None:
        tree = memo[id(node)] = program_tree(node, _EVERY_NAME_A_VALUE)
    return cast(ir.Node, tree)


def as_value(value: Any, xp: Any) -> Any:
    if isinstance(value, list):
        value = xp.asarray(value)
    if getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def failure_reason(exc: Exception) -> str:
    """Why NumPy failed, in one line of recur's words (a ragged list is not 'inhomogeneous')."""
    text = str(exc).strip() or type(exc).__name__
    if "inhomogeneous" in text:
        return "the nested lists are not rectangular"
    return text.splitlines()[0]


def evaluate_params(
    spec: Spec, overrides: Mapping[str, Any], backend: Any
) -> dict[str, Any]:
    """Params in order; an override (a node from `--set`, or an array) replaces one."""
    values: dict[str, Any] = {}
    for param in spec.params:
        name = param.name.name
        where = f"param '{name}'"
        override = overrides.get(name)
        if isinstance(override, n.Node):
            values[name] = evaluate(override, values, backend, option_entry("params", name))
        elif override is not None:
            values[name] = as_value(backend.xp.asarray(override), backend.xp)
        elif param.value is None:
            raise _missing_input(name, "param", param.span)
        else:
            values[name] = evaluate(param.value, values, backend, where, spec)
    return values


def evaluate_sequences(
    spec: Spec, params: Mapping[str, Any], inputs: Mapping[str, Any], backend: Any,
    cut: bool = False,
) -> dict[str, Any]:
    """Sequences as arrays with time first, reversed under `reverse: true`; with `cut`,
    those `recur.compile.rows` can make in part as a `rows.Arange` (`rows.made` makes
    the rows a run reads)."""
    sequences: dict[str, Any] = {}
    xp = backend.xp
    for sequence in spec.sequences:
        name = sequence.name.name
        where = f"sequence '{name}'"
        if name in inputs:
            value = xp.asarray(inputs[name])
        elif sequence.value is None:
            raise _missing_input(name, "sequence", sequence.span)
        else:
            later = rows.deferred(spec, name, sequence.value,
                                  functools.partial(_argument, params, backend, where, spec)
                                  ) if cut else None
            if later is not None:
                sequences[name] = later
                continue
            value = xp.asarray(evaluate(sequence.value, params, backend, where, spec))
        if value.ndim == 0:
            raise SpecError(
                f"sequence '{name}' is a single number; a sequence needs a time axis",
                sequence.span, ("make it a param if it does not change with t",),
            )
        sequences[name] = value[::-1] if spec.reverse else value
    return sequences


def _argument(params: Mapping[str, Any], backend: Any, where: str, spec: Spec,
              node: n.Node) -> Any:
    return evaluate(node, params, backend, where, spec)


def initial_names(
    spec: Spec, params: Mapping[str, Any], sequences: Mapping[str, Any]
) -> dict[str, Any]:
    """What an initial may read: params, and sequences whole, as given (not reversed)."""
    given = {name: value[::-1] if spec.reverse else value for name, value in sequences.items()}
    return {**params, **given}


def _missing_input(name: str, what: str, span: Span) -> SpecError:
    hint = (f"run with --input {name}=file.npy (or .npz, .csv, or - for standard input)"
            if speaking_flags() else f"pass an array as inputs['{name}']")
    return SpecError(
        f"{what} '{name}' is 'input', but no {option_entry('inputs', name, 'PATH')} was "
        "given", span, (hint,),
    )


# More steps than any run can take (about 30 years at a million steps a second): a count
# beyond it is a mistake, refused before the run rather than left to run until stopped.
MAX_STEPS = 10**15


def count_steps(
    spec: Spec, params: Mapping[str, Any], sequences: Mapping[str, Any],
    offsets: Mapping[str, tuple[int, int]], requested: int | None, backend: Any,
) -> tuple[int, str]:
    """The number of steps and where it came from: `--steps`, `steps:`, or the sequences."""
    reason = f"from {option('steps')}"
    allowed = {
        name: (len(array) - (offsets[name][1] - offsets[name][0]), len(array))
        for name, array in sequences.items()
    }
    for name, (count, length) in allowed.items():
        if count < 0:
            low, high = offsets[name]
            raise SpecError(
                f"sequence '{name}' has {length} element{'' if length == 1 else 's'}, "
                f"fewer than its offsets {low}..{high} need ({high - low + 1})",
                _sequence_span(spec, name),
            )
    if requested is None and spec.steps is not None:
        requested = _integer_steps(evaluate(spec.steps, params, backend, "'steps'", spec),
                                   spec.steps.span)
        reason = "from 'steps:'"
        if requested > MAX_STEPS:
            raise SpecError(f"'steps' is {requested}, more than any run can take; the limit "
                            f"is {MAX_STEPS:,} (10**15)", spec.steps.span)
    if requested is None:
        if not allowed:
            raise SpecError(
                "the number of steps is not given: the spec has no 'steps' and no sequences",
                spec.span, (f"add 'steps: N' to the spec, or run with {option('steps', 'N')}",),
            )
        name = min(allowed, key=lambda name: allowed[name][0])
        count, length = allowed[name]
        low, high = offsets[name]
        return count, (f"as many as sequence '{name}' allows: {length} elements, "
                       f"offsets {low}..{high}")
    for name, (count, length) in allowed.items():
        if requested > count:
            low, high = offsets[name]
            raise SpecError(
                f"{requested} steps asked for, but sequence '{name}' allows {count} "
                f"({length} elements, offsets {low}..{high})", _sequence_span(spec, name),
            )
    return requested, reason


def _sequence_span(spec: Spec, name: str) -> Span:
    return next(s.span for s in spec.sequences if s.name.name == name)


def _integer_steps(value: Any, span: Span) -> int:
    if isinstance(value, bool) or not isinstance(value, int | numpy.integer):
        hint: tuple[str, ...] = ()
        if isinstance(value, float):
            hint = ("YAML reads 1e3 as text, which evaluates to a float; write 1000",)
        raise SpecError(f"'steps' must be an integer, not {value!r}", span, hint)
    if value < 0:
        raise SpecError(f"'steps' must be >= 0, not {value}", span)
    return int(value)
