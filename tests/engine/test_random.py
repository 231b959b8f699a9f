"""Random calls: recur's draws against an independent Philox4x64-10 written here in
Python integers (itself checked against Random123's known answers and NumPy's Philox),
their distributions, their invariance across engines, steps, lanes and keeping, and the
errors of misuse."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy
import pytest
from scipy import stats

import recur
from recur import api
from recur.diagnostics import RecurError
from recur.engine.plan import run_on
from recur.engine.registry import choose
from recur.lang import philox

MASK = 2**64 - 1
M0, M1 = 0xD2E7470EE14C6C93, 0xCA5A826395121157
W0, W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B


def reference(counter: tuple[int, int, int, int], key: tuple[int, int]) -> list[int]:
    """Philox4x64-10 (Salmon et al. 2011) in Python integers, as the paper gives it."""
    c = list(counter)
    k0, k1 = key
    for _ in range(10):
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [(p1 >> 64) ^ c[1] ^ k0, p1 & MASK, (p0 >> 64) ^ c[3] ^ k1, p0 & MASK]
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return c


# Random123's kat_vectors for philox4x64_10: counter, key, the four words.
KAT = [
    ((0, 0, 0, 0), (0, 0),
     (0x16554D9ECA36314C, 0xDB20FE9D672D0FDC, 0xD7E772CEE186176B, 0x7E68B68AEC7BA23B)),
    ((MASK, MASK, MASK, MASK), (MASK, MASK),
     (0x87B092C3013FE90B, 0x438C3C67BE8D0224, 0x9CC7D7C69CD777B6, 0xA09CAEBF594F0BA0)),
    ((0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89),
     (0x452821E638D01377, 0xBE5466CF34E90C6C),
     (0xA528F45403E61D95, 0x38C72DBD566E9788, 0xA5A1610E72FD18B5, 0x57BD43B5E52B7FE6)),
]


@pytest.mark.parametrize(("counter", "key", "words"), KAT)
def test_the_reference_gives_random123s_known_answers(counter, key, words) -> None:
    assert reference(counter, key) == list(words)


@pytest.mark.parametrize(("counter", "key", "words"), KAT)
def test_recurs_philox_gives_the_known_answers(counter, key, words) -> None:
    with numpy.errstate(over="ignore"):
        got = philox.philox(numpy, tuple(numpy.uint64(c) for c in counter), key)
    assert [int(w) for w in got] == list(words)


@pytest.mark.parametrize("seed", [0, 1, 2**63 + 12345, MASK])
def test_the_reference_is_numpys_philox(seed: int) -> None:
    """numpy.random.Philox adds one to its 256-bit counter before each block."""
    rng = numpy.random.default_rng(seed % 1000)
    for _ in range(20):
        counter = [int(w) for w in rng.integers(0, 2**64, size=4, dtype=numpy.uint64)]
        value = sum(word << (64 * k) for k, word in enumerate(counter))
        before = (value - 1) % 2**256
        generator = numpy.random.Philox(counter=before, key=seed)
        assert [int(w) for w in generator.random_raw(4)] == reference(tuple(counter), (seed, 0))


@pytest.mark.parametrize(("t", "first"), [(0, 0), (7, 3), (2**40 + 3, 2**50), (MASK, MASK - 99)])
@pytest.mark.parametrize("site", [0, 5])
@pytest.mark.parametrize("count", [1, philox.FEW, philox.FEW + 1, 100])  # ints, then arrays
def test_words_at_large_steps_and_elements(t: int, first: int, site: int, count: int) -> None:
    w0, w1 = philox.words(numpy, 99, site, t, count, first)
    assert w0.shape == w1.shape == (count,)
    for k in range(count):
        want = reference((t, (first + k) & MASK, site, 0), (99, 0))
        assert (int(w0[k]), int(w1[k])) == (want[0], want[1])


WALK = """
params:
  lanes: 6
outputs:
  u:
    initial: zeros(lanes)
    step: uniform() + 0 * u[t-1]
  k:
    dtype: int64
    initial: 0 * arange(lanes)
    step: integers(-5, 1000) + 0 * k[t-1]
  g:
    initial: zeros(lanes)
    step: normal(3, 2) + 0 * g[t-1]
