"""Integer arithmetic that is exact or reports where it is not.

NumPy wraps integer overflow silently; recur must not. Each checked operation
returns the (possibly wrapped) result and a boolean mask of the lanes where it is
wrong, so that `a if c else b` can forgive faults in lanes it does not pick. The
masks are computed with integer identities on the wrapped results (no widening), so
they work the same on NumPy and CuPy arrays.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy

from recur.lang import exact

OVERFLOW = "integer overflow"
ZERO_DIVISION = "integer division by zero"
ZERO_MODULO = "integer modulo by zero"
NEGATIVE_POWER = "integer to a negative integer power"

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Checked = Callable[[Any, Any], tuple[Any, Any, str]]


def is_int_array(value: Any) -> bool:
    """A NumPy/CuPy integer array or scalar (Python ints are handled apart)."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and dtype.kind in "iu"


def _min_of(value: Any) -> int:
    return int(numpy.iinfo(value.dtype).min)


def _unsigned(value: Any) -> bool:
    return bool(value.dtype.kind == "u")


def add(a: Any, b: Any) -> tuple[Any, Any, str]:
    r = a + b
    if _unsigned(r):  # a wrapped sum is smaller than either term
        return r, r < a, OVERFLOW
    return r, ((a ^ r) & (b ^ r)) < 0, OVERFLOW


def sub(a: Any, b: Any) -> tuple[Any, Any, str]:
    r = a - b
    if _unsigned(r):
        return r, a < b, OVERFLOW
    return r, ((a ^ b) & (a ^ r)) < 0, OVERFLOW


def mul(a: Any, b: Any) -> tuple[Any, Any, str]:
    r = a * b
    low = _min_of(r)
    nonzero = a != 0
    # Exact products divide back exactly; a wrapped one is off by a multiple of 2**bits.
    back = r // (a + (~nonzero))  # a where a != 0, else 1: never a division by zero
    bad = nonzero & ((back != b) | ((a == -1) & (b == low)))
    return r, bad, OVERFLOW


def floordiv(a: Any, b: Any) -> tuple[Any, Any, str]:
    zero = b == 0
    r = a // b
    bad = zero | ((a == _min_of(r)) & (b == -1))
    return r, bad, ZERO_DIVISION if zero.any() else OVERFLOW


def mod(a: Any, b: Any) -> tuple[Any, Any, str]:
    return a % b, b == 0, ZERO_MODULO


def power(a: Any, b: Any) -> tuple[Any, Any, str]:
    """Exponentiation by squaring, each multiplication checked."""
    negative = b < 0
    if negative.any():
        return a ** (b * ~negative), negative, NEGATIVE_POWER
    result = (a * 0 + b * 0) + 1  # ones in the promoted dtype and broadcast shape
    base = result * a
    exponent = result * b
    bad = result != result  # all False, right shape
    while (exponent > 0).any():
        odd = (exponent & 1) == 1
        product, wrong, _ = mul(result, base)
        result = numpy_where(odd, product, result)
        bad = bad | (odd & wrong)
        exponent = exponent >> 1
        more = exponent > 0
        squared, wrong, _ = mul(base, base)
        base = numpy_where(more, squared, base)
        bad = bad | (more & wrong)
    return result, bad, OVERFLOW


def numpy_where(cond: Any, a: Any, b: Any) -> Any:
    """`where` for the array module that `cond` belongs to."""
    module = type(cond).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy.where(cond, a, b)
    return numpy.where(cond, a, b)


def check_reduction(result: Any, shadow: Any, terms: int, exact: Callable[[], Any]) -> Any:
    """The lanes where an integer reduction's true result is outside its dtype.

    `shadow` is the same reduction in float64, whose error is at most about
    `terms` units in the last place; only where it is that close to the limit is the
    exact result (Python integers) worked out.
    """
    info = numpy.iinfo(result.dtype)
    limit = float(info.max) + 1.0
    near = abs(shadow) >= limit * (1.0 - 4.0 * terms * 2.0**-53)
    if not bool(near.any()):
        return near
    true = numpy.asarray(exact(), dtype=object)
    return numpy.asarray((true < int(info.min)) | (true > int(info.max)), dtype=bool)


def negative(a: Any) -> tuple[Any, Any, str]:
    if _unsigned(a):  # only zero has an unsigned negation
        return -a, a != 0, OVERFLOW
    return -a, a == _min_of(a), OVERFLOW


def absolute(a: Any) -> tuple[Any, Any, str]:
    if _unsigned(a):
        return a, a != a, OVERFLOW
    return abs(a), a == _min_of(a), OVERFLOW


def checked_binary(op: str, a: Any, b: Any) -> tuple[Any, Any, str]:
    """`a op b` where the result is an integer array; a Python int operand takes its dtype."""
    try:
        if isinstance(a, int):
            a = numpy.result_type(a, b.dtype).type(a)
        elif isinstance(b, int):
            b = numpy.result_type(a.dtype, b).type(b)
    except OverflowError:  # a Python int that the array's dtype cannot hold
        array = b if isinstance(a, int) else a
        return array, array == array, OVERFLOW
    return CHECKED_BINARY[op](a, b)


CHECKED_BINARY: dict[str, Checked] = {
    "+": add,
    "-": sub,
    "*": mul,
    "//": floordiv,
    "%": mod,
    "**": power,
}

PYTHON_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


def python_binary(op: str, a: Any, b: Any) -> tuple[Any, str | None]:
    """An operation on two Python numbers, following NumPy where Python would raise.

    Ints must stay within int64 (as they will meet int64 arrays); `2 ** 10**10` is
    refused before Python tries to build it.
    """
    if op == "**" and _is_pyint(a) and _is_pyint(b) and abs(a) > 1 and b > 64:
        return 0, OVERFLOW
    if op == "**" and not (_is_pyint(a) and _is_pyint(b)):  # NumPy's power, not Python's
        return _numpy_power(a, b), None
    if op == "/" and _is_pyint(a) and _is_pyint(b):  # each int rounded first, as NumPy
        a, b = float(a), float(b)  # does: Python divides exactly, then rounds
    try:
        result = PYTHON_BINARY[op](a, b)
    except ZeroDivisionError:
        if _is_pyint(a) and _is_pyint(b):
            return 0, ZERO_MODULO if op == "%" else ZERO_DIVISION
        return _numpy_fallback(op, a, b), None
    except OverflowError:
        return _numpy_fallback(op, a, b), None
    if _is_pyint(result) and not INT64_MIN <= result <= INT64_MAX:
        return 0, OVERFLOW
    return result, None


def _numpy_fallback(op: str, a: Any, b: Any) -> Any:
    with numpy.errstate(all="ignore"):
        return PYTHON_BINARY[op](numpy.float64(a), numpy.float64(b)).item()


def _numpy_power(a: Any, b: Any) -> Any:
    """A float power as the arrays' `pow` gives it (Python's would give a complex for
    `(-8.0) ** 0.5`, and raise where NumPy gives inf)."""
    with numpy.errstate(all="ignore"):
        return exact.float_power(numpy)(exact.as_numpy(a), exact.as_numpy(b)).item()


def _is_pyint(value: Any) -> bool:
    return isinstance(value, int)


def is_python_number(value: Any) -> bool:
    """A Python number, weak in NumPy's promotion (a NumPy float64 is a float, but strong)."""
    return isinstance(value, int | float | complex) and not isinstance(value, numpy.generic)
