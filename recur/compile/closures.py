"""A `Program` tree (`recur.compile.ir`) -> a Python closure over the array module.

Each node becomes a closure over its children's closures, so a step costs a handful
of calls and no tree walking. Integer operations are checked (see `intops`). These
closures define what an expression means: lowering evaluates params, initials and
the probe step with them, and the interpreter runs the loop with them.

A tree without types (lowered but not yet probed) gives closures where every
arithmetic node looks at its operands at run time; the probe step runs those and
records what each node saw (`observe`). A typed tree gives closures built for the
kind of values each node will see, so float arithmetic runs with no check at all.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Protocol

import numpy

from recur.compile import ir
from recur.compile.frame import Frame
from recur.compile.ir import INT, OTHER, PY
from recur.diagnostics import ExprError, Fault
from recur.lang import exact, intops, philox
from recur.lang.casts import CAST_REFUSED_NOTE, CastRefused
from recur.lang.functions import FUNCTIONS
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


class Bindings(Protocol):
    """Where the leaves of a tree get their values: params, `t`, `steps`, the states read
    by taps and the rows of sequences (a run, the probe step, a sweep, params only)."""

    def param(self, name: str) -> Closure: ...

    def time(self) -> Closure: ...

    def steps(self) -> Closure: ...

    def tap(self, output: str, lag: int) -> Closure: ...

    def sequence(self, name: str, row: int) -> Closure:
        """The sequence's row `t + row` (the read `name[t + offset]`)."""
        ...

    def state_shape(self, output: str) -> tuple[int, ...]:
        """The shape of `output`'s state as far as known ("" for `until`: one value),
        which a random call draws for (`ir.Draw`)."""
        ...


_DTYPE_NAMES: dict[numpy.dtype, str] = {}