steps: 30
"""


def _unit(word: int) -> float:
    return (word >> 11) / 2**53


@pytest.mark.parametrize("seed", [0, 42, 2**64 - 1])
@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_draws_are_the_reference_bit_for_bit(seed: int, engine: str) -> None:
    result = recur.run(recur.load(WALK), seed=seed, engine=engine)
    for t in range(30):
        for e in range(6):
            u = reference((t, e, 0, 0), (seed, 0))
            k = reference((t, e, 1, 0), (seed, 0))
            g = reference((t, e, 2, 0), (seed, 0))
            assert result["u"][t, e] == _unit(u[0])
            assert result["k"][t, e] == -5 + ((k[0] * 1005) >> 64)
            want = 3 + 2 * (math.sqrt(-2 * math.log(1 - _unit(g[0])))
                            * math.cos(2 * math.pi * _unit(g[1])))
            assert result["g"][t, e] == pytest.approx(want, rel=1e-14, abs=1e-13)


def test_the_logarithm_and_cosine_of_normal_are_within_an_ulp_or_so() -> None:
    """recur computes them from + - * / (the same bits everywhere): checked against
    the C library's, which are within an ulp of the truth."""
    words = numpy.random.default_rng(5).integers(0, 2**64, size=20000, dtype=numpy.uint64)
    x = 1.0 - philox.unit(numpy, words)
    want = numpy.array([math.log(v) for v in x])
    nonzero = want != 0
    error = numpy.abs(philox.log(numpy, x) - want)[nonzero]
    ulps = error / numpy.spacing(numpy.abs(want[nonzero]))
    assert ulps.max() <= 1
    u = philox.unit(numpy, words[::-1].copy())
    cosine = numpy.array([math.cos(2 * math.pi * v) for v in u])
    # math.cos sees 2*pi*u rounded: up to 4.5e-16 off in its argument
    assert numpy.abs(philox.cos_turns(numpy, u) - cosine).max() < 1e-15
    assert philox.cos_turns(numpy, numpy.array([0.0, 0.25, 0.5, 0.75])).tolist() == [
        1.0, 0.0, -1.0, 0.0]


DISTRIBUTIONS = """
params:
  lanes: 1000
outputs:
  u:
    initial: zeros(lanes)
    step: uniform() + 0 * u[t-1]
  g:
    initial: zeros(lanes)
    step: normal() + 0 * g[t-1]
  k:
    initial: 0 * arange(lanes)
    dtype: int64
    step: integers(0, 10) + 0 * k[t-1]
steps: 100
"""


@pytest.fixture(scope="module")
def drawn() -> recur.Result:
    return recur.run(recur.load(DISTRIBUTIONS), seed=2024, engine="compiled")


def test_uniform_passes_kolmogorov_smirnov(drawn: recur.Result) -> None:
    u = drawn["u"].ravel()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 0.01


def test_normal_passes_kolmogorov_smirnov(drawn: recur.Result) -> None:
    assert stats.kstest(drawn["g"].ravel(), "norm").pvalue > 0.01


def test_integers_pass_chi_square(drawn: recur.Result) -> None:
    counts = numpy.bincount(drawn["k"].ravel(), minlength=10)
    assert counts.size == 10
    assert stats.chisquare(counts).pvalue > 0.01


def test_the_sites_are_independent(drawn: recur.Result) -> None:
    correlation = numpy.corrcoef(drawn["u"].ravel(), drawn["g"].ravel())[0, 1]
    assert abs(correlation) < 4 / math.sqrt(drawn["u"].size)


SWEEP = """
params:
  r: linspace(0.1, 0.9, 1000)
outputs:
  x:
    initial: 0.0
    step: r * x[t-1] + normal(0, 0.5)
  hits:
    initial: 0
    dtype: int64
    step: hits[t-1] + integers(0, 2) + 0 * int64(x[t] > 10)
  noise:
    step: uniform(-1, 1) * r
until: uniform() < 0.0001
steps: 1000
"""


