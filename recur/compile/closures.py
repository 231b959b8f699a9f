"""Expression tree -> a Python closure over the array module, built once per run.

Each node becomes a closure over its children's closures, so a step costs a handful
of calls and no tree walking. Integer operations are checked (see `intops`).

Closures are built in one of two ways. Without `types`, every arithmetic node looks
at its operands at run time (used for one-off evaluations and for the probe step that
settles shapes and dtypes, which records what it saw into `record`). With `types`
from the probe, each node is built for the kind of values it will see, so float
arithmetic runs with no check at all.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy

from recur.compile.frame import Fault, Frame
from recur.diagnostics import ExprError
from recur.lang import exact, intops
from recur.lang import nodes as n
from recur.lang.casts import CAST_REFUSED_NOTE, CastRefused
from recur.lang.functions import CONSTANTS, FUNCTIONS
from recur.lang.host import to_host

Closure = Callable[["Frame"], Any]

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    **intops.PYTHON_BINARY,
    "@": operator.matmul,
}
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_SHADOW_CHECKED = frozenset({"sum", "prod", "dot"})

# What a checked node saw in the probe: Python numbers, integer arrays, or anything else.
PY, INT, OTHER = "py", "int", "other"


class Bindings(Protocol):
    """How names resolve where an expression is built (params only, or a whole step)."""

    def name(self, name: str) -> Closure: ...

    def output(self, name: str, lag: int) -> Closure: ...

    def sequence(self, name: str, offset: int) -> Closure: ...

    def is_constant(self, name: str) -> bool:
        """Whether the name has the same value at every step (params, `steps`)."""
        ...

    def is_sequence(self, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Observation:
    """What a node gave in the probe step: a Python number or an array, its shape, dtype."""

    python: bool
    shape: tuple[int, ...]
    dtype: str


# Sub-expressions free of state are computed for all steps at once, but only up to this
# many bytes, and only with operations that work lane by lane.
SWEEP_BUDGET = 64 * 2**20
_SWEEPABLE = (n.Number, n.Name, n.Unary, n.Binary, n.Compare, n.Select, n.Call, n.Subscript)
_WIDE_DTYPES = frozenset({"float64", "int64", "complex128", "bool"})


_DTYPE_NAMES: dict[numpy.dtype, str] = {}


def _dtype_name(dtype: numpy.dtype) -> str:
    """`str(dtype)`, which NumPy computes in Python each time: once per node of a probe."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


