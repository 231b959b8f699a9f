"""The vector-Jacobian product of a step (`recur.compile.adjoint`), against central
finite differences of the step.

A step tree comes from a prepared program: typed, with sub-trees moved out of the loop.
Each value it reads gets a point: a tap a random value, a param and a sequence row the
program's own (its slots were computed from them). At that point, with a random
cotangent c of the step's shape, the cotangent trees evaluated by the closures must
give, for each element i of each value v read, the central difference of sum(c * step)
along v_i. The differences evaluate the step with its moved sub-trees put back in the
loop, so that a param inside a hoisted constant moves it too; they need nothing of the
derivative rules. With h = eps**(1/3) * max(1, |v_i|) a difference is off by about
4e-11 times the step's conditioning (a few hundred at most over the domains below): a
relative tolerance of 1e-7 and 1e-9 absolute leave a wide margin, where a wrong rule is
off by a factor of order one (as in tests/lang/test_derivatives.py, whose domains the
function cases reuse).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from test_derivatives import CASES, POINTS, STEP, Fixed

import recur
from recur import api
from recur.compile import adjoint, ir
from recur.compile.adjoint import ParamKey, Read, SequenceKey, TapKey
from recur.compile.closures import Builder
from recur.compile.frame import Frame
from recur.diagnostics import ExprError
from recur.engine.backend import NumpyBackend
from recur.engine.c.engine import CEngine

BACKEND = NumpyBackend()
T = 1  # the step at which the step is evaluated: sequence rows are those of t = 1
COTANGENT = ParamKey("the cotangent")  # no spec can name a param so


class Point:
    """The values of the reads of a step (and of the cotangent), which the closures'
    leaves look up when called: change one and evaluate again."""

    def __init__(self, values: dict[Read, Any], offsets: Mapping[tuple[str, int], int],
                 program: ir.Program) -> None:
        self.values = values
        self.offsets = offsets  # (sequence, row) -> offset
        self.program = program

    def param(self, name: str) -> Callable[[Frame], Any]:
        return self._value(ParamKey(name))

    def tap(self, output: str, lag: int) -> Callable[[Frame], Any]:
        return self._value(TapKey(output, lag))

    def sequence(self, name: str, row: int) -> Callable[[Frame], Any]:
        return self._value(SequenceKey(name, self.offsets[name, row]))

    def time(self) -> Callable[[Frame], Any]:
        return lambda frame: frame.t

    def steps(self) -> Callable[[Frame], Any]:
        steps = self.program.steps
        return lambda frame: steps

    def state_shape(self, output: str) -> tuple[int, ...]:
        return self.program.output(output).shape

    def _value(self, key: Read) -> Callable[[Frame], Any]:
        values = self.values
        return lambda frame: values[key]


def _inputs(node: ir.Node) -> tuple[ir.Node, ...]:
    return (node.source,) if isinstance(node, ir.Hoisted | ir.Swept) else ir.children(node)


def _reads(node: ir.Node) -> list[ir.Node]:
    """Every leaf read, inside moved sub-trees too."""
    found = [node] if adjoint.read_of(node) is not None else []
    for child in _inputs(node):
        found.extend(_reads(child))
    return found


def _unmoved(node: ir.Node) -> ir.Node:
    """The tree with its moved sub-trees put back in the loop."""
    if isinstance(node, ir.Hoisted | ir.Swept):
        return _unmoved(node.source)
    return ir.map_children(node, _unmoved)


def _point(program: ir.Program, step: ir.Node, taps: Mapping[str, Any]) -> Point:
    """The program's params and sequence rows at step T, and the taps given (by output)."""
    values: dict[Read, Any] = {}
    offsets = {}
    for node in _reads(step):
        key = adjoint.read_of(node)
        if isinstance(node, ir.Param):
            values[key] = program.params[node.name]
        elif isinstance(node, ir.SequenceRead):
            offsets[node.sequence, node.row] = node.offset
            values[key] = program.sequences[node.sequence][T + node.row]
        elif isinstance(node, ir.Tap):
            values[key] = numpy.array(taps[node.output],
                                      dtype=program.output(node.output).dtype)
    return Point(values, offsets, program)


def _evaluate(tree: ir.Node, point: Point) -> Any:
    frame = Frame()
    frame.t = T
    with numpy.errstate(all="ignore"):
        return Builder(BACKEND, point, slots=point.program).build(tree)(frame)