@pytest.fixture(scope="module")
def sweep() -> recur.Result:
    return recur.run(recur.load(SWEEP), seed=11, engine="interp")


def test_the_interpreter_and_the_c_kernel_give_the_same_bits(sweep: recur.Result) -> None:
    compiled = recur.run(recur.load(SWEEP), seed=11, engine="compiled")
    assert compiled.engine == "compiled" and compiled.steps_run == sweep.steps_run
    for name in sweep:
        numpy.testing.assert_array_equal(compiled[name], sweep[name])


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_a_shorter_run_is_the_start_of_a_longer_one(engine: str) -> None:
    spec = recur.load(SWEEP.replace("until: uniform() < 0.0001\n", ""))
    short = recur.run(spec, steps=100, engine=engine, seed=3)
    long = recur.run(spec, steps=1000, engine=engine, seed=3)
    for name in short:
        numpy.testing.assert_array_equal(long[name][:100], short[name])


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_keeping_changes_nothing(engine: str, sweep: recur.Result) -> None:
    last = recur.run(recur.load(SWEEP), seed=11, engine=engine, last=True)
    for name in sweep:
        numpy.testing.assert_array_equal(last[name], sweep[name][-1])
    kept = recur.run(recur.load(SWEEP.replace("    step: uniform(-1, 1) * r\n",
                                              "    step: uniform(-1, 1) * r\n    keep: none\n")),
                     seed=11, engine=engine)
    assert "noise" not in kept
    numpy.testing.assert_array_equal(kept["x"], sweep["x"])


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_lanes_split_in_two_halves_draw_as_the_whole_sweep(engine: str,
                                                           sweep: recur.Result) -> None:
    """A chunk of lanes (`Program.first_lane`) numbers its elements as the whole does."""
    spec = recur.load(SWEEP.replace("until: uniform() < 0.0001\n", ""))
    whole = recur.run(spec, seed=11, engine=engine, steps=300)
    r = numpy.linspace(0.1, 0.9, 1000)
    for first in (0, 500):
        program = replace(api.prepare(spec, params={"r": r[first:first + 500]}, seed=11,
                                      steps=300).program, first_lane=first)
        half = run_on(choose(program, engine).engine, program, api.get_backend("cpu"))
        for name in whole:
            numpy.testing.assert_array_equal(half.arrays[name], whole[name][:, first:first + 500])


def test_the_seed_chooses_the_stream(sweep: recur.Result) -> None:
    spec = recur.load(SWEEP)
    assert not numpy.array_equal(recur.run(spec, seed=12, steps=5)["x"], sweep["x"][:5])
    seeded = recur.load(SWEEP + "seed: 11\n")
    numpy.testing.assert_array_equal(recur.run(seeded)["x"], sweep["x"])
    assert not numpy.array_equal(recur.run(seeded, seed=0, steps=5)["x"], sweep["x"][:5])


@pytest.mark.parametrize("engine", ["interp", "compiled"])  # compiled: C's lane loop
def test_sites_count_in_file_order(engine: str) -> None:
    """`until` written first is site 0; then the outputs as written, left to right."""
    spec = recur.load("until: uniform() > 2\noutputs:\n  a:\n    step: uniform() + 2 * uniform()\n"
                      "  b:\n    step: uniform()\nsteps: 3\n")
    result = recur.run(spec, seed=5, engine=engine)
    for t in range(3):
        first, second, third = (_unit(reference((t, 0, c, 0), (5, 0))[0]) for c in (1, 2, 3))
        assert result["a"][t] == first + 2 * second
        assert result["b"][t] == third
    explained = api.prepare(spec).program.draws()
    assert [(d.site, d.output, d.kind) for d in explained] == [
        (0, "", "uniform"), (1, "a", "uniform"), (2, "a", "uniform"), (3, "b", "uniform")]


