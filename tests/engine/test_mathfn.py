"""The C kernels' own tanh (`recur.engine.c.mathfn`) and their blocked matrix products.

tanh is checked over a million points of every range against NumPy (within the ulp
docs/performance.md states) and against references computed another way (80-bit long
double, and mpmath where installed); its special values one by one; and the same input
must give the same bits in every lane of a vectorised loop, its scalar remainder and a
one-value kernel.
"""

from __future__ import annotations

import numpy
import pytest
from test_compiled import sum_in_order

import recur
from recur import api
from recur.engine.c import engine as c_engine
from recur.engine.c import mathfn

SATURATES = float.fromhex("0x1.2fd86fe9a361bp+4")  # tanh is exactly 1 from here on
NUMPY_ULP = 3  # docs/performance.md: tanh within 3 ulp of NumPy's
TRUTH_ULP = 1.5  # measured 1.29 against the 80-bit reference


def kernel_tanh(x: numpy.ndarray) -> numpy.ndarray:
    """tanh of each element of `x` computed by a C kernel, one lane per element (the
    tap times 0 keeps NumPy from computing tanh(u) ahead of the loop)."""
    text = (f"steps: 1\nsequences:\n  u: input\noutputs:\n  y:\n    initial: zeros({x.size})\n"
            "    step: tanh(u - y[t-1] * 0)\n")
    spec = recur.load(text)
    inputs = {"u": x.reshape(1, -1)}
    assert "r_tanh_d(" in c_engine.kernel(api.prepare(spec, inputs=inputs).program).source
    result = recur.run(spec, engine="compiled", inputs=inputs)
    assert result.engine == "compiled"
    return numpy.asarray(result["y"][0])


def ulps(got: numpy.ndarray, want: numpy.ndarray) -> numpy.ndarray:
    """|got - want| in units of the last place of `want` rounded to a double."""
    spacing = numpy.spacing(numpy.abs(want.astype(numpy.float64)))
    error = numpy.abs(got.astype(numpy.longdouble) - want.astype(numpy.longdouble))
    return numpy.asarray(error / spacing.astype(numpy.longdouble), dtype=numpy.float64)


def points() -> numpy.ndarray:
    """Over a million points: dense around 0 and the switch at 0.625, the whole range up
    to saturation, magnitudes from subnormal to 1e300, both signs."""
    rng = numpy.random.default_rng(17)
    magnitudes = numpy.exp(rng.uniform(numpy.log(1e-320), numpy.log(1e300), 200_000))
    parts = [rng.uniform(-1, 1, 300_000), rng.uniform(0.55, 0.7, 150_000),
             rng.uniform(-22, 22, 300_000), rng.uniform(18.9, 19.1, 50_000),
             magnitudes * rng.choice([-1.0, 1.0], magnitudes.size)]
    x = numpy.concatenate(parts)
    return numpy.concatenate([x, -x[:50_003]])  # a size no vector width divides


@pytest.fixture(scope="module")
def computed() -> tuple[numpy.ndarray, numpy.ndarray]:
    x = points()
    assert x.size >= 1_000_000
    return x, kernel_tanh(x)


def test_tanh_is_within_the_documented_ulp_of_numpy(computed: tuple) -> None:
    x, got = computed
    with numpy.errstate(all="ignore"):
        assert ulps(got, numpy.tanh(x)).max() <= NUMPY_ULP


def test_tanh_is_within_an_ulp_and_a_half_of_long_double(computed: tuple) -> None:
    if numpy.finfo(numpy.longdouble).nmant < 63:
        pytest.skip("long double is no wider than double here")
    x, got = computed
    assert ulps(got, numpy.tanh(x.astype(numpy.longdouble))).max() <= TRUTH_ULP


def test_tanh_is_within_an_ulp_and_a_half_of_mpmath(computed: tuple) -> None:
    mpmath = pytest.importorskip("mpmath")
    x, got = computed
    picked = numpy.random.default_rng(3).choice(x.size, 3_000, replace=False)
    with mpmath.workprec(80):
        for value, result in zip(x[picked], got[picked], strict=True):
            truth = mpmath.tanh(mpmath.mpf(float(value)))
            spacing = numpy.spacing(abs(float(truth)))
            assert abs(mpmath.mpf(float(result)) - truth) <= TRUTH_ULP * spacing, value