def _difference(step: ir.Node, point: Point, key: Read, step_size: float) -> Any:
    """The central difference of sum(c * step) along each element of the value `key`."""
    objective = Builder(BACKEND, point, slots=point.program).build(_unmoved(step))
    frame = Frame()
    frame.t = T
    original = point.values[key]
    base = numpy.array(original, dtype=float)
    result = numpy.zeros(base.shape)
    for index in numpy.ndindex(base.shape):
        h = step_size * max(1.0, abs(base[index]))
        values = []
        for sign in (1, -1):
            moved = base.copy()
            moved[index] += sign * h
            point.values[key] = moved
            with numpy.errstate(all="ignore"):
                values.append(numpy.asarray(objective(frame), dtype=complex))
        # the elements that did not move cancel exactly: no rounding of their sum
        rise = numpy.sum(numpy.real((values[0] - values[1]) * point.values[COTANGENT]))
        result[index] = rise / (2 * h)
    point.values[key] = original
    return result


def _check(program: ir.Program, output: str, taps: Mapping[str, Any],
           rng: numpy.random.Generator, rtol: float = 1e-7, step_size: float = STEP) -> None:
    step = program.output(output).step
    point = _point(program, step, taps)
    shape = step.type.shape if step.type is not None else ()
    point.values[COTANGENT] = rng.uniform(-1, 1, shape)
    cotangent = ir.Param(step.span, None, ir.CONSTANT, COTANGENT.name)
    trees = adjoint.step_vjp(step, cotangent)
    floats = {key for key, value in point.values.items()
              if numpy.asarray(value).dtype.kind == "f" and key != COTANGENT}
    assert set(trees) <= floats
    for key in sorted(floats, key=repr):
        want = _difference(step, point, key, step_size)
        got = _evaluate(trees[key], point) if key in trees else 0.0
        assert numpy.shape(got) in _suffixes(want.shape), key
        numpy.testing.assert_allclose(numpy.broadcast_to(got, want.shape), want, rtol=rtol,
                                      atol=1e-9, err_msg=repr(key))


def _suffixes(shape: tuple[int, ...]) -> set[tuple[int, ...]]:
    """The shapes a cotangent of a value of `shape` may have: never larger than it."""
    return {shape[i:] for i in range(len(shape) + 1)}


def _program(text: str, inputs: Mapping[str, Any]) -> ir.Program:
    return api.prepare(recur.load(text), inputs=dict(inputs)).program


