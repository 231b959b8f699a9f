"""Gradients through time (`recur.grad`, `recur.compile.backward`), against independent
computations: plain-Python reverse loops written out by hand for a few specs, and
central finite differences of forward runs (`recur.run`) for the rest.

A central difference with h = 1e-6 * max(1, |v|) is off by about h**2 times the third
derivative plus 1e-16 / h times the objective's size: for these short runs (at most 8
steps of well-conditioned maps) under 1e-8 relative, where a wrong rule is off by a
factor of order one; rtol 1e-5 leaves a wide margin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from test_adjoint import EXPRESSIONS, random_case

import recur
from recur import api, checkpoints
from recur.diagnostics import RecurError
from recur.gradients import grad

SPECS = Path(__file__).resolve().parents[2] / "specs"


def differences(text: str, of: str, name: str, inputs: Mapping[str, Any],
                **options: Any) -> numpy.ndarray:
    """Central differences of J = sum(run[of]) along each element of input `name`."""
    spec = recur.load(text)
    value = numpy.array(inputs[name], dtype=float)
    result = numpy.zeros(value.shape)
    for index in numpy.ndindex(value.shape):
        h = 1e-6 * max(1.0, abs(value[index]))
        sums = []
        for sign in (1, -1):
            moved = value.copy()
            moved[index] += sign * h
            run = recur.run(spec, inputs={**inputs, name: moved}, **options)
            sums.append(float(numpy.sum(run[of])))
        result[index] = (sums[0] - sums[1]) / (2 * h)
    return result


def check(text: str, of: str, wrt: dict[str, str], inputs: Mapping[str, Any],
          engine: str = "interp", **options: Any) -> recur.Gradients:
    """`grad` by each key of `wrt` against differences along the input named by its value
    (an output's initial is given by a param)."""
    got = grad(recur.load(text), of=of, wrt=list(wrt), inputs=inputs, engine=engine,
               **options)
    for name, source in wrt.items():
        want = differences(text, of, source, inputs, **options)
        assert got[name].shape == want.shape, name
        assert_allclose(got[name], want, rtol=1e-5, atol=1e-8, err_msg=name)
    return got


# Plain-Python reverse loops.

LOGISTIC = """\
params:
  r: 3.7
  x0: 0.3
outputs:
  x:
    initial: x0
    step: r * x[t-1] * (1 - x[t-1])
steps: 12
"""


def test_logistic_against_a_plain_python_reverse_loop() -> None:
    r, x0, steps = 3.7, 0.3, 12
    xs = [x0]
    for _ in range(steps):
        xs.append(r * xs[-1] * (1 - xs[-1]))
    adjoint, d_r = 0.0, 0.0  # dJ/dx[t] carried backwards; J = sum of x[0..steps-1]
    for t in range(steps - 1, -1, -1):
        adjoint += 1.0  # J's own term
        d_r += adjoint * xs[t] * (1 - xs[t])
        adjoint = adjoint * r * (1 - 2 * xs[t])  # now dJ/dx[t-1]
    got = grad(LOGISTIC, of="x", wrt=["r", "x"])
    assert math.isclose(float(got["r"]), d_r, rel_tol=1e-12)
    assert math.isclose(float(got["x"]), adjoint, rel_tol=1e-12)
    assert got.objective == pytest.approx(sum(xs[1:]), rel=1e-15)


TWO_TAPS = """\
params:
  a: 0.5
  b: 0.7
outputs:
  x:
    initial: [1.0, 2.0]
    taps: [-2, -1]
    step: a * x[t-1] + b * x[t-2]
steps: 7
"""


def test_two_taps_against_a_plain_python_reverse_loop() -> None:
    a, b, steps = 0.5, 0.7, 7
    xs = [1.0, 2.0]  # x[-2], x[-1]
    for _ in range(steps):
        xs.append(a * xs[-1] + b * xs[-2])
    adjoints = [0.0] * (steps + 2)  # dJ/dx at index t + 2
    d_a = d_b = 0.0
    for t in range(steps - 1, -1, -1):
        adjoints[t + 2] += 1.0
        d_a += adjoints[t + 2] * xs[t + 1]
        d_b += adjoints[t + 2] * xs[t]
        adjoints[t + 1] += adjoints[t + 2] * a
        adjoints[t] += adjoints[t + 2] * b
    got = grad(TWO_TAPS, of="x", wrt=["a", "b", "x"])
    assert_allclose([got["a"], got["b"]], [d_a, d_b], rtol=1e-13)
    assert_allclose(got["x"], adjoints[:2], rtol=1e-13)
    assert got["x"].shape == (2,)


def test_an_rnn_with_a_matrix_product_against_a_plain_python_reverse_loop() -> None:
    spec = recur.load(SPECS / "rnn.yaml")
    result = grad(spec, of="h", wrt=["W", "v", "b", "x"])
    params = recur.run(spec).params
    W, v, b = (numpy.asarray(params[name]) for name in ("W", "v", "b"))
    x = numpy.sin(2 * numpy.pi * numpy.arange(40) / 20)
    hs = [numpy.zeros(3)]
    for t in range(40):
        hs.append(numpy.tanh(W @ hs[-1] + v * x[t] + b))
    adjoint = numpy.zeros(3)
    d_W, d_v, d_b, d_x = numpy.zeros((3, 3)), numpy.zeros(3), numpy.zeros(3), numpy.zeros(40)
    for t in range(39, -1, -1):
        adjoint = adjoint + 1.0
        pre = adjoint * (1 - hs[t + 1] ** 2)
        d_W += numpy.outer(pre, hs[t])
        d_v += pre * x[t]
        d_b += pre
        d_x[t] = pre @ v
        adjoint = W.T @ pre
    assert_allclose(result["W"], d_W, rtol=1e-12)
    assert_allclose(result["v"], d_v, rtol=1e-12)
    assert_allclose(result["b"], d_b, rtol=1e-12)
    assert_allclose(result["x"], d_x, rtol=1e-12, atol=1e-15)


def _truncated_reference(a: float, x0: float, u: list[float], keep: int
                         ) -> tuple[float, float, list[float]]:
    """Theano's truncate_gradient by hand: the backward loop covers the last `keep` steps
    (all with -1); the initial state gets nothing unless it covers every step."""
    xs = [x0]
    for value in u:
        xs.append(a * xs[-1] + math.sin(xs[-1]) * value)
    steps = len(u)
    covered = steps if keep < 0 else min(keep, steps)
    adjoint, d_a, d_u = 0.0, 0.0, [0.0] * steps
    for t in range(steps - 1, steps - 1 - covered, -1):
        adjoint += 1.0
        d_a += adjoint * xs[t]
        d_u[t] = adjoint * math.sin(xs[t])
        adjoint = adjoint * (a + math.cos(xs[t]) * u[t])
    return d_a, (adjoint if covered == steps else 0.0), d_u


TRUNCATED = """\
params:
  a: 0.5
  x0: 0.3
sequences:
  u: [0.1, -0.2, 0.3, 0.4, -0.5]
outputs:
  x:
    initial: x0
    step: a * x[t-1] + sin(x[t-1]) * u
"""


@pytest.mark.parametrize("keep", [-1, 0, 1, 2, 4, 5, 6, 100])
def test_truncate_is_thenos_truncate_gradient(keep: int) -> None:
    """Also PyTensor's, on this very case (benchmarks/grad.py compares when it is
    installed: the same numbers to 1e-10)."""
    d_a, d_x0, d_u = _truncated_reference(0.5, 0.3, [0.1, -0.2, 0.3, 0.4, -0.5], keep)
    got = grad(TRUNCATED, of="x", wrt=["a", "x", "u"], truncate=keep)
    assert_allclose(got["a"], d_a, rtol=1e-13, atol=1e-300)
    assert_allclose(got["x"], d_x0, rtol=1e-13, atol=1e-300)
    assert_allclose(got["u"], d_u, rtol=1e-13, atol=1e-300)


# Finite differences of forward runs.

CHAIN = """\
params:
  a: 0.5
  s: 0.2
  i0: [1.0, 2.0]
  y0: [0.1, 0.2, 0.3]
sequences:
  u: zeros(9)
outputs:
  y:
    initial: y0
    step: s * y[t-1] + u[t+1] * 0.1
  k:
    dtype: int64
    initial: 1
    step: k[t-1] + 1
  x:
    initial: i0
    taps: [-2, -1]
    step: a * x[t-1] + sin(x[t-2]) * u[t+1] + u[t-1] * y[t] + float64(k[t-1]) * 0.01
    keep: all
"""


def _chain_inputs() -> dict[str, Any]:
    rng = numpy.random.default_rng(7)
    return {"a": 0.5, "s": 0.2, "i0": numpy.array([1.0, 2.0]),
            "y0": numpy.array([0.1, 0.2, 0.3]), "u": rng.uniform(-1, 1, 9)}


CHAIN_WRT = {"a": "a", "s": "s", "u": "u", "x": "i0", "y": "y0"}


@pytest.mark.parametrize("options", [
    {"steps": 6}, {"steps": 6, "last": True}, {"steps": 0}, {"steps": 0, "last": True},
    {"steps": 1}, {"steps": 7},
], ids=repr)
def test_a_chain_of_outputs_with_lanes_taps_and_sequence_offsets(options: dict[str, Any]
                                                                 ) -> None:
    """x reads y at this step (lanes: y has 3, x is broadcast to them), itself two steps
    back, the sequence one step ahead and behind, and an integer output (a constant)."""
    check(CHAIN, "x", CHAIN_WRT, _chain_inputs(),
          **options)


@pytest.mark.parametrize("change", [
    ("steps: 6", "steps: 6\nreverse: true"),
    ("keep: all", "keep: all\nuntil: any(x[t] > 1.5)"),
    ("keep: all", "keep: last"),
], ids=repr)
def test_reverse_until_and_keep_last(change: tuple[str, str]) -> None:
    text = CHAIN + "steps: 6\n"
    check(text.replace(*change), "x", CHAIN_WRT, _chain_inputs())


def test_until_on_the_first_step_differentiates_one_step() -> None:
    text = CHAIN + "steps: 6\nuntil: t >= 0\n"
    got = check(text, "x", CHAIN_WRT, _chain_inputs())
    assert (got.steps_run, got.stopped_by) == (1, "until")


STOCHASTIC = """\
params:
  s: 0.3
  r: linspace(2.9, 3.1, 3)
seed: 4
outputs:
  x:
    initial: 0.5
    step: r * x[t-1] * (1 - x[t-1]) + s * normal(0, s) * 0.1 + uniform(s, 1) * 0.01
steps: 6
"""


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_draws_are_constants_of_the_gradient_through_their_arguments(engine: str) -> None:
    check(STOCHASTIC, "x", {"s": "s", "r": "r"},
          {"s": 0.3, "r": numpy.linspace(2.9, 3.1, 3)}, engine=engine)


def test_reductions_and_products_of_states() -> None:
    text = ("params:\n  m: zeros([3, 3])\n  c: 0.5\noutputs:\n  x:\n    initial: [0.1, 0.2, 0.3]\n"
            "    step: tanh(m @ x[t-1]) * c + mean(x[t-1]) + max(x[t-1] ** 2) * 0.1\n"
            "  energy:\n    initial: 0.0\n    step: sum(x[t] ** 2) + norm(x[t]) * c\nsteps: 5\n")
    rng = numpy.random.default_rng(3)
    check(text, "energy", {"m": "m", "c": "c"}, {"m": rng.uniform(-1, 1, (3, 3)), "c": 0.5})


@settings(deadline=None, max_examples=12, derandomize=True)
@given(expression=EXPRESSIONS, seed=st.integers(0, 2**32 - 1))
def test_random_specs_against_differences_of_the_run(expression: str, seed: int) -> None:
    note(expression)
    rng = numpy.random.default_rng(seed)
    text, inputs = random_case(
        f"tanh(0.5 * x[t-1] + 0.25 * x[t-2] + 0.1 * ({expression}))", rng)
    with numpy.errstate(all="ignore"):
        check(text, "x", {"a": "a", "w": "w", "x": "x0", "y": "y0", "u": "u", "v": "v"},
              inputs)


# Every engine gives the interpreter's gradients.

@pytest.mark.parametrize("engine", ["compiled"])
@pytest.mark.parametrize("text", [LOGISTIC, TWO_TAPS, STOCHASTIC,
                                  CHAIN + "steps: 6\n"],
                         ids=["logistic", "two_taps", "stochastic", "chain"])
def test_the_compiled_engine_gives_the_interpreters_gradients(text: str, engine: str) -> None:
    spec = recur.load(text)
    names = [p.name.name for p in spec.params
             if p.name.name not in ("i0", "y0", "x0")] + ["x"]
    want = grad(spec, of="x", wrt=names, engine="interp")
    got = grad(spec, of="x", wrt=names, engine=engine)
    assert got.engine == engine
    for name in names:
        assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-300, err_msg=name)


