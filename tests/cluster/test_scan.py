"""An affine recurrence split into chunks of steps on a cluster (`engine="scan"`)
against the sequential loop in one process and by hand, within the GPU scan's tolerance
(docs/performance.md); and what it refuses."""

from __future__ import annotations

from typing import Any

import numpy
import pytest
from numpy.testing import assert_allclose

import recur
from recur import api
from recur.cluster import address, scan
from recur.diagnostics import RecurError

# Of the largest |state|, as for the GPU scan (docs/performance.md).
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _spec(form: str, dtype: str = "float64", lanes: int = 1, keep: str = "all") -> recur.Spec:
    a = f"linspace(0.99, 0.9999, {lanes})" if lanes > 1 else "0.999"
    initial = f"linspace(-1, 1, {lanes})" if lanes > 1 else "1.0"
    return recur.load(f"params:\n  a: {a}\nsequences:\n  b: input\noutputs:\n  y:\n"
                      f"    dtype: {dtype}\n    initial: {initial}\n    step: {form}\n"
                      f"    keep: {keep}\n")


def _inputs(steps: int, lanes: int = 1, dtype: str = "float64") -> dict[str, Any]:
    shape = (steps,) if lanes == 1 else (steps, lanes)
    return {"b": numpy.random.default_rng(steps).standard_normal(shape).astype(dtype)}


