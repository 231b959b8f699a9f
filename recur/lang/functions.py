"""The one table of functions a spec may call, with their NumPy/CuPy implementations.

An implementation is looked up on the backend once, when the expression is built,
so a step calls e.g. `numpy.sin` directly. Adding a function is adding a row here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recur.diagnostics import did_you_mean
from recur.lang import casts

MAX_ARRAY_ELEMENTS = 1_000_000_000
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}

Impl = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Function:
    """A callable name: how many arguments, whether `axis=` applies, and its family.

    `kind` tells later passes what the function does to lanes: `elementwise` works lane
    by lane; `reduction` and `linalg` mix lanes; `constructor` makes a new array.
    """

    min_args: int
    max_args: int
    kind: str
    resolve: Callable[[Any], Impl]  # backend -> implementation
    axis: bool = False
    # The implementation returns (value, faults): (kind, mask of lanes) for each way the
    # value may be wrong, reported as integer faults are.
    checked: bool = False
    # The C and CUDA math library's name for float64 (float32 adds "f"), where the
    # compiled engines call one; None where they compute it otherwise or cannot.
    c: str | None = None
    # Whether every engine gives the same bits (correctly rounded, or exact); the rest
    # (transcendental functions) agree within a few ulp.
    exact: bool = False
    # For gradients: the partial derivative for each argument, an expression in recur's
    # language over the arguments (`ARGUMENTS`) and the value `y`; "0" where none flows.
    # None where the adjoint is not element-wise: `gradient` then names the rule
    # (`recur.lang.derivatives.STRUCTURAL`).
    derivative: tuple[str, ...] | None = None
    gradient: str = "partials"


# The names a derivative gives the arguments, in order; `y` is the function's value.
ARGUMENTS = ("a", "b", "c", *(f"x{i}" for i in range(3, 64)))
_ZERO = ("0",)


def chooser_partials(count: int) -> tuple[str, ...]:
    """min/max of `count` arguments: the arguments equal to the value share the
    derivative equally, as `jax.grad` does for `jnp.maximum` (0.5 each for a tie of two)
    and for `jnp.max` of a stack."""
    return _shares(ARGUMENTS[:count], "y")


def _shares(choices: tuple[str, ...], value: str) -> tuple[str, ...]:
    return tuple(
        f"where({choice} == {value}, 1.0 / (1 + "
        + " + ".join(f"where({other} == {value}, 1, 0)" for other in choices if other != choice)
        + "), 0.0)"
        for choice in choices
    )


def _clip_partials() -> tuple[str, ...]:
    """clip(a, b, c) is minimum(maximum(a, b), c), as in NumPy and jax, ties included."""
    low = "maximum(a, b)"
    through_low, through_c = _shares((low, "c"), "y")
    through_a, through_b = _shares(("a", "b"), low)
    return f"{through_low} * {through_a}", f"{through_low} * {through_b}", through_c


def _xp(name: str) -> Callable[[Any], Impl]:
    return lambda backend: getattr(backend.xp, name)


def _special(name: str) -> Callable[[Any], Impl]:
    return lambda backend: getattr(backend.special, name)


def _reduction(impl: str, gradient: str = "reduction") -> Function:
    derivative = _ZERO if gradient == "partials" else None
    return Function(1, 1, "reduction", _xp(impl), axis=True, derivative=derivative,
                    gradient=gradient)


def _round(backend: Any) -> Impl:
    xp = backend.xp
    return lambda a, decimals=0: xp.round(a, int(decimals))


def _norm(backend: Any) -> Impl:
    linalg = backend.xp.linalg
    return lambda a, axis=None: linalg.norm(a, axis=axis)


def _sized(make: Callable[..., Any], count: Callable[..., int]) -> Callable[..., Any]:
    """A constructor that refuses, before allocating, arrays a spec should not ask for."""

    def construct(*args: Any, **kwargs: Any) -> Any:
        elements = count(*args)
        if elements > MAX_ARRAY_ELEMENTS:
            raise MemoryError(
                f"an array of {elements:,} elements; the limit is {MAX_ARRAY_ELEMENTS:,}"
            )
        return make(*args, **kwargs)

    return construct


def _shape_count(shape: Any, *_: Any) -> int:
    dims = shape if isinstance(shape, list | tuple) else [shape]
    total = 1
    for dim in dims:
        total *= max(int(dim), 0)
    return total


def arange_args(*args: Any) -> tuple[Any, Any, Any]:
    """`arange`'s start, stop and step from its one to three arguments."""
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
    return start, stop, step