# Steps from every node kind. Each case: the spec (params and sequences are given as
# inputs below, with lanes where their shapes say), the output checked, and the range
# the taps are drawn from.
LANES = 3
NODE_CASES: dict[str, tuple[str, str, tuple[float, float]]] = {
    "sum_difference_signs": (
        "outputs:\n  y:\n    initial: y0\n    step: 0.5 * y[t-1]\n"
        "  x:\n    initial: [x0, x0]\n    taps: [-2, -1]\n"
        "    step: x[t-1] - y[t-1] + -x[t-2] + (+y[t-1]) - a\n", "x", (-2, 2)),
    "product_quotient": (
        "outputs:\n  y:\n    initial: y0\n    step: 0.5 * y[t-1]\n"
        "  x:\n    initial: [x0, x0]\n    taps: [-2, -1]\n"
        "    step: x[t-1] * y[t-1] / (a + x[t-2]) - a / y[t-1]\n", "x", (0.5, 2)),
    "literal_powers": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: x[t-1] ** 2 + x[t-1] ** 3 + x[t-1] ** -2 + x[t-1] ** 0.5 + "
        "x[t-1] ** 2.0 + x[t-1] ** 1 + x[t-1] ** 0 + (a * x[t-1]) ** -1\n", "x", (0.5, 2)),
    "powers": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: x[t-1] ** a + a ** x[t-1] + x[t-1] ** (a * x[t-1]) + x[t-1] ** 2.5\n",
        "x", (0.5, 2)),
    "modulo_floor_division": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: x[t-1] % a + (x[t-1] // a) * x[t-1] + a % 0.7\n", "x", (2.7, 3.8)),
    "lanes_broadcast_params_and_rows": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: a * x[t-1] + b + w * x[t-1] + u[t] * x[t-1] + v[t] * a + u[t-1]\n",
        "x", (-2, 2)),
    "taps_at_several_lags_and_this_step": (
        "outputs:\n  y:\n    initial: y0\n    step: 0.5 * y[t-1] + a\n"
        "  x:\n    initial: [x0, x0, x0]\n    taps: [-3, -2, -1]\n"
        "    step: x[t-1] * x[t-3] + 0.5 * x[t-2] + y[t] * y[t-1] + x[t-1]\n",
        "x", (-2, 2)),
    "sequence_reads_and_swept": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: u[t-1] * u[t+2] + u * x[t-1] + cos(u[t+1] * a) + v[t] * u[t] * x[t-1]\n",
        "x", (-2, 2)),
    "hoisted_constant": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: sin(a) * 2 * x[t-1] + exp(a * b) + w * b\n", "x", (-2, 2)),
    "select": (
        "outputs:\n  y:\n    initial: y0\n    step: y[t-1]\n"
        "  x:\n    initial: x0\n"
        "    step: a * x[t-1] if x[t-1] > y[t-1] else y[t-1] ** 2 + b\n", "x", (0, 1)),
    "where_and_a_comparison_chain": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: where(0.2 < x[t-1] <= 0.7, a * x[t-1], u[t] * b) + "
        "where(x[t-1] > 0.5, x[t-1], 1.0)\n", "x", (0, 1)),
    "integers_and_bools_pass_nothing": (
        "outputs:\n  k:\n    dtype: int64\n    initial: k0\n    step: k[t-1] + n\n"
        "  x:\n    initial: x0\n"
        "    step: x[t-1] * k[t-1] + float64(n) * x[t-1] + int64(x[t-1]) + "
        "float64(x[t-1] > a) + x[t-1] * (n // 2) - (-n)\n", "x", (0.1, 0.9)),
    "reductions": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: sum(x[t-1]) * x[t-1] + mean(x[t-1] * w) + max(x[t-1] ** 2) + "
        "min(sin(x[t-1])) * a + norm(x[t-1] + 3)\n", "x", (-2, 2)),
    "list_literals": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: x[t-1] * [a, b * a, 2.0] + sum([x[t-1], w]) * a + [x[t-1], w][1] * "
        "x[t-1][0] + m[-1] * x[t-1][2] + sum(x[t-1][1:]) + m[:2][1] * a\n", "x", (-2, 2)),
    "reductions_along_axes": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: x[t-1] * sum(m * x[t-1], axis=1) + mean(m * a, axis=0) + "
        "max(m * x[t-1], axis=-1) + min(reshape(x[t-1], [3, 1]) * m, axis=(0, 1))\n",
        "x", (-2, 2)),
    "shape_functions": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: sum(concatenate([x[t-1], w * a])) * x[t-1] + stack([x[t-1], w])[1] * a + "
        "reshape(reshape(x[t-1], [1, 3]) * b, [3])\n", "x", (-2, 2)),
    "matrix_products": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: tanh(m @ x[t-1] + w) + x[t-1] @ m * a + dot(x[t-1], w) + "
        "transpose(m) @ (x[t-1] * w) + dot(m, m @ x[t-1])\n", "x", (-2, 2)),
    "draws_with_arguments": (
        "outputs:\n  x:\n    initial: x0\n"
        "    step: uniform(a, b) * x[t-1] + normal(a, b * b) + uniform() * x[t-1]\n",
        "x", (-2, 2)),
}


def _node_inputs(rng: numpy.random.Generator) -> dict[str, Any]:
    return {
        "a": rng.uniform(1.1, 1.4), "b": rng.uniform(2.0, 3.0),
        "w": rng.uniform(-1, 1, LANES), "n": 3, "m": rng.uniform(-1, 1, (LANES, LANES)),
        "k0": numpy.array([1, 2, 3]),
        "x0": rng.uniform(0.5, 1, LANES), "y0": rng.uniform(0.5, 1, LANES),
        "u": rng.uniform(-1, 1, 8), "v": rng.uniform(-1, 1, (8, LANES)),
    }


NODE_SPEC = ("params:\n  a: 0.0\n  b: 0.0\n  w: zeros(3)\n  m: zeros([3, 3])\n  n: 0\n"
             "  k0: [0, 0, 0]\n"
             "  x0: zeros(3)\n  y0: zeros(3)\n"
             "sequences:\n  u: zeros(8)\n  v: zeros([8, 3])\nsteps: 3\n")


@pytest.mark.parametrize("case", sorted(NODE_CASES))
def test_every_node_kind_against_central_differences(case: str) -> None:
    outputs, output, (low, high) = NODE_CASES[case]
    rng = numpy.random.default_rng([ord(letter) for letter in case])
    for _ in range(3):  # three random points
        program = _program(NODE_SPEC + outputs, _node_inputs(rng))
        taps = {o.name: rng.uniform(low, high, o.shape) if o.dtype == "float64"
                else rng.integers(-3, 4, o.shape) for o in program.outputs}
        _check(program, output, taps, rng)