def _close(got: Any, want: Any, dtype: str, states: Any = None) -> None:
    """`got` is `want` within the tolerance of the largest |state| of the run (`states`:
    its every state, where `want` is not)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    states = want if states is None else states
    scale = float(numpy.abs(states).max()) if states.size else 0.0
    assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype] * scale)


def test_a_long_linear_filter_agrees_with_a_plain_loop(cluster: str) -> None:
    inputs = _inputs(30_000)
    result = recur.run(_spec("0.999 * y[t-1] + b"), inputs=inputs, scheduler=cluster,
                       engine="scan")
    y, want = 1.0, []
    for b in inputs["b"].tolist():
        y = 0.999 * y + b
        want.append(y)
    assert (result.engine, result.steps_run, result.stopped_by) == ("scan", 30_000, "steps")
    _close(result["y"], numpy.array(want), "float64")


@pytest.mark.parametrize("form", ["a * y[t-1] + b", "b - y[t-1] * a", "y[t-1] - b",
                                  "a * y[t-1]"])
@pytest.mark.parametrize(("dtype", "lanes", "keep"), [
    ("float64", 1, "all"), ("float32", 1, "all"), ("float64", 3, "all"),
    ("float64", 3, "last"), ("float32", 1, "last")])
def test_the_chunks_agree_with_the_loop(cluster: str, form: str, dtype: str, lanes: int,
                                        keep: str) -> None:
    spec, inputs = _spec(form, dtype, lanes, keep), _inputs(20_001, lanes, dtype)
    loop = recur.run(spec, inputs=inputs)
    there = recur.run(spec, inputs=inputs, scheduler=cluster, engine="scan")
    assert list(there) == ["y"] and there.keeps == loop.keeps
    states = recur.run(_spec(form, dtype, lanes, "all"), inputs=inputs)["y"]
    _close(there["y"], loop["y"], dtype, states)


def test_the_first_chunk_is_the_loop_bit_for_bit(cluster: str) -> None:
    """It starts from the initial state: only later chunks start from a composition."""
    spec, inputs = _spec("a * y[t-1] + b"), _inputs(4_000)
    loop = recur.run(spec, inputs=inputs)["y"]
    there = recur.run(spec, inputs=inputs, scheduler=cluster, engine="scan")["y"]
    numpy.testing.assert_array_equal(there[:1_000], loop[:1_000])  # 4 chunks of 1,000


@pytest.mark.parametrize("keep", ["all", "last"])
@pytest.mark.parametrize("steps", [0, 1, 3])
def test_fewer_steps_than_chunks(cluster: str, keep: str, steps: int) -> None:
    """Two workers take four chunks: with 3 steps, three chunks of one; none with 0."""
    spec = _spec("a * y[t-1] + b", lanes=2, keep=keep)
    inputs = _inputs(steps, lanes=2)
    loop = recur.run(spec, inputs=inputs)
    there = recur.run(spec, inputs=inputs, scheduler=cluster, engine="scan")
    assert there.steps_run == loop.steps_run == steps
    _close(there["y"], loop["y"], "float64")


def test_more_chunks_than_steps_asked_for(cluster: str) -> None:
    spec, inputs = _spec("a * y[t-1] + b"), _inputs(5)
    program = api.prepare(spec, inputs=inputs).program
    outcome = scan.run_on_cluster(program, address.parse(cluster), chunks=12)
    _close(outcome.arrays["y"], recur.run(spec, inputs=inputs)["y"], "float64")


def test_progress_counts_steps(cluster: str) -> None:
    calls: list[tuple[int, int]] = []
    recur.run(_spec("a * y[t-1] + b"), inputs=_inputs(4_000), scheduler=cluster,
              engine="scan", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1_000, 4_000), (2_000, 4_000), (3_000, 4_000), (4_000, 4_000)]


@pytest.mark.parametrize("keep", ["all", "last"])
def test_check_names_the_first_non_finite_step(cluster: str, keep: str) -> None:
    """Kept last, every chunk still runs: the fault is in the second of four."""
    spec, inputs = _spec("a * y[t-1] + b", lanes=3, keep=keep), _inputs(4_000, lanes=3)
    inputs["b"][1_500, 2] = numpy.inf
    errors = []
    for options in ({}, {"scheduler": cluster, "engine": "scan"}):
        with pytest.raises(RecurError) as caught:
            recur.run(spec, inputs=inputs, check=True, **options)
        errors.append(caught.value)
    assert (errors[1].message, errors[1].exit_code) == (errors[0].message, 1)
    assert "t=1500 (lane 2)" in errors[1].message


@pytest.mark.parametrize("steps", [1, 2, 7, 64, 2 * scan.BLOCK + 3])
@pytest.mark.parametrize("rows", ["both", "a", "b", "neither"])
def test_composition_is_the_maps_one_after_another(steps: int, rows: str) -> None:
    """By step or the same at every step, `a` and `b`, against the maps by hand."""
    rng = numpy.random.default_rng(steps)
    a = rng.uniform(0.999, 1.001, (steps if rows in ("both", "a") else 1, 2))
    b = rng.standard_normal((steps if rows in ("both", "b") else 1, 2))
    big_a, big_b = scan.compose(a, b, steps)
    y = numpy.array([0.25, -3.0])
    for t in range(steps):
        y = a[t if len(a) > 1 else 0] * y + b[t if len(b) > 1 else 0]
    assert_allclose(big_a * numpy.array([0.25, -3.0]) + big_b, y, rtol=1e-9)  # 10^5 sums


def test_the_same_map_composes_by_squaring() -> None:
    big_a, big_b = scan.compose(numpy.array([[0.5]]), numpy.array([[1.0]]), 3)
    assert (float(big_a[0]), float(big_b[0])) == (0.125, 1.75)  # y -> y/8 + 1/4 + 1/2 + 1


def test_starts_are_the_state_before_each_chunk() -> None:
    composed = [(numpy.array([2.0]), numpy.array([1.0])), (numpy.array([3.0]),
                                                           numpy.array([-1.0]))] * 2
    starts = scan.starts(numpy.array([1.0]), composed[:-1])  # the last chunk's map: none
    assert [float(s[0]) for s in starts] == [1.0, 3.0, 8.0, 17.0]


@pytest.mark.parametrize(("spec", "options", "words"), [
    (_spec("y[t-1] * y[t-1] + b"), {}, "with scheduler cannot run this spec: the step "
                                       "is not a * y[t-1] + b"),
    (_spec("a * y[t-1] + b", keep="every 2"), {}, "keeps every step or the last, not "
                                                  "'keep: every 2'"),
    (_spec("a * y[t-1] + b"), {"lane_chunk": 10}, "lane_chunk sizes chunks of lanes"),
    (_spec("a * y[t-1] + b"), {"store": "run.zarr"}, "does not write a Zarr store"),
])
def test_what_the_scan_does_not_take_is_refused(spec: recur.Spec, options: dict[str, Any],
                                                 words: str) -> None:
    with pytest.raises(RecurError) as caught:
        recur.run(spec, inputs=_inputs(10), scheduler="local:2", engine="scan", **options)
    assert caught.value.exit_code == 2 and words in caught.value.message