class Builder:
    """Builds closures for the nodes of one context; see the module docstring."""

    def __init__(
        self,
        backend: Any,
        bindings: Bindings,
        types: dict[int, str] | None = None,
        record: dict[int, str] | None = None,
        hoist: bool = False,
        observe: dict[int, Observation] | None = None,
        sweep: tuple[Any, int, dict[int, Observation]] | None = None,
    ) -> None:
        """`observe` collects what each node gives (the probe). `hoist` computes constant
        sub-expressions once; `sweep` = (bindings over whole sequences, steps, the probe's
        observations) computes state-free ones for all steps at once."""
        self.backend = backend
        self.xp = backend.xp
        self.bindings = bindings
        self.types = types
        self.record = record
        self.hoist = hoist
        self.observe = observe
        self.sweep = sweep
        # Sub-expressions moved out of the loop, with their values (for explain, and for
        # compiled engines, which take them as arguments).
        self.hoisted: dict[int, tuple[n.Node, Any]] = {}  # id -> (node, value)
        self.swept: dict[int, tuple[n.Node, Any]] = {}  # id -> (node, rows by step)

    def build(self, node: n.Node) -> Closure:
        if self.hoist and not isinstance(node, n.Number | n.Name | n.TimeIndex):
            if self._invariant(node):
                return self._hoisted(node)
            if self.sweep is not None and self._sweepable(node):
                return self._swept(node)
        method: Callable[[Any], Closure] = getattr(self, f"_build_{type(node).__name__}")
        closure = method(node)
        if self.observe is not None:
            return self._observed(node, closure)
        return closure

    def _observed(self, node: n.Node, closure: Closure) -> Closure:
        observe, asarray = self.observe, self.xp.asarray
        assert observe is not None

        def observed(frame: Frame) -> Any:
            value = closure(frame)
            if not isinstance(value, list):
                array = asarray(value)
                observe[id(node)] = Observation(
                    intops.is_python_number(value), tuple(array.shape), _dtype_name(array.dtype))
            return value

        return observed

    def _unhoisted(self, node: n.Node) -> Closure:
        """The subtree built plainly: no hoisting or sweeping inside it."""
        hoist, self.hoist = self.hoist, False
        try:
            return self.build(node)
        finally:
            self.hoist = hoist

    def _invariant(self, node: n.Node) -> bool:
        """The same value at every step: built from literals, constants and params only."""
        if isinstance(node, n.TimeIndex):
            return False
        if isinstance(node, n.Name):
            return node.id in CONSTANTS or self.bindings.is_constant(node.id)
        return all(self._invariant(child) for child in n.children(node))

    def _hoisted(self, node: n.Node) -> Closure:
        """Evaluate once; a sub-expression that fails stays in the loop, to fail at its step."""
        closure = self._unhoisted(node)
        try:
            with self.backend.errstate():
                value = closure(Frame())
        except (Fault, ArithmeticError, ValueError, TypeError, IndexError, MemoryError):
            return closure
        self.hoisted[id(node)] = (node, value)
        return lambda frame: value

    def _sweepable(self, node: n.Node) -> bool:
        """State-free, lane-by-lane, worth it, and giving the loop's exact values."""
        assert self.sweep is not None
        _, steps, observations = self.sweep
        if steps == 0 or isinstance(node, n.Subscript):  # a bare read costs nothing
            return False
        subtree = list(_parts(node))
        if not all(self._lane_wise(part) for part in subtree):
            return False
        seen = [observations.get(id(part)) for part in subtree]
        if any(observation is None for observation in seen):
            return False
        largest = max(math.prod(o.shape) for o in seen if o is not None)
        if steps * largest * 16 > SWEEP_BUDGET:
            return False
        # A Python number in the loop is "weak"; swept, it becomes a strong array. That
        # changes results only next to narrower dtypes, so those are left in the loop.
        weak = any(o.python for part, o in zip(subtree, seen, strict=True)
                   if o is not None and not self._invariant(part))
        return not weak or all(o.dtype in _WIDE_DTYPES for o in seen if o is not None)

    def _lane_wise(self, node: n.Node) -> bool:
        if isinstance(node, n.Subscript):  # only `s[t+k]`, a sequence read
            target = node.value
            return (isinstance(target, n.Name) and self.bindings.is_sequence(target.id)
                    and len(node.index) == 1 and isinstance(node.index[0], n.TimeIndex))
        if isinstance(node, n.TimeIndex):
            return True
        if isinstance(node, n.Call):
            return FUNCTIONS[node.func].kind == "elementwise" or (
                node.func in ("min", "max") and len(node.args) > 1)
        if isinstance(node, n.Binary):
            return node.op != "@"
        return isinstance(node, _SWEEPABLE)

    def _swept(self, node: n.Node) -> Closure:
        """All steps' values at once, as rows indexed by `t`; the loop's closure if that fails."""
        assert self.sweep is not None
        bindings, steps, observations = self.sweep
        seen = observations[id(node)]
        bindings.rank = 1 + max(len(observations[id(part)].shape) for part in _parts(node))
        try:
            with self.backend.errstate():
                value = self.xp.asarray(Builder(self.backend, bindings).build(node)(Frame()))
                rows = self.xp.broadcast_to(value, (steps, *value.shape[1:])).reshape(
                    (steps, *seen.shape))
        except (Fault, ArithmeticError, ValueError, TypeError, IndexError, MemoryError):
            return self._unhoisted(node)
        if str(rows.dtype) != seen.dtype:
            return self._unhoisted(node)
        self.swept[id(node)] = (node, rows)
        if seen.python:
            values = rows.tolist()
            return lambda frame: values[frame.t]
        return lambda frame: rows[frame.t]

    def array(self, node: n.Node) -> Closure:
        """Like `build`, but a list literal becomes an array (for arithmetic on it)."""
        closure = self.build(node)
        if isinstance(node, n.ListExpr):
            asarray = self.xp.asarray
            return lambda frame: asarray(closure(frame))
        return closure

    def _seen(self, node: n.Node) -> str | None:
        return None if self.types is None else self.types.get(id(node))

    def _note(self, node: n.Node, kind: str) -> None:
        if self.record is not None:
            self.record[id(node)] = kind

    # Leaves

    def _build_Number(self, node: n.Number) -> Closure:
        value = node.value
        return lambda frame: value

    def _build_Name(self, node: n.Name) -> Closure:
        if node.id in CONSTANTS:
            value = CONSTANTS[node.id]
            return lambda frame: value
        return self.bindings.name(node.id)

    def _build_TimeIndex(self, node: n.TimeIndex) -> Closure:
        offset = node.offset
        return lambda frame: frame.t + offset

    def _build_ListExpr(self, node: n.ListExpr) -> Closure:
        items = [self.build(item) for item in node.items]
        return lambda frame: [item(frame) for item in items]

    # Arithmetic

    def _build_Binary(self, node: n.Binary) -> Closure:
        if _fixed_power(node):
            if exact.is_half(node.right):
                return self._half_power(self.array(node.left))
            k = exact.integer_exponent(node.right)
            assert k is not None
            return self._integer_power(node, self.array(node.left), k)
        left, right = self.array(node.left), self.array(node.right)
        if node.op in ("and", "or"):
            logical = self.xp.logical_and if node.op == "and" else self.xp.logical_or
            return lambda frame: logical(left(frame), right(frame))
        op = node.op
        plain = self._plain(op)
        if op == "@":
            return self._shadowed(node, lambda frame: plain(left(frame), right(frame)),
                                  lambda values: plain(*values), (left, right))
        seen = self._seen(node)
        if seen == OTHER or (seen == INT and op not in intops.CHECKED_BINARY):
            return lambda frame: plain(left(frame), right(frame))
        if seen == INT:
            checked = intops.checked_binary

            def integer(frame: Frame) -> Any:
                result, bad, kind = checked(op, left(frame), right(frame))
                if bad.any():
                    frame.fault(kind, bad, node)
                return result

            return integer
        return self._generic_binary(node, left, right)

    def _plain(self, op: str) -> Callable[[Any, Any], Any]:
        """The unchecked operator; `**` is the `power` function, never `ndarray.__pow__`,
        whose shortcuts (0.5 -> sqrt, 2 -> square) single NumPy values do not take."""
        return exact.float_power(self.xp) if op == "**" else _OPERATORS[op]

    def _half_power(self, base: Closure) -> Closure:
        """`x ** 0.5`: `exact.half_power` on floats, `power` on complex values."""
        xp, power = self.xp, self._plain("**")

        def half_power(frame: Frame) -> Any:
            a = base(frame)
            if intops.is_python_number(a):
                if isinstance(a, complex):
                    return intops.python_binary("**", a, 0.5)[0]
                with numpy.errstate(all="ignore"):
                    return exact.half_power(numpy, exact.as_numpy(a)).item()
            dtype = numpy.result_type(a.dtype, 0.5)
            if dtype.kind != "f":
                return power(a, 0.5)
            return exact.half_power(xp, a if a.dtype == dtype else a.astype(dtype))

        return half_power

    def _integer_power(self, node: n.Binary, base: Closure, k: int) -> Closure:
        """`x ** k` for an integer literal k: checked on integers, else `exact.chain`."""
        exponent: int | float = k if isinstance(exact.literal(node.right), int) else float(k)
        power, checked = exact.integer_power, intops.checked_binary
        natural = isinstance(exponent, int) and k >= 0  # an int to it stays an int

        def integer_power(frame: Frame) -> Any:
            a = base(frame)
            if intops.is_python_number(a):
                if natural and isinstance(a, int):
                    result, fault = intops.python_binary("**", a, exponent)
                    if fault:
                        frame.fault(fault, None, node)
                    return result
                return exact.weak_integer_power(a, k)
            dtype = numpy.result_type(a.dtype, exponent)
            if dtype.kind in "iub":
                result, bad, kind = checked("**", a, exponent)
                if bad.any():
                    frame.fault(kind, bad, node)
                return result
            return power(a if a.dtype == dtype else a.astype(dtype), k)

        return integer_power

    def _generic_binary(self, node: n.Binary, left: Closure, right: Closure) -> Closure:
        op, plain = node.op, self._plain(node.op)
        note = self._note

        def generic(frame: Frame) -> Any:
            a, b = left(frame), right(frame)
            if intops.is_python_number(a) and intops.is_python_number(b):
                note(node, PY)
                result, fault = intops.python_binary(op, a, b)
                if fault:
                    frame.fault(fault, None, node)
                return result
            if op in intops.CHECKED_BINARY and _result_kind(a, b) in "iu":
                note(node, INT)
                result, bad, kind = intops.checked_binary(op, a, b)
                if bad.any():
                    frame.fault(kind, bad, node)
                return result
            note(node, OTHER)
            return plain(a, b)

        return generic

    def _build_Unary(self, node: n.Unary) -> Closure:
        operand = self.array(node.operand)
        if node.op == "+":
            return operand
        if node.op == "not":
            logical_not = self.xp.logical_not
            return lambda frame: logical_not(operand(frame))
        return self._checked_unary(node, operand, intops.negative, operator.neg, operator.neg)

    def _checked_unary(
        self, node: n.Node, operand: Closure, checked: Callable[[Any], Any],
        plain: Callable[[Any], Any], python: Callable[[int], int],
    ) -> Closure:
        seen, note = self._seen(node), self._note
        if seen == OTHER:
            return lambda frame: plain(operand(frame))

        def unary(frame: Frame) -> Any:
            value = operand(frame)
            if isinstance(value, int) and not isinstance(value, bool):
                note(node, PY)
                result = python(value)
                if not intops.INT64_MIN <= result <= intops.INT64_MAX:
                    frame.fault(intops.OVERFLOW, None, node)
                return result
            if intops.is_int_array(value):
                note(node, INT)
                result, bad, kind = checked(value)
                if bad.any():
                    frame.fault(kind, bad, node)
                return result
            note(node, OTHER)
            return plain(value)

        return unary

    def _build_Compare(self, node: n.Compare) -> Closure:
        operands = [self.array(operand) for operand in node.operands]
        tests = [_as_numpy_compares(_COMPARISONS[op]) for op in node.ops]
        if len(tests) == 1:
            test, left, right = tests[0], operands[0], operands[1]
            return lambda frame: test(left(frame), right(frame))
        logical_and = self.xp.logical_and

        def chain(frame: Frame) -> Any:
            values = [operand(frame) for operand in operands]
            result = tests[0](values[0], values[1])
            for i, test in enumerate(tests[1:], start=1):
                result = logical_and(result, test(values[i], values[i + 1]))
            return result

        return chain

    def _build_Select(self, node: n.Select) -> Closure:
        test, body, orelse = self.array(node.test), self.array(node.body), self.array(node.orelse)
        where, xp = self.xp.where, self.xp

        def select(frame: Frame) -> Any:
            condition = test(frame)
            frame.faults.append([])
            try:
                picked = body(frame)
            finally:
                body_faults = frame.faults.pop()
            frame.faults.append([])
            try:
                other = orelse(frame)
            finally:
                other_faults = frame.faults.pop()
            if body_faults or other_faults:
                _forgive(xp, frame, condition, body_faults, other_faults)
            if isinstance(condition, bool):
                return picked if condition else other
            return where(condition, picked, other)

        return select

    # Calls and indexing

    def _build_Call(self, node: n.Call) -> Closure:
        function = FUNCTIONS[node.func]
        if node.func in ("minimum", "maximum", "clip"):
            impl = _extremum(self.xp, node.func)
        else:
            impl = function.resolve(self.backend)
        args = [self.build(arg) for arg in node.args]
        if node.func in ("min", "max") and len(args) > 1:
            fold = exact.ieee_extremum(self.xp, largest=node.func == "max")

            def elementwise(frame: Frame) -> Any:
                result = args[0](frame)
                for arg in args[1:]:
                    result = fold(result, arg(frame))
                return result

            return elementwise
        if node.func == "abs":
            return self._checked_unary(node, args[0], intops.absolute, impl, abs)
        if function.checked:
            return _checked_call(node, impl, args)
        call = _call(impl, args, n.constant_axis(node.axis) if node.axis is not None else None)
        if node.func in _SHADOW_CHECKED:
            return self._shadowed(node, call, lambda values: impl(*values), args)
        return call

    def _shadowed(
        self, node: n.Node, call: Closure, again: Callable[[list[Any]], Any],
        args: tuple[Closure, ...] | list[Closure],
    ) -> Closure:
        """An integer reduction, checked against the same reduction done in float64."""
        if self._seen(node) == OTHER:
            return call
        note = self._note

        def shadowed(frame: Frame) -> Any:
            result = call(frame)
            if intops.is_int_array(result):
                note(node, INT)
                values = [arg(frame) for arg in args]
                _check_reduction(frame, node, result, values, again)
            else:
                note(node, OTHER)
            return result

        return shadowed

    def _build_Subscript(self, node: n.Subscript) -> Closure:
        target = node.value
        index = node.index[0] if len(node.index) == 1 else None
        if isinstance(target, n.Name) and isinstance(index, n.TimeIndex):
            read = self._time_read(target.id, index.offset)
            if read is not None:
                return read
        value = self.build(target)
        parts = [self.build(part) for part in node.index]
        if len(parts) == 1:
            part = parts[0]
            return lambda frame: value(frame)[_index(part(frame))]
        return lambda frame: value(frame)[tuple(_index(p(frame)) for p in parts)]

    def _time_read(self, name: str, offset: int) -> Closure | None:
        try:
            return self.bindings.output(name, -offset)
        except KeyError:
            pass
        try:
            return self.bindings.sequence(name, offset)
        except KeyError:
            return None

    def _build_Slice(self, node: n.Slice) -> Closure:
        parts = [None if p is None else self.build(p) for p in (node.lower, node.upper, node.step)]
        lower, upper, step = (p or (lambda frame: None) for p in parts)
        return lambda frame: slice(lower(frame), upper(frame), step(frame))