# Errors.

@pytest.mark.parametrize(("keywords", "message"), [
    ({"of": "xx"}, "the spec has no output 'xx'"),
    ({"of": "k"}, "output 'k' is int64; a gradient needs a float output"),
    ({"of": "q"}, "'keep: none'"),
    ({"of": "x", "wrt": ["n"]}, "'n' is int64; only float values have a gradient"),
    ({"of": "x", "wrt": ["nope"]}, "no param, sequence or output 'nope'"),
    ({"of": "x", "wrt": ["a", "a"]}, "given twice"),
    ({"of": "x", "wrt": ["q"]}, "output 'q' has no 'initial'"),
    ({"of": "x", "truncate": -2}, "truncate must be -1 .all steps. or a step count >= 0, not -2"),
])
def test_bad_requests_are_usage_errors(keywords: dict[str, Any], message: str) -> None:
    text = ("params:\n  a: 0.5\n  n: 3\noutputs:\n  k:\n    dtype: int64\n    initial: 1\n"
            "    step: k[t-1] + n\n  q:\n    step: a * 2\n    keep: none\n"
            "  x:\n    initial: 1.0\n    step: a * x[t-1] + q[t]\nsteps: 3\n")
    with pytest.raises(RecurError, match=message) as raised:
        grad(text, **keywords)
    assert raised.value.exit_code == 2