def test_tanh_special_values_are_numpys_and_keep_the_sign() -> None:
    tiny = [0.0, 5e-324, 1e-310, 2.2250738585072014e-308, 1e-200, 1e-9]
    x = numpy.array([*tiny, *(-v for v in tiny), numpy.inf, -numpy.inf, 1e300, -1e300,
                     25.0, -25.0, numpy.nan])
    got = kernel_tanh(x)
    numpy.testing.assert_array_equal(got[:12], x[:12])  # tanh(x) rounds to x
    assert list(numpy.signbit(got[:12])) == list(numpy.signbit(x[:12]))  # -0.0 stays
    assert list(got[12:18]) == [1.0, -1.0] * 3
    assert numpy.isnan(got[18])
    numpy.testing.assert_array_equal(got, numpy.tanh(x))


def test_tanh_saturates_exactly_from_its_threshold() -> None:
    """1 from 0x1.2fd86fe9a361bp+4 on, where NumPy's vectorised tanh is; below it the
    value is 1 - 2**-53, as the correctly rounded tanh is up to 19.06."""
    below = numpy.nextafter(SATURATES, 0.0)
    x = numpy.array([below, SATURATES, -below, -SATURATES, 19.0, 19.1])
    got = kernel_tanh(x)
    assert list(got) == [1 - 2**-53, 1.0, -(1 - 2**-53), -1.0, 1.0, 1.0]
    near = numpy.linspace(18.9, 19.1, 20_001)
    assert numpy.array_equal(kernel_tanh(near) == 1.0, near >= SATURATES)


def test_numpy_saturates_where_the_kernel_does() -> None:
    """Where NumPy runs its own vectorised tanh (not the C library's) it is 1 exactly
    from the same point on."""
    below = numpy.nextafter(SATURATES, 0.0)
    if numpy.tanh(numpy.array([SATURATES] * 8))[0] != 1.0:
        pytest.skip("this NumPy's tanh is not the vectorised one")
    assert numpy.tanh(numpy.array([below] * 8))[0] < 1.0


def test_the_same_input_gives_the_same_bits_in_any_lane() -> None:
    """The vector body and the scalar remainder of the lane loop compute the same
    operations: shifting the inputs by a lane, or running them as a one-value kernel
    step after step, leaves every result's bits alone."""
    x = numpy.random.default_rng(5).uniform(-3, 3, 1_003)
    whole = kernel_tanh(x)
    for start in (1, 2, 3):
        assert numpy.array_equal(kernel_tanh(x[start:]).view(numpy.int64),
                                 whole[start:].view(numpy.int64))
    for width in (1, 5, 7):
        assert numpy.array_equal(kernel_tanh(x[:width]).view(numpy.int64),
                                 whole[:width].view(numpy.int64))
    text = ("sequences:\n  u: input\noutputs:\n  y:\n    initial: 0.0\n"
            "    step: tanh(u - y[t-1] * 0)\n")
    one = recur.run(recur.load(text), engine="compiled", inputs={"u": x[:101]})
    assert numpy.array_equal(numpy.asarray(one["y"]).view(numpy.int64),
                             whole[:101].view(numpy.int64))


def test_the_cuda_dialect_keeps_its_own_tanh() -> None:
    from recur.engine.cuda import generate as cuda_generate

    spec = recur.load("outputs:\n  y:\n    initial: linspace(0, 1, 8)\n"
                      "    step: tanh(y[t-1] + 0.5)\nsteps: 3\n")
    source = cuda_generate.generate(api.prepare(spec).program, numpy).source
    assert "tanh(" in source and mathfn.FUNCTIONS[("tanh", "float64")][0] not in source


@pytest.mark.parametrize("lanes", [32, 70])
def test_blocked_matrix_products_sum_each_lane_in_index_order(lanes: int) -> None:
    """Lanes in blocks whose sums stay in registers, and the lanes after the last whole
    block: each sum in index order, as a Python loop adds them."""
    rng = numpy.random.default_rng(lanes)
    w = rng.normal(size=(lanes, lanes)) / lanes
    u = rng.normal(size=(6, lanes))
    text = (f"steps: 6\nparams:\n  W: input\nsequences:\n  u: input\noutputs:\n"
            f"  h:\n    initial: zeros({lanes})\n    step: W @ h[t-1] + u\n")
    result = recur.run(recur.load(text), engine="compiled", inputs={"W": w, "u": u})
    h, expected = [0.0] * lanes, []
    for t in range(6):
        h = [sum_in_order(w[i, j] * h[j] for j in range(lanes)) + float(u[t, i])
             for i in range(lanes)]
        expected.append(h)
    numpy.testing.assert_array_equal(result["h"], numpy.array(expected))