def arange_count(*args: Any) -> int:
    """The elements `arange(*args)` makes, or one more: what the size limit counts."""
    start, stop, step = arange_args(*args)
    if step == 0:
        return 0
    return max(int((float(stop) - float(start)) / float(step)) + 1, 0)


def _linspace_count(start: Any, stop: Any, num: Any) -> int:
    return int(num)


def _eye_count(rows: Any, cols: Any = None) -> int:
    return int(rows) * int(rows if cols is None else cols)


def _constructor(name: str, min_args: int, max_args: int, count: Callable[..., int],
                 derivative: tuple[str, ...] | None = None) -> Function:
    return Function(
        min_args, max_args, "constructor",
        lambda backend: _sized(getattr(backend.xp, name), count),
        derivative=derivative or _ZERO * max_args,
    )


def _cast(dtype: str) -> Function:
    return Function(1, 1, "elementwise",
                    lambda backend: functools.partial(casts.cast, backend.xp, dtype),
                    checked=True, exact=True,
                    derivative=("1",) if dtype in ("float64", "float32", "complex128") else _ZERO)


def _shape_fn(name: str, min_args: int, max_args: int, axis: bool = False) -> Function:
    return Function(min_args, max_args, "shape", _xp(name), axis=axis, gradient="shape")


# The C math library's names where they differ from NumPy's.
_C_NAMES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "abs": "fabs",
            "arctan2": "atan2"}
# The C math library's functions, with their derivatives.
_LIBM = {
    "cbrt": ("1 / (3 * y * y)",),
    "exp": ("y",),
    "expm1": ("y + 1",),
    "log": ("1 / a",),
    "log1p": ("1 / (1 + a)",),
    "log2": ("1 / (a * log(2))",),
    "log10": ("1 / (a * log(10))",),
    "sin": ("cos(a)",),
    "cos": ("-sin(a)",),
    "tan": ("1 + y * y",),
    "arcsin": ("1 / sqrt(1 - a * a)",),
    "arccos": ("-1 / sqrt(1 - a * a)",),
    "arctan": ("1 / (1 + a * a)",),
    "sinh": ("cosh(a)",),
    "cosh": ("sinh(a)",),
    "tanh": ("1 - y * y",),
    "arctan2": ("b / (a * a + b * b)", "-a / (a * a + b * b)"),
    # 0 at the origin, where hypot is abs of either argument (and abs at 0 gives 0)
    "hypot": ("a / where(y == 0, 1.0, y)", "b / where(y == 0, 1.0, y)"),
}
# Correctly rounded, or exact. sqrt at 0 gives inf, as jax.grad does.
_ROUNDED = {"sqrt": ("0.5 / y",), "floor": _ZERO, "ceil": _ZERO, "trunc": _ZERO,
            "abs": ("sign(a)",)}


def _libm(name: str, derivative: tuple[str, ...], *, exact: bool = False) -> Function:
    args = len(derivative)
    return Function(args, args, "elementwise", _xp(name), c=_C_NAMES.get(name, name),
                    exact=exact, derivative=derivative)