def _as_numpy_compares(test: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A comparison of a Python int with a Python float as NumPy makes it, on the int
    rounded to a float (Python compares them exactly: 2**53 + 1 > 2.0**53)."""
    def compare(a: Any, b: Any) -> Any:
        if type(a) is int and type(b) is float:
            return test(float(a), b)
        if type(a) is float and type(b) is int:
            return test(a, float(b))
        return test(a, b)

    return compare


def _extremum(xp: Any, func: str) -> Callable[..., Any]:
    """`minimum`, `maximum` and `clip` as IEEE 754-2019 defines them (see `exact`)."""
    minimum = exact.ieee_extremum(xp, largest=False)
    maximum = exact.ieee_extremum(xp, largest=True)
    if func == "clip":
        return lambda a, low, high: minimum(maximum(a, low), high)
    return minimum if func == "minimum" else maximum


def _parts(node: n.Node) -> Iterator[n.Node]:
    """The nodes of a subtree as evaluated: a read `s[t+k]` counts as one node."""
    yield node
    if isinstance(node, n.Subscript):
        return
    children = n.children(node)
    if _fixed_power(node):
        children = children[:1]  # the base; the literal exponent has no closure
    for child in children:
        yield from _parts(child)


def _fixed_power(node: n.Node) -> bool:
    """`x ** k`, k a literal computed without `pow` (an integer, or 0.5: see `exact`);
    the literal's closure is never built."""
    return isinstance(node, n.Binary) and node.op == "**" and (
        exact.integer_exponent(node.right) is not None or exact.is_half(node.right))


def _call(impl: Callable[..., Any], args: list[Closure], axis: Any) -> Closure:
    if axis is not None:
        return lambda frame: impl(*[arg(frame) for arg in args], axis=axis)
    if len(args) == 1:
        only = args[0]
        return lambda frame: impl(only(frame))
    return lambda frame: impl(*[arg(frame) for arg in args])


def _checked_call(node: n.Call, impl: Callable[..., Any], args: list[Closure]) -> Closure:
    """A function that says which lanes it got wrong (a cast); refusals get its place."""

    def checked(frame: Frame) -> Any:
        try:
            result, faults = impl(*[arg(frame) for arg in args])
        except CastRefused as refusal:
            raise ExprError(str(refusal), node.span, (CAST_REFUSED_NOTE,)) from None
        for kind, bad in faults:
            if bad.any():
                frame.fault(kind, bad, node)
        return result

    return checked


def _index(value: Any) -> Any:
    """A list index selects elements (fancy indexing), as in NumPy."""
    return numpy.asarray(value) if isinstance(value, list) else value


def _result_kind(a: Any, b: Any) -> str:
    def dtype_of(value: Any) -> Any:
        return getattr(value, "dtype", value)

    if isinstance(a, list) or isinstance(b, list):
        return "O"
    return str(numpy.result_type(dtype_of(a), dtype_of(b)).kind)


def _as_float(value: Any) -> Any:
    if isinstance(value, list):
        return numpy.asarray(value, dtype=numpy.float64)
    if hasattr(value, "astype") and value.dtype.kind in "iub":
        return value.astype(numpy.float64)
    return value


def _as_exact(value: Any) -> Any:
    """Python integers in an object array (on the host), for exact integer sums."""
    return to_host(value).astype(object)


def _check_reduction(frame: Frame, node: n.Node, result: Any, values: list[Any],
                     again: Callable[[list[Any]], Any]) -> None:
    terms = max(int(getattr(v, "size", 1)) for v in values)
    bad = intops.check_reduction(
        result, again([_as_float(v) for v in values]), terms,
        lambda: again([_as_exact(v) for v in values]),
    )
    if bad.any():
        frame.fault(intops.OVERFLOW, bad, node)


def _forgive(
    xp: Any, frame: Frame, condition: Any, body: list[Fault], orelse: list[Fault]
) -> None:
    """Re-raise only the faults of lanes that the select actually picks."""
    for faults, picked in ((body, condition), (orelse, xp.logical_not(condition))):
        for fault in faults:
            if fault.mask is None:
                bad = picked
            else:
                try:
                    bad = xp.logical_and(fault.mask, picked)
                except ValueError:  # shapes differ (a reduction inside the branch)
                    bad = xp.logical_and(fault.mask.any(), xp.any(picked))
            if xp.any(bad):
                frame.fault(fault.kind, bad, fault.node)
