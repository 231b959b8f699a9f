"""The operations every engine must compute to the same bits, defined once here.

`pow` and NumPy's own loops give results that depend on where they run: libm's `pow`
is not correctly rounded, NumPy's loops take `x * x` for `x ** 2` and `sqrt` for
`x ** 0.5` when the exponent is one value for many lanes, and the sign of a zero that
`maximum` returns depends on its SIMD path. So recur defines these operations itself:

- `x ** k`, k an integer literal (`2`, `-3`, `2.0`), on a float or complex base: one
  chain of multiplications, the same on every engine (`chain`); k = 0 gives 1 and a
  negative k gives `1 / x ** -k`. The interpreter runs `integer_power`, the kernels a
  C function that `c_integer_power` writes from the same chain.
- `x ** 0.5` (a literal 0.5) is `sqrt(x)`, correctly rounded everywhere, except at
  -0.0 and -inf, where it is `pow`'s `|x|` (`half_power`, and `r_half_*` in C).
- `x ** y` otherwise is `pow` (a few ulp apart between engines), with C's special
  values: `pow(-inf, 0.5)` is `inf` and `pow(-0.0, 0.5)` is `+0.0`, not `sqrt`'s.
- `minimum`/`maximum` (and `min`/`max` of several values, `clip`) are IEEE 754-2019's
  minimum/maximum: a NaN operand gives NaN, and -0.0 < +0.0.

This module must not import the engines or the code generators: they import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy

from recur.lang import nodes as n

MAX_INTEGER_EXPONENT = 2**63 - 1  # beyond it, a literal exponent is a plain `pow`


def literal(node: n.Node) -> int | float | None:
    """The value of a number literal, signed ones (`-3`, `+2.0`) included."""
    sign = 1
    while isinstance(node, n.Unary) and node.op in ("-", "+"):
        sign = -sign if node.op == "-" else sign
        node = node.operand
    if not isinstance(node, n.Number):
        return None
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return sign * value


def integer_exponent(node: n.Node) -> int | None:
    """k where `node` is an integer literal exponent: `2`, `-3`, `+2`, `2.0`."""
    return integer_exponent_of(literal(node))


def integer_exponent_of(value: int | float | complex | bool | None) -> int | None:
    """k where a literal exponent's value is an integer computed by `chain`."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value) if abs(value) <= MAX_INTEGER_EXPONENT else None


def chain(k: int) -> tuple[bool, ...]:
    """How `x ** abs(k)` is computed: starting from r = x, for each entry r = r * r, and
    then r = r * x where the entry is true (the binary digits of abs(k) after the first,
    most significant first). `x ** 2` is `x * x`, correctly rounded."""
    return tuple(digit == "1" for digit in bin(abs(k))[3:])


def integer_power(x: Any, k: int) -> Any:
    """`x ** k` by `chain(k)`, for float or complex arrays and NumPy scalars."""
    if k == 0:
        return x**0  # exactly 1 everywhere, NaN included, in x's dtype
    result = x
    for odd in chain(k):
        result = result * result
        if odd:
            result = result * x
    return result if k > 0 else 1 / result


def weak_integer_power(x: float | complex, k: int) -> float | complex:
    """`x ** k` by `chain(k)` for a Python number, in float64 (complex128) as an array of
    it would be, and a Python number again (weak, as it came)."""
    with numpy.errstate(all="ignore"):
        return integer_power(as_numpy(x), k).item()  # type: ignore[no-any-return]


def as_numpy(x: float | complex) -> Any:
    """A Python number as the NumPy scalar an array of it would hold."""
    return numpy.complex128(x) if isinstance(x, complex) else numpy.float64(x)


def c_integer_power(name: str, c_type: str, k: int) -> str:
    """The C (and CUDA) function `name(x)` computing `x ** k` by `chain(k)`."""
    if k == 0:
        return f"R_FN {c_type} {name}({c_type} x) {{ (void)x; return ({c_type})1; }}\n"
    steps = "".join(" r = r * r;" + (" r = r * x;" if odd else "") for odd in chain(k))
    result = "r" if k > 0 else f"({c_type})1 / r"
    return f"R_FN {c_type} {name}({c_type} x) {{ {c_type} r = x;{steps} return {result}; }}\n"


def c_integer_power_name(suffix: str, k: int) -> str:
    return f"r_powi_{suffix}_{'m' if k < 0 else ''}{abs(k)}"