FUNCTIONS: dict[str, Function] = {
    **{name: _libm(name, derivative) for name, derivative in _LIBM.items()},
    **{name: _libm(name, derivative, exact=True) for name, derivative in _ROUNDED.items()},
    **{name: Function(1, 1, "elementwise", _xp(name), exact=True, derivative=_ZERO)
       for name in ("sign", "isnan", "isfinite")},
    "minimum": Function(2, 2, "elementwise", _xp("minimum"), exact=True,
                        derivative=chooser_partials(2)),
    "maximum": Function(2, 2, "elementwise", _xp("maximum"), exact=True,
                        derivative=chooser_partials(2)),
    "clip": Function(3, 3, "elementwise", _xp("clip"), exact=True,
                     derivative=_clip_partials()),
    "where": Function(3, 3, "elementwise", _xp("where"), exact=True,
                      derivative=("0", "where(a, 1.0, 0.0)", "where(a, 0.0, 1.0)")),
    "round": Function(1, 2, "elementwise", _round, derivative=_ZERO * 2),
    # complex numbers, and their parts (of a real value too, as in NumPy); the
    # derivatives are those on real values
    **{name: Function(1, 1, "elementwise", _xp(name), exact=True, derivative=derivative)
       for name, derivative in (("real", ("1",)), ("imag", _ZERO), ("conj", ("1",)))},
    "angle": Function(1, 1, "elementwise", _xp("angle"), derivative=_ZERO),
    # casts, one per dtype an output may have: `astype`, checked (see `casts`)
    **{dtype: _cast(dtype) for dtype in casts.DTYPES},
    "gamma": Function(1, 1, "elementwise", _special("gamma"), derivative=("y * digamma(a)",)),
    "lgamma": Function(1, 1, "elementwise", _special("gammaln"), derivative=("digamma(a)",)),
    "erf": Function(1, 1, "elementwise", _special("erf"),
                    derivative=("2 / sqrt(pi) * exp(-a * a)",)),
    "digamma": Function(1, 1, "elementwise", _special("psi"),
                        derivative=("polygamma(1, a)",)),
    "polygamma": Function(2, 2, "elementwise", _special("polygamma"),
                          derivative=("0", "polygamma(a + 1, b)")),
    "sum": _reduction("sum"),
    "prod": _reduction("prod"),
    "mean": _reduction("mean"),
    "any": _reduction("any", "partials"),
    "all": _reduction("all", "partials"),
    # min/max: one argument reduces (with axis=); several are element-wise, as in Python.
    "min": Function(1, 64, "reduction", _xp("amin"), axis=True, gradient="chooser"),
    "max": Function(1, 64, "reduction", _xp("amax"), axis=True, gradient="chooser"),
    "norm": Function(1, 1, "reduction", _norm, axis=True, gradient="reduction"),
    "dot": Function(2, 2, "linalg", _xp("dot"), gradient="product"),
    "arange": _constructor("arange", 1, 3, arange_count),
    "linspace": _constructor("linspace", 3, 3, _linspace_count,
                             ("1 - linspace(0, 1, c)", "linspace(0, 1, c)", "0")),
    "zeros": _constructor("zeros", 1, 1, _shape_count),
    "ones": _constructor("ones", 1, 1, _shape_count),
    "full": _constructor("full", 2, 2, _shape_count, ("0", "1")),
    "eye": _constructor("eye", 1, 2, _eye_count),
    "concatenate": _shape_fn("concatenate", 1, 1, axis=True),
    "stack": _shape_fn("stack", 1, 1, axis=True),
    "reshape": _shape_fn("reshape", 2, 2),
    "transpose": _shape_fn("transpose", 1, 2),
}

# Names users reach for that recur spells otherwise, or does not have.
MISSING_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(
        ("int", "float", "complex"),
        "casts are named by dtype: int64(x), int32(x), float64(x), float32(x), bool(x), "
        "complex128(x)",
    ),
    **dict.fromkeys(("random", "rand"), "recur's is uniform(), drawn anew at every step: "
                    "a float64 in [0, 1); uniform(low, high) for [low, high)"),
    "randn": "recur's is normal(), drawn anew at every step; normal(mean, std) for another "
             "mean and standard deviation",
    "randint": "recur's is integers(low, high), drawn anew at every step: an int64 from low "
               "up to high - 1",
    "seed": "the seed is the top-level key 'seed:' (an integer >= 0), not a function",
}
# The random calls (`recur.lang.philox`), drawn anew at every step: the numbers of
# arguments each takes.
DRAWS: dict[str, tuple[int, ...]] = {"uniform": (0, 2), "normal": (0, 2), "integers": (2,)}
FUNCTIONS_LISTED = "every function is listed under 'Functions' in docs/spec.md"


def unknown_function_notes(name: str) -> tuple[str, ...]:
    """The notes for a call of `name`, which is not a function: a hint, or the closest
    name; and where the whole list is."""
    if name in MISSING_FUNCTIONS:
        return MISSING_FUNCTIONS[name], FUNCTIONS_LISTED
    return (*did_you_mean(name, FUNCTIONS), FUNCTIONS_LISTED)