def test_the_cases_reach_every_node_kind_and_move_sub_trees() -> None:
    """The cases above are what they claim: every kind (a hoisted and a swept
    sub-tree among them), every arithmetic operator, and reads of each kind."""
    seen: set[str] = set()
    rng = numpy.random.default_rng(0)
    for outputs, output, _ in NODE_CASES.values():
        step = _program(NODE_SPEC + outputs, _node_inputs(rng)).output(output).step
        nodes = [step]
        while nodes:
            node = nodes.pop()
            seen.add(type(node).__name__ + getattr(node, "op", ""))
            nodes.extend(_inputs(node))
    kinds = {"Hoisted", "Swept", "Select", "Compare", "Call", "Draw", "Tap", "SequenceRead",
             "Param", "Literal", "Exponent", "Unary-", "Unary+"}
    operators = {"Binary" + op for op in ("+", "-", "*", "/", "//", "%", "**", "@")}
    assert kinds | operators <= seen


def _function_case(name: str) -> tuple[str, dict[str, Any], Mapping[str, Any], dict[str, float]]:
    """A step calling `name` on the domains of tests/lang/test_derivatives.py, over
    POINTS lanes: argument 0 a tap, 1 and 3 params, 2 a sequence row (a fixed integer
    or condition: a param); the spec, its inputs, the taps, the options."""
    samplers, options = CASES[name]
    rng = numpy.random.default_rng([ord(letter) for letter in name])
    reads = ("x[t-1]", "p1", "s[t]", "p3")
    inputs: dict[str, Any] = {"x0": numpy.zeros(POINTS), "s": numpy.zeros((4, POINTS))}
    taps: dict[str, Any] = {}
    args = []
    for position, sampler in enumerate(samplers):
        if isinstance(sampler, Fixed):
            args.append(f"f{position}")
            inputs[f"f{position}"] = sampler.make(rng)
        elif position == 0:
            args.append(reads[0])
            taps["x"] = inputs["x0"] = sampler(rng)
        elif position == 2:
            args.append(reads[2])
            inputs["s"] = numpy.stack([sampler(rng) for _ in range(4)])
        else:
            args.append(reads[position])
            inputs[reads[position]] = sampler(rng)
    params = "".join(f"  {param}: 0\n" for param in inputs if param != "s")
    text = (f"params:\n{params}sequences:\n  s: zeros(4)\noutputs:\n  x:\n    initial: x0\n"
            f"    step: 1.0 * real({name}({', '.join(args)}))\nsteps: 2\n")
    return text, inputs, taps, options


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_function_with_partials_against_central_differences(name: str) -> None:
    text, inputs, taps, options = _function_case(name)
    program = _program(text, inputs)
    _check(program, "x", taps, numpy.random.default_rng(len(name)),
           rtol=options.get("rtol", 1e-7), step_size=options.get("step", STEP))


def test_a_scalar_read_by_every_lane_gets_one_number_the_sum() -> None:
    """Checked by hand: d/da sum(c * a * x) = sum(c * x), one number."""
    program = _program("params:\n  a: 1.5\noutputs:\n  x:\n    initial: [1.0, 2.0, 4.0]\n"
                       "    step: a * x[t-1]\nsteps: 2\n", {})
    step = program.output("x").step
    point = _point(program, step, {"x": [1.0, 2.0, 4.0]})
    point.values[COTANGENT] = numpy.array([0.5, -1.0, 0.25])
    trees = adjoint.step_vjp(step, ir.Param(step.span, None, ir.CONSTANT, COTANGENT.name))
    assert numpy.shape(_evaluate(trees[ParamKey("a")], point)) == ()
    assert _evaluate(trees[ParamKey("a")], point) == 0.5 * 1.0 - 1.0 * 2.0 + 0.25 * 4.0
    numpy.testing.assert_array_equal(_evaluate(trees[TapKey("x", 1)], point),
                                     [0.75, -1.5, 0.375])