# pow in C, for `recur.engine.c.generate`'s prelude. `pow` is called through a function
# the compiler may not inline: GCC's vectoriser turns `pow(x, 0.5)` with a constant 0.5
# into `sqrt(x)` for the lanes it vectorises, which gives -0.0 and NaN where pow gives
# +0.0 and inf.
C_FUNCTIONS = """\
R_FN double r_half_d(double x) { return (x == 0 || x == -INFINITY) ? fabs(x) : sqrt(x); }
R_FN float r_half_f(float x) { return (x == 0 || x == -INFINITY) ? fabsf(x) : sqrtf(x); }
R_NOINLINE double r_pow_d(double a, double b) { return pow(a, b); }
R_NOINLINE float r_pow_f(float a, float b) { return powf(a, b); }
"""
# The IEEE minimum and maximum (NaN first, then -0 below +0), as selects of values
# computed without branches, so that GCC vectorises a loop that calls them (a `signbit`
# in a chain of conditions kept it from vectorising the W9 sweep).
_MIN_MAX = """\
R_FN T_ r_min_S_(T_ a, T_ b) {
    T_ m = a < b ? a : b, zeros = -((-a) + (-b));  /* -0 where either is -0 */
    m = a == b ? (a == 0 ? zeros : a) : m;
    m = b != b ? b : m;
    return a != a ? a : m;
}
R_FN T_ r_max_S_(T_ a, T_ b) {
    T_ m = a > b ? a : b, zeros = a + b;  /* +0 where either is +0 */
    m = a == b ? (a == 0 ? zeros : a) : m;
    m = b != b ? b : m;
    return a != a ? a : m;
}
"""
C_FUNCTIONS += "".join(_MIN_MAX.replace("T_", c_type).replace("S_", short)
                       for c_type, short in (("double", "d"), ("float", "f")))


def is_half(node: n.Node) -> bool:
    """Whether `node` is the literal exponent 0.5 (`x ** 0.5`)."""
    return is_half_of(literal(node))


def is_half_of(value: int | float | complex | bool | None) -> bool:
    """Whether a literal exponent's value is 0.5 (a float: `x ** 0.5`, not a fraction)."""
    return isinstance(value, float) and value == 0.5


def half_power(xp: Any, x: Any) -> Any:
    """`x ** 0.5` for a float array or NumPy scalar: sqrt, with pow's |x| at -0.0, -inf."""
    root = xp.sqrt(x)
    special = (x == 0) | (x == -numpy.inf)
    if xp is numpy and not numpy.any(special):
        return root
    return xp.where(special, xp.abs(x), root).astype(root.dtype)[()]


def float_power(xp: Any) -> Callable[[Any, Any], Any]:
    """`pow` on arrays and NumPy scalars, with C's special values at -0.0 and -inf.

    NumPy's `power` loop computes `x ** 0.5` as `sqrt(x)` when the exponent is one value
    for all lanes; there pow's `|x|` is put back. CuPy's `power` is CUDA's `pow`.
    """
    power = xp.power
    if xp is not numpy:
        return power

    def pow_(a: Any, b: Any) -> Any:
        result = power(a, b)
        if getattr(result, "dtype", None) is None or result.dtype.kind != "f":
            return result
        half = b == 0.5  # one comparison in the common case, of the (often scalar) exponent
        if not numpy.any(half):
            return result
        special = half & ((a == 0) | (a == -numpy.inf))
        return numpy.where(special, numpy.abs(a), result).astype(result.dtype)[()]

    return pow_


def ieee_extremum(xp: Any, largest: bool) -> Callable[[Any, Any], Any]:
    """IEEE 754-2019 maximum (`largest`) or minimum: NaN wins, and -0.0 < +0.0.

    NumPy's `maximum` already lets NaN win; only where both operands are zeros is the
    sign of its result its SIMD loop's choice. There the answer is `a + b` for the
    maximum (-0.0 only if both are) and `-(-a + -b)` for the minimum.
    """
    fold = xp.maximum if largest else xp.minimum

    def extremum(a: Any, b: Any) -> Any:
        result = fold(a, b)
        dtype = getattr(result, "dtype", None)
        if dtype is None or dtype.kind != "f":
            return result
        zero = result == 0
        if xp is numpy and not numpy.any(zero):  # the common case, at one comparison
            return result
        both = zero & (a == 0) & (b == 0)
        signed = a + b if largest else -(-a + -b)
        return xp.where(both, signed, result).astype(dtype)[()]

    return extremum
