"""Every derivative rule of the function table, against central finite differences.

The rules are evaluated as recur evaluates any expression, the function's value by its
own implementation; the finite differences need nothing of the rules. A central
difference with the step h = eps**(1/3) * max(1, |x|) is off by about eps**(2/3)
(4e-11) times the function's conditioning, which stays below a few hundred over the
domains below (kinks and poles kept away by more than h): a relative tolerance of 1e-7
(and 1e-9 absolute, for partials near zero) keeps a wide margin, where a wrong rule is
off by a factor of order one. The few cases that need more say why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy
import pytest

from recur.compile.evaluate import evaluate
from recur.diagnostics import Origin
from recur.engine.backend import NumpyBackend
from recur.lang.derivatives import STRUCTURAL, partials, rule_texts
from recur.lang.functions import ARGUMENTS, FUNCTIONS, Function
from recur.lang.parse import parse_expression

POINTS = 64
STEP = numpy.finfo(float).eps ** (1 / 3)
BACKEND = NumpyBackend()

Sampler = Callable[[numpy.random.Generator], Any]


def uniform(low: float, high: float) -> Sampler:
    return lambda rng: rng.uniform(low, high, POINTS)


def signed(low: float, high: float) -> Sampler:
    """Magnitudes in [low, high] of either sign: away from a kink or a pole at 0."""
    return lambda rng: rng.uniform(low, high, POINTS) * rng.choice([-1.0, 1.0], POINTS)


def between_integers(low: int, high: int) -> Sampler:
    """Away from the jumps of floor, ceil, trunc and round (at integers, half-integers)."""
    return lambda rng: rng.integers(low, high, POINTS) + rng.uniform(0.05, 0.45, POINTS)


def union(*samplers: Sampler) -> Sampler:
    return lambda rng: numpy.where(rng.random(POINTS) < 0.5, samplers[0](rng), samplers[1](rng))


class Fixed:
    """An argument held fixed: an integer, or a condition."""

    def __init__(self, make: Callable[[numpy.random.Generator], Any]) -> None:
        self.make = make


COIN = Fixed(lambda rng: rng.random(POINTS) < 0.5)

# function -> the samplers of its arguments (as many as the call has), and the relative
# tolerance and step where the defaults do not do.
CASES: dict[str, tuple[tuple[Sampler | Fixed, ...], dict[str, float]]] = {
    "abs": ((signed(0.1, 5),), {}),
    "sign": ((signed(0.1, 5),), {}),
    "sqrt": ((uniform(0.1, 10),), {}),
    "cbrt": ((signed(0.1, 10),), {}),
    "exp": ((uniform(-5, 5),), {}),
    "expm1": ((uniform(-5, 5),), {}),
    "log": ((uniform(0.1, 10),), {}),
    "log1p": ((uniform(-0.9, 10),), {}),
    "log2": ((uniform(0.1, 10),), {}),
    "log10": ((uniform(0.1, 10),), {}),
    "sin": ((uniform(-6, 6),), {}),
    "cos": ((uniform(-6, 6),), {}),
    "tan": ((uniform(-1.3, 1.3),), {}),
    "arcsin": ((uniform(-0.95, 0.95),), {}),
    "arccos": ((uniform(-0.95, 0.95),), {}),
    "arctan": ((uniform(-5, 5),), {}),
    "sinh": ((uniform(-5, 5),), {}),
    "cosh": ((uniform(-5, 5),), {}),
    "tanh": ((uniform(-3, 3),), {}),
    # away from the origin, and from the branch cut of arctan2 (a = 0, b < 0)
    "arctan2": ((signed(0.2, 3), uniform(-3, 3)), {}),
    "hypot": ((signed(0.2, 3), uniform(-3, 3)), {}),
    "floor": ((between_integers(-5, 5),), {}),
    "ceil": ((between_integers(-5, 5),), {}),
    "trunc": ((between_integers(-5, 5),), {}),
    "round": ((between_integers(-5, 5), Fixed(lambda rng: 0)), {}),
    "minimum": ((uniform(-2, 2), uniform(-2, 2)), {}),
    "maximum": ((uniform(-2, 2), uniform(-2, 2)), {}),
    # every regime: below, inside and above the interval
    "clip": ((uniform(-3, 3), uniform(-1, 0), uniform(0.5, 1.5)), {}),
    "where": ((COIN, uniform(-2, 2), uniform(-2, 2)), {}),
    "isnan": ((uniform(-2, 2),), {}),
    "isfinite": ((uniform(-2, 2),), {}),
    "real": ((uniform(-2, 2),), {}),
    "imag": ((uniform(-2, 2),), {}),
    "conj": ((uniform(-2, 2),), {}),
    "angle": ((signed(0.1, 2),), {}),
    "int64": ((between_integers(-5, 5),), {}),
    "int32": ((between_integers(-5, 5),), {}),
    "bool": ((signed(0.1, 2),), {}),
    "float64": ((uniform(-2, 2),), {}),
    # float32 rounds to 6e-8 relative: a step of 1e-2 makes that 1e-5 of the difference,
    # and the cast is linear, so a long step costs nothing
    "float32": ((uniform(-2, 2),), {"step": 1e-2, "rtol": 1e-4}),
    "complex128": ((uniform(-2, 2),), {}),
    # positive, and negative between the poles at the integers
    "gamma": ((union(uniform(0.2, 5), uniform(-2.8, -2.2)),), {}),
    "lgamma": ((union(uniform(0.2, 5), uniform(-2.8, -2.2)),), {}),
    "erf": ((uniform(-3, 3),), {}),
    "digamma": ((union(uniform(0.3, 6), uniform(-1.8, -1.2)),), {}),
    "polygamma": ((Fixed(lambda rng: rng.integers(0, 4, POINTS)), uniform(0.5, 5)), {}),
    "any": ((signed(0.1, 2),), {}),
    "all": ((signed(0.1, 2),), {}),
    "min": ((uniform(-2, 2), uniform(-2, 2), uniform(-2, 2)), {}),
    "max": ((uniform(-2, 2), uniform(-2, 2), uniform(-2, 2), uniform(-2, 2)), {}),
}


def _value(text: str, values: dict[str, Any]) -> Any:
    return evaluate(parse_expression(text, Origin("test", 1, 1)), values, BACKEND, "a test")


def _call(name: str, arguments: list[Any]) -> Any:
    names = ARGUMENTS[:len(arguments)]
    return _value(f"{name}({', '.join(names)})", dict(zip(names, arguments, strict=True)))


def _partial(name: str, arguments: list[Any], position: int) -> Any:
    """The rule for one argument, evaluated at `arguments` (and their value)."""
    values = dict(zip(ARGUMENTS, arguments, strict=False))
    values["y"] = _call(name, arguments)
    trees = partials(name, len(arguments))
    assert trees is not None
    return evaluate(trees[position], values, BACKEND, "a test")


def _difference(name: str, arguments: list[Any], position: int, step: float) -> Any:
    x = numpy.asarray(arguments[position], dtype=float)
    h = step * numpy.maximum(1.0, numpy.abs(x))
    up, down = list(arguments), list(arguments)
    up[position], down[position] = x + h, x - h
    rise = numpy.asarray(_call(name, up), dtype=complex) - numpy.asarray(
        _call(name, down), dtype=complex)
    return rise / (2 * h)


def _check(name: str, arguments: list[Any], position: int, rtol: float, step: float) -> None:
    want = _difference(name, arguments, position, step)
    got = numpy.broadcast_to(_partial(name, arguments, position), want.shape)
    numpy.testing.assert_allclose(got, want, rtol=rtol, atol=1e-9, err_msg=f"{name}, {position}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_partials_match_central_differences(name: str) -> None:
    samplers, options = CASES[name]
    rng = numpy.random.default_rng([ord(letter) for letter in name])
    arguments = [s.make(rng) if isinstance(s, Fixed) else s(rng) for s in samplers]
    for position, sampler in enumerate(samplers):
        if not isinstance(sampler, Fixed):
            _check(name, arguments, position, options.get("rtol", 1e-7),
                   options.get("step", STEP))


@pytest.mark.parametrize(("name", "arguments"), [
    ("linspace", [-1.5, 2.25, 7]), ("linspace", [3.0, 3.5, 1]), ("full", [(2, 3), -0.75]),
])
def test_constructors_of_values_have_partials(name: str, arguments: list[Any]) -> None:
    """linspace's ends and full's value: the partial is an array shaped like the value."""
    for position, argument in enumerate(arguments):
        if isinstance(argument, float):
            _check(name, arguments, position, 1e-7, STEP)


def test_every_function_has_a_rule_for_every_count_of_arguments() -> None:
    """A function added to the table without a derivative fails here."""
    for name, function in FUNCTIONS.items():
        assert function.gradient == "partials" or function.gradient in STRUCTURAL, name
        counts = range(function.min_args, min(function.max_args, 5) + 1)
        for count in {*counts, function.max_args}:
            trees = partials(name, count)
            if trees is None:
                assert function.gradient in STRUCTURAL, (name, count)
            else:
                assert len(trees) == count, (name, count)


def test_every_function_with_partials_is_tested() -> None:
    tested = {*CASES, "linspace", "full"}
    constant = {name for name, function in FUNCTIONS.items()
                if function.kind == "constructor" and name not in tested}
    # the rest make arrays from shapes and integer counts: their partials are all zero
    assert all(set(FUNCTIONS[name].derivative or ()) == {"0"} for name in constant)
    with_partials = {name for name, function in FUNCTIONS.items()
                     if function.gradient == "partials"}
    assert with_partials - constant <= tested
    assert {name for name, f in FUNCTIONS.items() if f.gradient == "chooser"} <= tested


def _at(name: str, *arguments: float) -> list[float]:
    values = [numpy.float64(argument) for argument in arguments]
    return [float(_partial(name, values, i)) for i in range(len(values))]


def test_kinks_as_the_contract_says() -> None:
    """abs at 0 gives 0 (SPEC; jax.grad gives 1 there); sqrt and cbrt at 0 give inf, as
    jax.grad does; piecewise-constant functions give 0 at their jumps too."""
    assert _at("abs", 0.0) == [0.0]
    assert _at("sqrt", 0.0) == [math.inf]
    assert _at("cbrt", 0.0) == [math.inf]
    for name in ("floor", "ceil", "trunc", "sign", "int64", "bool"):
        assert _at(name, 0.0) == [0.0], name
    assert _at("round", 2.5, 0) == [0.0, 0.0]


def test_hypot_at_the_origin_is_abs_at_zero() -> None:
    """hypot(a, 0) is abs(a): 0, as abs at 0 (jax.grad, with abs' = 1 at 0, gives 0.5)."""
    assert _at("hypot", 0.0, 0.0) == [0.0, 0.0]
    assert _at("hypot", 0.0, -2.0) == [0.0, -1.0]


def test_arctan2_at_the_origin_is_nan_as_in_jax() -> None:
    assert all(math.isnan(value) for value in _at("arctan2", 0.0, 0.0))


# Ties, with the values jax.grad gives (jax 0.10, float64): jnp.maximum and jnp.minimum
# split a tie of two in halves, jnp.max of a stack splits among all that tie, jnp.clip
# is maximum then minimum, and a NaN sends nothing to either argument.
TIES = [
    ("maximum", (1.0, 1.0), [0.5, 0.5]),
    ("minimum", (-2.0, -2.0), [0.5, 0.5]),
    ("maximum", (math.nan, 1.0), [0.0, 0.0]),
    ("max", (1.0, 1.0, 1.0), [1 / 3, 1 / 3, 1 / 3]),
    ("max", (1.0, 1.0, 0.0), [0.5, 0.5, 0.0]),
    ("min", (0.0, 3.0, 0.0, 0.0), [1 / 3, 0.0, 1 / 3, 1 / 3]),
    ("clip", (0.0, 0.0, 1.0), [0.5, 0.5, 0.0]),
    ("clip", (1.0, 0.0, 1.0), [0.5, 0.0, 0.5]),
    ("clip", (0.5, 0.5, 0.5), [0.25, 0.25, 0.5]),
    ("clip", (0.5, 1.0, 0.0), [0.0, 0.0, 1.0]),
]


@pytest.mark.parametrize(("name", "arguments", "expected"), TIES)
def test_ties_share_as_jax_grad_does(name: str, arguments: tuple[float, ...],
                                     expected: list[float]) -> None:
    assert _at(name, *arguments) == pytest.approx(expected, rel=1e-15)


def test_where_sends_the_derivative_to_the_branch_taken() -> None:
    condition = numpy.array([True, False, True])
    x, z = numpy.array([1.0, 2.0, 3.0]), numpy.array([-1.0, -2.0, -3.0])
    arguments = [condition, x, z]
    assert _partial("where", arguments, 0) == 0
    assert list(_partial("where", arguments, 1)) == [1.0, 0.0, 1.0]
    assert list(_partial("where", arguments, 2)) == [0.0, 1.0, 0.0]


def test_structural_rules_give_no_partials() -> None:
    assert rule_texts("sum", 1) is None
    assert rule_texts("max", 1) is None  # one argument: a reduction
    assert rule_texts("max", 2) is not None
    assert rule_texts("dot", 2) is None


@pytest.mark.parametrize(("rule", "complaint"), [
    ("q * 2", "reads 'q'"),
    ("sin(a, y)", "calls sin wrongly"),
    ("x[t-1]", "indexes"),
    ("1 +", "syntax error"),
])
def test_a_wrong_rule_is_refused_on_first_use(monkeypatch: pytest.MonkeyPatch, rule: str,
                                             complaint: str) -> None:
    monkeypatch.setitem(FUNCTIONS, "_bad", Function(1, 1, "elementwise", lambda backend: abs,
                                                    derivative=(rule,)))
    with pytest.raises(Exception, match=complaint):
        partials("_bad", 1)
    partials.cache_clear()
