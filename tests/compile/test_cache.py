"""Programs kept between runs (`recur.compile.cache`) and sequences made only as far as a
run reads them (`recur.compile.rows`): a kept program is bound to each run's values and
never gives another run's result, each checked against a plain Python loop."""

from __future__ import annotations

import math
from typing import Any

import numpy
import pytest

import recur
from recur import api
from recur.compile import cache, ir, lower
from recur.engine.c import native
from recur.engine.c.engine import CEngine

ENGINES = ["interp", *(["compiled"] if native.available() else [])]

AFFINE = """\
params:
  a: 0.5
  n: 50
sequences:
  u: arange(n)
outputs:
  x:
    initial: 1.0
    step: x[t-1] * a + u[t] + sin(a)
steps: 20
"""


def _affine(a: float, steps: int) -> list[float]:
    """AFFINE by hand: x[t] = x[t-1] * a + t + sin(a), from x = 1."""
    x, kept = 1.0, []
    for t in range(steps):
        x = x * a + t + math.sin(a)
        kept.append(x)
    return kept


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A fresh cache; the list grows by one for each probe step a run makes."""
    monkeypatch.setattr(cache, "PROGRAMS", cache.Programs())
    made: list[int] = []
    settle = lower._Probe.settle

    def counted(self: Any) -> Any:
        made.append(1)
        return settle(self)

    monkeypatch.setattr(lower._Probe, "settle", counted)
    return made


@pytest.mark.parametrize("engine", ENGINES)
def test_a_second_run_with_other_values_reuses_the_program_and_gives_its_own_result(
        engine: str, probes: list[int]) -> None:
    spec = recur.load(AFFINE)
    first = recur.run(spec, params={"a": 0.25}, engine=engine)
    second = recur.run(spec, params={"a": "0.75"}, engine=engine)  # as --set a=0.75
    assert len(probes) == 1  # the second run took the kept program
    assert first["x"].tolist() == _affine(0.25, 20)
    assert second["x"].tolist() == _affine(0.75, 20)
    again = recur.run(spec, params={"a": 0.25}, engine=engine)
    assert again["x"].tolist() == _affine(0.25, 20) and len(probes) == 1


def test_a_reused_program_holds_this_runs_values_in_its_slots(probes: list[int]) -> None:
    spec = recur.load(AFFINE)
    first = api.prepare(spec, params={"a": 0.25}, reuse=True).program
    second = api.prepare(spec, params={"a": 2.0}, reuse=True).program
    assert second.output("x").step is first.output("x").step  # the same typed trees
    assert second.params["a"] == 2.0 and first.params["a"] == 0.25
    (hoisted,) = [node for node in ir.walk(second.output("x").step)
                  if isinstance(node, ir.Hoisted)]
    assert second.hoisted[hoisted.slot] == math.sin(2.0)
    assert first.hoisted[hoisted.slot] == math.sin(0.25)
    assert len(probes) == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_a_run_with_the_same_values_runs_the_same_program_and_kernel_again(
        engine: str, probes: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = recur.load(AFFINE)
    first = api.prepare(spec, reuse=True).program
    assert api.prepare(spec, reuse=True).program is first
    assert api.prepare(spec, params={"a": "0.5"}, reuse=True).program is first  # a = 0.5
    assert api.prepare(spec, params={"a": 0.25}, reuse=True).program is not first
    made: list[int] = []
    make = CEngine.make
    monkeypatch.setattr(CEngine, "make", lambda self, program: made.append(1) or make(
        self, program))
    for _ in range(3):
        assert recur.run(spec, engine=engine)["x"].tolist() == _affine(0.5, 20)
    assert len(made) <= 1 and len(probes) == 1


def test_zero_and_minus_zero_are_other_values(probes: list[int]) -> None:
    spec = recur.load("params:\n  z: 0.0\noutputs:\n  x:\n    step: t * 0.0 + 1 / z\n"
                      "steps: 2\n")
    assert recur.run(spec, params={"z": 0.0})["x"].tolist() == [math.inf] * 2
    assert recur.run(spec, params={"z": -0.0})["x"].tolist() == [-math.inf] * 2
    assert recur.run(spec, params={"z": "0.0"})["x"].tolist() == [math.inf] * 2


@pytest.mark.parametrize("engine", ENGINES)
def test_an_array_changed_in_place_between_runs_gives_its_new_result(
        engine: str, probes: list[int]) -> None:
    spec = recur.load("params:\n  a: [0.5, 1.5]\noutputs:\n  x:\n    initial: 1.0\n"
                      "    step: x[t-1] * a + sin(a)\nsteps: 3\n")

    def by_hand(a: list[float]) -> list[list[float]]:
        x, kept = [1.0] * len(a), []
        for _ in range(3):
            x = [xi * ai + math.sin(ai) for xi, ai in zip(x, a, strict=True)]
            kept.append(x)
        return kept

    given = numpy.array([0.5, 1.5])
    assert recur.run(spec, params={"a": given}, engine=engine)["x"].tolist() == by_hand(
        [0.5, 1.5])
    given[:] = [2.0, 3.0]  # the caller's array, changed after the run
    assert recur.run(spec, params={"a": given}, engine=engine)["x"].tolist() == by_hand(
        [2.0, 3.0])
    given[:] = [4.0, 5.0]
    assert recur.run(spec, params={"a": numpy.array([2.0, 3.0])},
                     engine=engine)["x"].tolist() == by_hand([2.0, 3.0])
    result = recur.run(spec, engine=engine)  # the spec's own a
    result.params["a"][:] = 7.0  # a result's params are its own
    assert recur.run(spec, engine=engine)["x"].tolist() == by_hand([0.5, 1.5])
    assert recur.run(spec, params={"a": "[7.0, 7.0]"}, engine=engine)["x"].tolist() == (
        by_hand([7.0, 7.0]))


@pytest.mark.parametrize(("first", "second"), [
    (0.5, 2),  # a Python float, then an int
    (0.5, numpy.float32(2.0) * numpy.ones(3, numpy.float32)),  # a number, then an array
    (numpy.ones(3), numpy.ones(4)),  # another shape
    (numpy.ones(3), numpy.ones(3, numpy.float32)),  # another dtype
])
def test_another_kind_of_value_makes_a_new_program(first: Any, second: Any,
                                                   probes: list[int]) -> None:
    spec = recur.load("params:\n  a: 0.5\noutputs:\n  x:\n    initial: 1.0\n"
                      "    dtype: float32\n    step: x[t-1] * a + 1\nsteps: 3\n")
    for a in (first, second):
        got = recur.run(spec, params={"a": a}, engine="interp")["x"]
        x = numpy.float32(1.0) * numpy.ones(numpy.shape(a), numpy.float32)
        expected = []
        for _ in range(3):  # the loop as NumPy computes it, by hand
            x = (x * a + 1).astype(numpy.float32)
            expected.append(x)
        numpy.testing.assert_array_equal(got, numpy.array(expected))
    assert len(probes) == 2


def test_an_integer_that_a_narrower_dtype_would_not_hold_makes_a_new_program(
        probes: list[int]) -> None:
    spec = recur.load("params:\n  k: 3\noutputs:\n  x:\n    initial: 1\n    dtype: int32\n"
                      "    step: x[t-1] + k\nsteps: 2\n")
    assert recur.run(spec, params={"k": 5})["x"].tolist() == [6, 11]
    with pytest.raises(recur.RecurError, match="integer overflow"):
        recur.run(spec, params={"k": 2**40})
    assert len(probes) == 2


def test_a_param_that_decides_a_shape_is_keyed_by_its_value(probes: list[int]) -> None:
    spec = recur.load("params:\n  k: 3\noutputs:\n  x:\n    initial: 0.0\n"
                      "    step: x[t-1] + zeros(k) + 1\nsteps: 2\n")
    for k in (3, 4, 3):
        got = recur.run(spec, params={"k": k}, engine="interp")["x"]
        assert got.tolist() == [[1.0] * k, [2.0] * k]
    assert len(probes) == 2  # k = 3 again took the kept program


def test_a_sequence_that_decides_a_shape_is_keyed_by_its_value(probes: list[int]) -> None:
    spec = recur.load("sequences:\n  u: input\noutputs:\n  x:\n    initial: 0.0\n"
                      "    step: x[t-1] + zeros(u) + 1\n")
    for k in (3, 4, 3):
        got = recur.run(spec, inputs={"u": numpy.full(2, k)}, engine="interp")["x"]
        assert got.tolist() == [[1.0] * k, [2.0] * k]
    assert len(probes) == 2


def test_the_array_a_shape_function_reshapes_is_keyed_by_its_kind(probes: list[int]) -> None:
    """`reshape(w, (n, 2))`: n decides the shape, w's values do not (its shape is keyed)."""
    spec = recur.load("params:\n  w: arange(4.0)\n  n: 2\noutputs:\n  x:\n"
                      "    initial: 0.0\n    step: x[t-1] + reshape(w, (n, 2))\nsteps: 2\n")
    for scale in (1.0, 3.0):
        w = numpy.arange(4.0) * scale
        got = recur.run(spec, params={"w": w}, engine="interp")["x"]
        numpy.testing.assert_array_equal(got, [w.reshape(2, 2), 2 * w.reshape(2, 2)])
    assert len(probes) == 1  # other values of w: the kept program
    recur.run(spec, params={"w": numpy.arange(4.0), "n": 1 + 1}, engine="interp")
    assert len(probes) == 1
    with pytest.raises(recur.RecurError):
        recur.run(spec, params={"n": 4}, engine="interp")  # a shape that w cannot take