def test_reads_of_the_same_value_sum() -> None:
    program = _program("params:\n  a: 2.0\noutputs:\n  x:\n    initial: 3.0\n"
                       "    step: x[t-1] * x[t-1] + a * x[t-1] + a\nsteps: 2\n", {})
    step = program.output("x").step
    point = _point(program, step, {"x": 3.0})
    point.values[COTANGENT] = 1.0
    trees = adjoint.step_vjp(step, ir.Param(step.span, None, ir.CONSTANT, COTANGENT.name))
    assert set(trees) == {TapKey("x", 1), ParamKey("a")}
    assert _evaluate(trees[TapKey("x", 1)], point) == 2 * 3.0 + 2.0
    assert _evaluate(trees[ParamKey("a")], point) == 3.0 + 1


def test_a_branch_not_taken_gets_zero_even_where_the_cotangent_is_infinite() -> None:
    """where(c, ct, 0), not ct * where(c, 1, 0), which would make an infinite cotangent
    NaN in the lanes of the other branch."""
    program = _program("outputs:\n  y:\n    initial: [1.0, 1.0]\n    step: y[t-1]\n"
                       "  x:\n    initial: [2.0, 0.0]\n"
                       "    step: 3 * x[t-1] if x[t-1] > 1 else 2 * y[t-1]\nsteps: 2\n", {})
    step = program.output("x").step
    point = _point(program, step, {"x": [2.0, 0.0], "y": [1.0, 1.0]})
    point.values[COTANGENT] = numpy.array([numpy.inf, 1.0])
    trees = adjoint.step_vjp(step, ir.Param(step.span, None, ir.CONSTANT, COTANGENT.name))
    numpy.testing.assert_array_equal(_evaluate(trees[TapKey("x", 1)], point), [numpy.inf, 0])
    numpy.testing.assert_array_equal(_evaluate(trees[TapKey("y", 1)], point), [0.0, 2.0])


@pytest.mark.parametrize(("step", "column", "what"), [
    ("norm(x[t-1], axis=0) + x[t-1]", 11, "norm() along an axis"),
    ("x[t-1] + transpose(w, [1, 0]) @ x[t-1]", 20, "transpose() with axes"),
    ("x[t-1][[0, 1]] + x[t-1]", 11, "indexing other than by one literal integer or slice"),
])
def test_structural_rules_not_built_are_refused_at_the_node(step: str, column: int,
                                                            what: str) -> None:
    program = _program("params:\n  a: 1.0\n  w: [[1.0, 0.0], [0.0, 1.0]]\noutputs:\n  x:\n"
                       f"    initial: [1.0, 2.0]\n    step: {step}\nsteps: 2\n", {})
    tree = program.output("x").step
    with pytest.raises(ExprError, match=re.escape(what)) as refused:
        adjoint.step_vjp(tree, ir.Param(tree.span, None, ir.CONSTANT, COTANGENT.name))
    assert refused.value.span is not None
    assert (refused.value.span.line, refused.value.span.col) == (7, column)


def test_structural_nodes_that_read_nothing_differentiable_are_no_obstacle() -> None:
    program = _program("params:\n  n: 3\noutputs:\n  x:\n    initial: 1.0\n"
                       "    step: x[t-1] * sum(arange(n))\nsteps: 2\n", {})
    step = program.output("x").step
    point = _point(program, step, {"x": 2.0})
    point.values[COTANGENT] = 1.0
    trees = adjoint.step_vjp(step, ir.Param(step.span, None, ir.CONSTANT, COTANGENT.name))
    assert set(trees) == {TapKey("x", 1)}
    assert _evaluate(trees[TapKey("x", 1)], point) == 0 + 1 + 2


@pytest.mark.parametrize(("shape", "target", "expected"), [
    ((3, 4), (), lambda v: v.sum()),
    ((3, 4), (4,), lambda v: v.sum(axis=0)),
    ((3, 4), (3, 1), lambda v: v.sum(axis=1, keepdims=True)),
    ((2, 3, 4), (1, 4), lambda v: v.sum(axis=(0, 1))[None, :]),
    ((4,), (3, 4), lambda v: v),  # smaller than the target: it broadcasts
    ((3, 4), (3, 4), lambda v: v),
])
def test_sum_to_takes_back_what_broadcasting_added(
        shape: tuple[int, ...], target: tuple[int, ...],
        expected: Callable[[Any], Any]) -> None:
    value = numpy.random.default_rng(1).uniform(-1, 1, shape)
    program = _program("params:\n  v: 0.0\noutputs:\n  x:\n    initial: 1.0\n"
                       "    step: x[t-1]\nsteps: 2\n", {"v": value})
    param = ir.Param(program.output("x").step.span, None, ir.CONSTANT, "v")
    tree = ir.SumTo(param.span, None, ir.CONSTANT, param, target)
    got = _evaluate(tree, Point({ParamKey("v"): value}, {}, program))
    numpy.testing.assert_allclose(got, expected(value), rtol=1e-15)
    assert got.shape == expected(value).shape