def test_without_wrt_every_float_param_and_none_is_an_error() -> None:
    got = grad(TWO_TAPS, of="x")
    assert list(got) == ["a", "b"]
    with pytest.raises(RecurError, match="no float param") as raised:
        grad("params:\n  n: 2\noutputs:\n  x:\n    initial: 1.0\n    step: x[t-1] * n\n"
             "steps: 2\n", of="x")
    assert raised.value.exit_code == 2


# Checkpoints: snapshots of the forward states, segments run again.

@pytest.mark.parametrize("checkpoints", [1, 2, 3, 7])
@pytest.mark.parametrize("case", ["chain", "last", "until", "truncate", "stochastic", "reverse"])
def test_checkpoints_give_the_stored_gradients(case: str, checkpoints: int) -> None:
    text, inputs, options = {
        "chain": (CHAIN + "steps: 7\n", _chain_inputs(), {}),
        "last": (CHAIN + "steps: 7\n", _chain_inputs(), {"last": True}),
        "until": (CHAIN + "steps: 7\nuntil: t >= 4\n", _chain_inputs(), {}),
        "truncate": (CHAIN + "steps: 7\n", _chain_inputs(), {"truncate": 3}),
        "stochastic": (STOCHASTIC, {}, {}),
        "reverse": (CHAIN + "steps: 6\nreverse: true\n", _chain_inputs(), {}),
    }[case]
    spec = recur.load(text)
    wrt = ["s", "r", "x"] if case == "stochastic" else list(CHAIN_WRT)
    stored = grad(spec, of="x", wrt=wrt, inputs=inputs, **options)
    assert not stored.plan.checkpointed
    for engine in ("interp", "compiled"):
        got = grad(spec, of="x", wrt=wrt, inputs=inputs, checkpoints=checkpoints,
                   engine=engine, **options)
        assert got.plan.checkpointed and got.plan.snapshots <= checkpoints
        assert (got.steps_run, got.stopped_by) == (stored.steps_run, stored.stopped_by)
        assert got.objective == pytest.approx(stored.objective, rel=1e-15)
        for name in wrt:
            assert_allclose(got[name], stored[name], rtol=1e-12, atol=1e-300,
                            err_msg=f"{engine} {name}")