@pytest.mark.parametrize(("text", "message", "col"), [
    ("params:\n  a: normal()\noutputs:\n  x:\n    step: a\n",
     "normal() draws random numbers, which it may not do in param 'a'", 6),
    ("outputs:\n  x:\n    initial: uniform()\n    step: x[t-1]\n",
     "uniform() draws random numbers, which it may not do in the initial of output 'x'", 14),
    ("steps: integers(1, 5)\noutputs:\n  x:\n    step: t\n",
     "integers() draws random numbers, which it may not do in 'steps'", 8),
    ("outputs:\n  x:\n    step: integers(3, 3)\n",
     "integers(3, 3) draws from an empty range in the step of output 'x'", 11),
    ("outputs:\n  x:\n    step: uniform(1)\n",
     "uniform() takes 0 or 2 arguments, not 1 in the step of output 'x'", 11),
    ("seed: -1\noutputs:\n  x:\n    step: uniform()\n",
     "'seed' must be an integer from 0 to 2**64 - 1, not -1", 7),
    ("seed: 1.5\noutputs:\n  x:\n    step: uniform()\n", "'seed' must be an integer >= 0", 7),
])
def test_misuse_is_an_error_at_its_place(text: str, message: str, col: int) -> None:
    with pytest.raises(RecurError) as caught:
        recur.run(recur.load(text))
    error = caught.value
    assert error.message == message
    assert error.span is not None and error.span.col == col
    assert error.exit_code == 2


def test_an_empty_range_of_values_is_a_fault_at_its_step() -> None:
    spec = recur.load("params:\n  high: [5, 3, 9]\noutputs:\n  k:\n    dtype: int64\n"
                      "    step: integers(t, high)\nsteps: 10\n")
    for engine in ("interp", "compiled"):
        with pytest.raises(RecurError) as caught:
            recur.run(spec, engine=engine)
        assert caught.value.message == ("an empty range (high <= low) in integers(low, high) "
                                        "in the step of output 'k' at t=3 (lane 1)")
        assert caught.value.exit_code == 1


@pytest.mark.parametrize("seed", [-1, 2**64, 1.0, True])
def test_a_bad_seed_argument_is_refused(seed: object) -> None:
    with pytest.raises(RecurError, match=r"^seed must be an integer") as caught:
        recur.run(recur.load(WALK), seed=seed)  # type: ignore[arg-type]
    assert caught.value.exit_code == 2



SPECS = Path(__file__).resolve().parents[2] / "specs"


def test_the_ornstein_uhlenbeck_example_settles_to_its_stationary_variance() -> None:
    """sigma^2 / (2 theta), which Euler-Maruyama's AR(1) x' = a x + b z (a = 1 - theta
    dt, b = sigma sqrt(dt)) turns into b^2 / (1 - a^2); within 4 standard errors."""
    spec = recur.load(str(SPECS / "ornstein_uhlenbeck.yaml"))
    x = recur.run(spec, last=True)["x"]
    theta, sigma, dt = 2.0, 0.5, 0.01
    a, b = 1 - theta * dt, sigma * math.sqrt(dt)
    stationary = b * b / (1 - a * a)
    assert stationary == pytest.approx(sigma**2 / (2 * theta), rel=0.011)
    standard_error = stationary * math.sqrt(2 / (x.size - 1))
    assert abs(x.var(ddof=1) - stationary) < 4 * standard_error
    assert abs(x.mean()) < 4 * math.sqrt(stationary / x.size)


def test_the_monte_carlo_example_estimates_pi() -> None:
    result = recur.run(recur.load(str(SPECS / "monte_carlo_pi.yaml")))
    throwers, steps = 1024, 256
    assert result["inside"].shape == (throwers,)
    numpy.testing.assert_array_equal(result["estimate"], 4.0 * result["inside"] / steps)
    points = throwers * steps
    mean = result["estimate"].mean()
    assert abs(mean - math.pi) < 4 * math.sqrt(math.pi * (4 - math.pi) / points)


def test_the_random_walk_example_spreads_as_the_square_root_of_time() -> None:
    x = recur.run(recur.load(str(SPECS / "random_walk.yaml")))["x"]
    steps, walkers = x.shape
    assert set(numpy.unique(numpy.diff(x, axis=0))) == {-1, 1}
    assert abs(x[-1].var() - steps) < 4 * steps * math.sqrt(2 / walkers)