def test_a_state_read_where_it_decides_a_shape_keeps_no_program(probes: list[int]) -> None:
    spec = recur.load("outputs:\n  x:\n    initial: 0\n    dtype: int64\n"
                      "    step: x[t-1] + 1\n  y:\n    step: sum(ones(x[t-1] * 0 + 2))\n"
                      "steps: 2\n")
    for _ in range(2):
        assert recur.run(spec, engine="interp")["y"].tolist() == [2.0, 2.0]
    assert len(probes) == 2 and len(cache.PROGRAMS) == 0


def test_a_move_that_failed_and_now_would_not_makes_a_new_program(
        probes: list[int]) -> None:
    # d = 3: 10 // (d - 3) faults, so it stays in the loop (to fault at its step); d = 2:
    # the same kind of value, but the constant computes, and a new program holds it.
    spec = recur.load("params:\n  d: 3\noutputs:\n  x:\n    initial: 0\n"
                      "    step: x[t-1] + 10 // (d - 3)\nsteps: 3\n")
    with pytest.raises(recur.RecurError, match="division by zero"):
        recur.run(spec, params={"d": 3}, engine="interp")
    program = api.prepare(spec, params={"d": 2}, reuse=True).program
    assert len(probes) == 2 and len(program.hoisted) == 1
    assert recur.run(spec, params={"d": 2}, engine="interp")["x"].tolist() == [-10, -20, -30]