# Random steps: small trees of element-wise operations over reads of every kind, with
# lanes (x, w and v's rows have 3; y, a and u's rows are single values, read by every
# lane). Each operation keeps its arguments in a domain where it is smooth and well
# conditioned (a division by 2 + cos(...), a log of 2 + sin(...)); a select or a where
# switches where a difference step is unlikely to cross the switch (about 1e-5 of the
# lanes; the examples are derandomized, so a run gives what the last one gave).
LEAVES = ("x[t-1]", "x[t-2]", "y[t-1]", "a", "w", "u[t]", "v[t+1]", "0.75")
UNARY = ("(-{0})", "sin({0})", "tanh({0})", "arctan({0})", "exp(tanh({0}))", "({0}) ** 2",
         "sqrt(1 + ({0}) ** 2)", "log(2 + sin({0}))", "float64({0})", "hypot({0}, 0.5)",
         "({0}) ** 3")
BINARY = ("({0} + {1})", "({0} - {1})", "({0} * {1})", "({0} / (2 + cos({1})))",
          "maximum({0}, {1})", "arctan2({0}, 2 + cos({1}))", "(2 + sin({0})) ** tanh({1})")
TERNARY = ("({0} if {1} > 0.1 else {2})", "where({1} < 0.2, {0}, {2})")


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def shape(forms: tuple[str, ...], count: int) -> st.SearchStrategy[str]:
        return st.tuples(st.sampled_from(forms), *[children] * count).map(
            lambda parts: parts[0].format(*parts[1:]))

    return st.one_of(shape(UNARY, 1), shape(BINARY, 2), shape(TERNARY, 3))


EXPRESSIONS = st.recursive(st.sampled_from(LEAVES), _extend, max_leaves=8)


def random_case(step: str, rng: numpy.random.Generator) -> tuple[str, dict[str, Any]]:
    """A spec whose output x has `step` (over the reads of LEAVES), and random values of
    its params and sequences (tests/compile/test_backward.py runs it whole)."""
    text = ("params:\n  a: 0.0\n  w: zeros(3)\n  x0: zeros([2, 3])\n  y0: 0.0\n"
            "sequences:\n  u: zeros(6)\n  v: zeros([6, 3])\noutputs:\n"
            "  y:\n    initial: y0\n    step: 0.5 * y[t-1]\n"
            "  x:\n    initial: x0\n    taps: [-2, -1]\n"
            f"    step: {step}\nsteps: 3\n")
    inputs = {"a": rng.uniform(-1.5, 1.5), "w": rng.uniform(-1.5, 1.5, 3),
              "x0": rng.uniform(-1, 1, (2, 3)), "y0": rng.uniform(-1.5, 1.5),
              "u": rng.uniform(-1.5, 1.5, 6), "v": rng.uniform(-1.5, 1.5, (6, 3))}
    return text, inputs


@settings(deadline=None, max_examples=200, derandomize=True)
@given(expression=EXPRESSIONS, seed=st.integers(0, 2**32 - 1))
def test_random_steps_against_central_differences(expression: str, seed: int) -> None:
    note(expression)
    rng = numpy.random.default_rng(seed)
    text, inputs = random_case(f"0.5 * x[t-1] + 0.25 * x[t-2] + {expression}", rng)
    program = _program(text, inputs)
    _check(program, "x", {"x": rng.uniform(-1.5, 1.5, 3), "y": rng.uniform(-1.5, 1.5)}, rng,
           rtol=1e-6)


def test_the_c_kernel_refuses_a_partial_sum_to_with_a_reason() -> None:
    """A sum to one value is compiled (tests/compile/test_backward.py); one to a shape
    with lanes is not: the C engine says so (`explain` prints it); `auto` runs another."""
    program = _program("outputs:\n  x:\n    initial: [1.0, 2.0]\n    step: x[t-1] * 0.5\n"
                       "steps: 3\n", {})
    output = program.output("x")
    summed = ir.SumTo(output.step.span, None, output.step.varies, output.step, (2,))
    changed = dataclasses.replace(program,
                                  outputs=(dataclasses.replace(output, step=summed),))
    assert CEngine().supports(program) is None
    assert "sum over the lanes a value was broadcast to" in (CEngine().supports(changed) or "")