def _dtype_name(dtype: numpy.dtype) -> str:
    """`str(dtype)`, which NumPy computes in Python each time: once per node of a probe."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


class Builder:
    """Builds closures for the nodes of one tree; see the module docstring.

    `slots` gives the values of `Hoisted` and `Swept` nodes (a `Program`'s). `observe`
    collects what each node gives, and `record` what each checked operation saw (the
    probe step, on an untyped tree). `typed=False` ignores the types of a typed tree
    (values of other kinds than the loop's: a sweep over all steps).
    """

    def __init__(
        self,
        backend: Any,
        bindings: Bindings,
        slots: ir.Program | None = None,
        observe: dict[ir.Node, ir.Type] | None = None,
        record: dict[ir.Node, str] | None = None,
        typed: bool = True,
        seed: int = 0,
    ) -> None:
        self.backend = backend
        self.seed = slots.seed if slots is not None else seed
        self.first_lane = slots.first_lane if slots is not None else 0
        self.typed = typed
        self.xp = backend.xp
        self.bindings = bindings
        self.slots = slots
        self.observe = observe
        self.record = record

    def build(self, node: ir.Node) -> Closure:
        method: Callable[[Any], Closure] = getattr(self, f"_build_{type(node).__name__}")
        closure = method(node)
        if self.observe is not None:
            return self._observed(node, closure)
        return closure

    def _observed(self, node: ir.Node, closure: Closure) -> Closure:
        observe, asarray = self.observe, self.xp.asarray
        assert observe is not None

        def observed(frame: Frame) -> Any:
            value = closure(frame)
            if not isinstance(value, list):
                array = asarray(value)
                observe[node] = ir.Type(_dtype_name(array.dtype), tuple(array.shape),
                                        intops.is_python_number(value))
            return value

        return observed

    def array(self, node: ir.Node) -> Closure:
        """Like `build`, but a list literal becomes an array (for arithmetic on it)."""
        closure = self.build(node)
        if isinstance(node, ir.ListExpr):
            asarray = self.xp.asarray
            return lambda frame: asarray(closure(frame))
        return closure

    def _seen(self, node: ir.Node) -> str | None:
        return None if node.type is None or not self.typed else node.type.arithmetic

    def _note(self, node: ir.Node, kind: str) -> None:
        if self.record is not None:
            self.record[node] = kind

    # Leaves

    def _build_Literal(self, node: ir.Literal) -> Closure:
        value = node.value
        return lambda frame: value

    def _build_Param(self, node: ir.Param) -> Closure:
        return self.bindings.param(node.name)

    def _build_Time(self, node: ir.Time) -> Closure:
        return self.bindings.time()

    def _build_Steps(self, node: ir.Steps) -> Closure:
        return self.bindings.steps()

    def _build_TimeIndex(self, node: ir.TimeIndex) -> Closure:
        offset, time = node.offset, self.bindings.time()
        return lambda frame: time(frame) + offset

    def _build_Tap(self, node: ir.Tap) -> Closure:
        return self.bindings.tap(node.output, node.lag)

    def _build_SequenceRead(self, node: ir.SequenceRead) -> Closure:
        return self.bindings.sequence(node.sequence, node.row)

    def _build_Hoisted(self, node: ir.Hoisted) -> Closure:
        assert self.slots is not None
        value = self.slots.hoisted[node.slot]
        return lambda frame: value

    def _build_Swept(self, node: ir.Swept) -> Closure:
        assert self.slots is not None and node.type is not None
        rows = self.slots.swept[node.slot]
        if rows is None:  # the sweep failed: computed in the loop, to fail at its step
            return self.build(node.source)
        if node.type.python:  # Python numbers in the loop stay Python numbers
            values = rows.tolist()
            return lambda frame: values[frame.t]
        return lambda frame: rows[frame.t]

    def _build_ListExpr(self, node: ir.ListExpr) -> Closure:
        items = [self.build(item) for item in node.items]
        return lambda frame: [item(frame) for item in items]

    # Arithmetic

    def _build_Binary(self, node: ir.Binary) -> Closure:
        fixed = ir.fixed_exponent(node)
        if fixed is not None:
            if exact.is_half_of(fixed):
                return self._half_power(self.array(node.left))
            k = exact.integer_exponent_of(fixed)
            assert k is not None
            return self._integer_power(node, self.array(node.left), fixed, k)
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

    def _integer_power(self, node: ir.Binary, base: Closure, fixed: int | float,
                       k: int) -> Closure:
        """`x ** k` for an integer literal k: checked on integers, else `exact.chain`."""
        exponent: int | float = k if isinstance(fixed, int) else float(k)
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

    def _generic_binary(self, node: ir.Binary, left: Closure, right: Closure) -> Closure:
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

    def _build_Unary(self, node: ir.Unary) -> Closure:
        operand = self.array(node.operand)
        if node.op == "+":
            return operand
        if node.op == "not":
            logical_not = self.xp.logical_not
            return lambda frame: logical_not(operand(frame))
        return self._checked_unary(node, operand, intops.negative, operator.neg, operator.neg)

    def _checked_unary(
        self, node: ir.Node, operand: Closure, checked: Callable[[Any], Any],
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

    def _build_Compare(self, node: ir.Compare) -> Closure:
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

    def _build_Select(self, node: ir.Select) -> Closure:
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

    def _build_Call(self, node: ir.Call) -> Closure:
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
        call = _call(impl, args, node.axis)
        if node.func in _SHADOW_CHECKED:
            return self._shadowed(node, call, lambda values: impl(*values), args)
        return call

    def _shadowed(
        self, node: ir.Node, call: Closure, again: Callable[[list[Any]], Any],
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

    def _build_SumTo(self, node: ir.SumTo) -> Closure:
        operand, shape, xp = self.array(node.operand), node.shape, self.xp
        return lambda frame: _sum_to(xp, operand(frame), shape)

    def _build_Draw(self, node: ir.Draw) -> Closure:
        """At step t, element e of the draw's shape gets the words of Philox4x64-10 with
        counter (t, e, site, 0) and key (seed, 0), transformed (`recur.lang.philox`)."""
        xp, args = self.xp, [self.build(arg) for arg in node.args]
        seed, site, kind, output = self.seed, node.site, node.kind, node.output
        fixed = node.type.shape if node.type is not None and self.typed else None
        state_shape, first_lane = self.bindings.state_shape, self.first_lane

        def draw(frame: Frame) -> Any:
            values = [xp.asarray(arg(frame)) for arg in args]
            shape = fixed if fixed is not None else tuple(numpy.broadcast_shapes(
                state_shape(output), *(value.shape for value in values)))
            w0, w1 = philox.words(xp, seed, site, frame.t, math.prod(shape),
                                  ir.first_element(shape, first_lane))
            if kind == "integers":
                low, high = (_integer_bound(node, value) for value in values)
                empty = high <= low
                if bool(empty.any()):
                    frame.fault(EMPTY_RANGE, xp.broadcast_to(empty, shape), node)
                return philox.integers(xp, w0.reshape(shape), low, high)
            drawn = (philox.unit(xp, w0) if kind == "uniform"
                     else philox.normal(xp, w0, w1)).reshape(shape)
            if not values:
                return drawn
            low, scale = (_real_bound(node, value) for value in values)
            if kind == "uniform":
                scale = scale - low  # uniform(low, high) = low + (high - low) * uniform()
            return low + scale * drawn

        return draw

    def _build_Subscript(self, node: ir.Subscript) -> Closure:
        value = self.build(node.value)
        parts = [self.build(part) for part in node.index]
        if len(parts) == 1:
            part = parts[0]
            return lambda frame: value(frame)[_index(part(frame))]
        return lambda frame: value(frame)[tuple(_index(p(frame)) for p in parts)]

    def _build_Slice(self, node: ir.Slice) -> Closure:
        parts = [None if p is None else self.build(p) for p in (node.lower, node.upper, node.step)]
        lower, upper, step = (p or (lambda frame: None) for p in parts)
        return lambda frame: slice(lower(frame), upper(frame), step(frame))


EMPTY_RANGE = "an empty range (high <= low) in integers(low, high)"


def _sum_to(xp: Any, value: Any, shape: tuple[int, ...]) -> Any:
    """`value` summed over the leading axes it has beyond `shape`, and over those where
    `shape` has length 1 and it has more: what broadcasting `shape` added, taken back. A
    value smaller than `shape` stays as it is (it broadcasts to it)."""
    array = xp.asarray(value)
    offset = len(shape) - array.ndim  # shapes align on the right
    extra = max(-offset, 0)
    axes = (*range(extra), *(axis for axis in range(extra, array.ndim)
                             if shape[axis + offset] == 1 and array.shape[axis] != 1))
    if not axes:
        return value
    summed = array.sum(axis=axes, keepdims=True)
    return summed.reshape(summed.shape[extra:])


def _integer_bound(node: ir.Draw, value: Any) -> Any:
    """A bound of `integers`, as int64: integers only (a float bound has no one meaning)."""
    if value.dtype.kind not in "iub":
        raise ExprError(f"integers() takes integer bounds, not {value.dtype} values",
                        node.span, ("cast a bound: integers(0, int64(n))",))
    return value.astype(numpy.int64)


def _real_bound(node: ir.Draw, value: Any) -> Any:
    """An argument of `uniform` or `normal`, as float64 (their arithmetic's dtype)."""
    if value.dtype.kind == "c":
        raise ExprError(f"{node.kind}() takes real arguments, not {value.dtype} values",
                        node.span)
    return value.astype(numpy.float64)


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




def _call(impl: Callable[..., Any], args: list[Closure], axis: Any) -> Closure:
    if axis is not None:
        return lambda frame: impl(*[arg(frame) for arg in args], axis=axis)
    if len(args) == 1:
        only = args[0]
        return lambda frame: impl(only(frame))
    return lambda frame: impl(*[arg(frame) for arg in args])


def _checked_call(node: ir.Call, impl: Callable[..., Any], args: list[Closure]) -> Closure:
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


def _check_reduction(frame: Frame, node: ir.Node, result: Any, values: list[Any],
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