def test_the_cache_keeps_a_bounded_number_of_programs_least_recently_used_dropped() -> None:
    kept = cache.Programs(entries=3)
    program = api.prepare(recur.load(AFFINE)).program
    entry = cache.Kept(program, (), (), ())
    for key in "abcd":
        kept.put(key, entry)
        if key == "c":
            assert kept.get("a") is entry  # "a" used last: "b" goes first
    assert len(kept) == 3 and kept.get("b") is None
    assert all(kept.get(key) is entry for key in "acd")


def test_runs_of_many_kinds_leave_at_most_the_cache_size(probes: list[int]) -> None:
    spec = recur.load(AFFINE)
    for steps in range(1, cache.ENTRIES + 10):
        recur.run(spec, steps=steps, engine="interp")
    assert len(cache.PROGRAMS) == cache.ENTRIES


@pytest.mark.parametrize("args", ["9", "2", "-3", "2, 9", "9, 2", "5, 40, 3", "40, 5, -3",
                                  "-7, 8, 4", "10**12, 10**12 + 50, 7"])
@pytest.mark.parametrize("reverse", [False, True])
def test_an_arange_is_made_only_as_far_as_the_run_reads_it(args: str, reverse: bool) -> None:
    spec = recur.load(f"sequences:\n  u: arange({args})\nreverse: {str(reverse).lower()}\n"
                      "outputs:\n  x:\n    initial: 0\n    step: u[t+1] - u[t-1]\n")
    whole = numpy.arange(*eval(f"({args},)"))
    walked = whole[::-1] if reverse else whole
    for steps in range(max(len(whole) - 1, 0)):
        cut = api.prepare(spec, steps=steps, reuse=True).program.sequences["u"]
        assert cut.dtype == whole.dtype and len(cut) == min(len(whole), max(steps, 1) + 2)
        numpy.testing.assert_array_equal(cut, walked[:len(cut)])
        if steps:
            got = recur.run(spec, steps=steps)["x"]
            assert got.tolist() == [int(walked[t + 2] - walked[t]) for t in range(steps)]


@pytest.mark.parametrize(("sequence", "element", "start"), [
    ("arange(0.0, 30.0, 0.5)", 0.5, 0.0),  # floats: rounding rules of NumPy's own
    ("arange(60) * 1", 1, 0.0),  # not an arange itself
    ("arange(n)", 1, 59.0),  # read whole by the initial
])
def test_other_sequences_and_one_an_initial_reads_are_made_whole(
        sequence: str, element: float, start: float) -> None:
    initial = "u[59] * 1.0" if start else "0.0"
    spec = recur.load(f"params:\n  n: 60\nsequences:\n  u: {sequence}\noutputs:\n  x:\n"
                      f"    initial: {initial}\n    step: x[t-1] + u\n")
    assert len(api.prepare(spec, steps=3, reuse=True).program.sequences["u"]) == 60
    x, expected = start, []
    for t in range(3):
        x += t * element
        expected.append(x)
    assert recur.run(spec, steps=3)["x"].tolist() == expected


def test_an_arange_beyond_the_size_limit_is_refused_as_before() -> None:
    spec = recur.load("sequences:\n  u: arange(2 * 10**9)\noutputs:\n  x:\n"
                      "    initial: 0\n    step: u\n")
    with pytest.raises(recur.RecurError, match="limit"):
        recur.run(spec, steps=3)