def test_forward_states_past_the_limit_are_checkpointed(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    stored = grad(LOGISTIC, of="x", wrt=["r", "x"])
    monkeypatch.setattr(checkpoints, "STORE_LIMIT", 100)
    monkeypatch.setattr(checkpoints, "SEGMENT_BYTES",
                        5 * 8 * checkpoints.HELD_PER_STATE_BYTE)  # 5 steps of a float64
    got = grad(LOGISTIC, of="x", wrt=["r", "x"])
    assert got.plan.checkpointed and got.plan.segment == 5 and got.plan.snapshots == 3
    assert_allclose([got["r"], got["x"]], [stored["r"], stored["x"]], rtol=1e-12)


@pytest.mark.parametrize(("steps", "backward", "segment", "windows"), [
    (10, 10, 4, [(0, 2), (2, 6), (6, 10)]),
    (10, 12, 4, [(0, 2), (2, 6), (6, 12)]),  # the initial states' steps with the first
    (10, 3, 4, [(0, 2), (2, 3)]),  # truncated
    (8, 8, 4, [(0, 4), (4, 8)]),
    (0, 1, 4, [(0, 1)]),
])
def test_backward_windows_follow_the_forward_segments(
        steps: int, backward: int, segment: int, windows: list[tuple[int, int]]) -> None:
    plan = checkpoints.Plan(steps, segment, 3, 8, 8)
    assert plan.windows(steps, backward) == windows


def test_gapped_taps_and_a_deep_initial() -> None:
    """Taps [-3, -1]: the initial has three states, the middle one read by no step
    before t = 1 (x[t-3] at t = 1 is x[-2])."""
    text = ("params:\n  a: 0.4\n  b: 0.3\n  x0: [0.5, 0.7, 0.9]\noutputs:\n  x:\n"
            "    initial: x0\n    taps: [-3, -1]\n    step: a * x[t-1] + b * cos(x[t-3])\n"
            "steps: 6\n")
    got = check(text, "x", {"a": "a", "b": "b", "x": "x0"},
                {"a": 0.4, "b": 0.3, "x0": numpy.array([0.5, 0.7, 0.9])})
    assert got["x"].shape == (3,)


def test_checkpoints_below_one_are_refused() -> None:
    with pytest.raises(RecurError, match="checkpoints must be a number of snapshots >= 1, "
                                         "not 0") as raised:
        grad(LOGISTIC, of="x", checkpoints=0)
    assert raised.value.exit_code == 2


UPSTREAM = """\
params:
  a: 0.7
  b: 2 * a + sin(a)
  r: linspace(a, 3.0, 3)
  x0: a / 4
sequences:
  u: cos(a * arange(8)) * b
outputs:
  x:
    initial: x0
    step: r * x[t-1] * (1 - x[t-1]) + 0.1 * u[t+1] + b * 0.01
  y:
    initial: [a, x0]
    taps: [-2, -1]
    step: 0.5 * y[t-1] + 0.25 * y[t-2] + sum(x[t])
steps: 6
"""


@pytest.mark.parametrize("of", ["x", "y"])
def test_gradients_flow_back_through_the_values_made_from_params(of: str) -> None:
    """a reaches the run through b, r, x0, u and y's initial: every path counts."""
    got = check(UPSTREAM, of, {"a": "a"}, {"a": 0.7})
    assert got["a"] != 0
    assert got.keys() == {"a"}


def test_a_value_given_as_an_array_is_made_from_nothing() -> None:
    """With b given, a reaches the run only through r, x0, u and y's initial."""
    spec = recur.load(UPSTREAM)
    b = 2 * 0.7 + math.sin(0.7)
    got = grad(spec, of="y", wrt=["a"], inputs={"b": b})
    want = differences(UPSTREAM, "y", "a", {"a": 0.7, "b": b})
    assert_allclose(got["a"], want, rtol=1e-5)
    assert not numpy.isclose(got["a"], grad(spec, of="y", wrt=["a"])["a"])


def test_a_set_expression_is_differentiated_as_the_spec_is() -> None:
    got = grad(UPSTREAM, of="y", wrt=["a"], params={"x0": "a * a"})
    spec = recur.load(UPSTREAM)

    def objective(a: float) -> float:
        return float(numpy.sum(recur.run(spec, params={"a": a, "x0": "a * a"})["y"]))

    want = (objective(0.7 + 1e-6) - objective(0.7 - 1e-6)) / 2e-6
    assert_allclose(got["a"], want, rtol=1e-5)


@pytest.mark.parametrize(("name", "of", "param", "options"), [
    ("fit_decay", "loss", "k", {}),
    ("linear_filter", "y", "f_slow", {"steps": 40}),
    ("lotka_volterra", "prey", "alpha", {"steps": 50}),
    ("newton_sqrt", "x", "a", {}),
    ("ornstein_uhlenbeck", "x", "theta", {"steps": 20}),
    ("pi", "pi_sum", "dx", {}),
    ("rnn", "h", "b", {}),
    ("taylor_exp", "exp_sum", "x", {}),
])
def test_the_example_specs_against_differences(name: str, of: str, param: str,
                                               options: dict[str, Any]) -> None:
    spec = recur.load(SPECS / f"{name}.yaml")
    value = numpy.asarray(api.prepare(spec).program.params[param], dtype=float)
    got = grad(spec, of=of, wrt=[param], **options)
    want = differences(spec.source, of, param, {param: value}, **options)
    assert_allclose(got[param], want, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("options", [{}, {"checkpoints": 4}], ids=["stored", "checkpoints"])
def test_progress_counts_the_forward_then_the_backward_steps(options: dict[str, Any]
                                                            ) -> None:
    calls: list[tuple[int, int]] = []
    grad(LOGISTIC, of="x", wrt=["r"], steps=40_000, engine="interp",
         progress=lambda done, total: calls.append((done, total)), **options)
    done = [value for value, _ in calls]
    assert {total for _, total in calls} == {80_000}
    assert done == sorted(done) and done[-1] == 80_000
    assert any(value <= 40_000 for value in done) and any(value > 40_000 for value in done)
