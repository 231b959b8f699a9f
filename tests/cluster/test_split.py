"""Splitting lanes without a cluster: each chunk's program, run here, gives its lanes of
the whole run bit for bit; specs whose lanes mix are refused with the reason; the
default chunk size follows its rule."""

from __future__ import annotations

import math

import numpy
import pytest

import recur
from recur import api
from recur.cluster import split
from recur.diagnostics import UsageError
from recur.engine.plan import run_on
from recur.engine.registry import find

# Lanes read through every kind of value a chunk cuts: a param (r), a hoisted
# constant (the noise scale over lanes), a sweep of the steps (a row per step, per lane),
# a sequence of rows of lanes, initial states; draws of every kind; an output without
# lanes (k) beside them, and one kept last.
SWEEP = """\
params:
  r: linspace(2.5, 4.0, 90)
  scale: 0.01 * (1 + arange(90) % 3)
sequences:
  s: reshape(sin(arange(60)), [60, 1]) * linspace(0, 1, 90)
outputs:
  x:
    initial: 0.25 + 0.5 * arange(90) / 90
    step: clip(r * x[t-1] * (1 - x[t-1]) + scale * normal() + 0.001 * s[t], 0, 1)
  k:
    dtype: int64
    initial: 0
    step: k[t-1] + integers(0, 10)
  u:
    step: uniform(-1, 1) * r + cos(t * r)
    keep: last
steps: 59
"""

# Lanes on the first axis of a grid of states: 7 rows of lanes, 3 columns each.
GRID = """\
params:
  a: reshape(linspace(0.1, 0.7, 7), [7, 1])
  b: linspace(1, 2, 3)
outputs:
  y:
    initial: a * b
    step: y[t-1] * 0.9 + a * uniform() - b * normal()
steps: 20
"""


def _pieces(spec: recur.Spec, engine: str, size: int, **options: object) -> None:
    whole = recur.run(spec, engine=engine, **options)  # type: ignore[arg-type]
    program = api.prepare(spec, **options).program  # type: ignore[arg-type]
    lanes = split.lanes_of(program)
    for start, stop in split.bounds(lanes.count, size):
        piece = run_on(find(engine, "cpu"), split.chunk(program, lanes, start, stop),
                       api.get_backend("cpu"))
        for name, array in whole.items():
            lane_axis = array.ndim - len(lanes.shape) if array.ndim > 0 and \
                program.output(name).shape == lanes.shape else None
            expected = array if lane_axis is None else numpy.take(
                array, range(start, stop), axis=lane_axis)
            numpy.testing.assert_array_equal(piece.arrays[name], expected, strict=True)


@pytest.mark.parametrize("engine", ["interp", "compiled"])
@pytest.mark.parametrize("size", [1, 13, 45, 90])
def test_every_chunk_is_its_lanes_of_the_whole_run(engine: str, size: int) -> None:
    _pieces(recur.load(SWEEP), engine, size, seed=17)


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_a_grid_of_lanes_splits_on_its_first_axis(engine: str) -> None:
    spec = recur.load(GRID)
    assert split.lanes_of(api.prepare(spec).program) == split.Lanes(7, (7, 3))
    _pieces(spec, engine, 3, seed=2, last=True)
    _pieces(spec, engine, 2, seed=2)


def test_a_chunk_ships_only_what_its_loop_reads() -> None:
    program = api.prepare(recur.load(SWEEP)).program
    lanes = split.lanes_of(program)
    piece = split.chunk(program, lanes, 10, 20)
    assert piece.first_lane == 10
    assert piece.output("x").shape == (10,) and piece.output("k").shape == ()
    assert piece.output("x").initial.shape == (1, 10)
    assert numpy.shares_memory(piece.params["r"], program.params["r"])  # a view: no copy
    numpy.testing.assert_array_equal(piece.params["r"], program.params["r"][10:20])
    # The sequence is read through a sweep of the steps (free of the state): its rows of
    # lanes are cut there (the interpreter reads them), and in the sequence (a compiled
    # kernel computes the sweep's source in its loop).
    assert (59, 10) in {numpy.shape(rows) for rows in piece.swept if rows is not None}
    assert list(piece.sequences) == ["s"]
    numpy.testing.assert_array_equal(piece.sequences["s"], program.sequences["s"][:, 10:20])


@pytest.mark.parametrize(("text", "words", "where"), [
    ("outputs:\n  x:\n    initial: ones(5)\n    step: x[t-1] - mean(x[t-1])\nsteps: 3\n",
     "its step mixes lanes (mean() across lanes)", "mean(x[t-1])"),
    ("outputs:\n  x:\n    initial: ones(5)\n    step: x[t-1] * 0.5\nuntil: all(x[t] < 0.1)\n"
     "steps: 9\n", "'until' reads the lanes, and stops them all at once", "all(x[t] < 0.1)"),
    ("params:\n  w: eye(4)\noutputs:\n  x:\n    initial: ones(4)\n    step: w @ x[t-1]\n"
     "steps: 3\n", "its step mixes lanes (a matrix product across lanes)", "w @ x[t-1]"),
    ("outputs:\n  x:\n    initial: arange(4)\n    step: x[t-1][::-1]\nsteps: 3\n",
     "its step mixes lanes (subscript of the lanes)", "x[t-1][::-1]"),
    ("outputs:\n  x:\n    initial: ones(4)\n    step: x[t-1] + 1\n  y:\n    initial: ones(3)\n"
     "    step: y[t-1] + 1\nsteps: 3\n", "have different shapes ((3,), (4,))", None),
])
def test_a_spec_that_mixes_lanes_is_refused_with_the_reason(text: str, words: str,
                                                            where: str | None) -> None:
    spec = recur.load(text)
    with pytest.raises(UsageError) as caught:
        recur.run(spec, scheduler="tcp://127.0.0.1:1")  # refused before any connection
    error = caught.value
    assert error.message.startswith("scheduler cannot split this spec: ")
    assert words in error.message and error.exit_code == 2
    if where is not None:
        assert error.span is not None
        line = text.splitlines()[error.span.line - 1]
        assert line[error.span.col - 1:error.span.end_col - 1] == where


def test_until_that_reads_no_lane_splits() -> None:
    spec = recur.load("outputs:\n  x:\n    initial: ones(5)\n    step: x[t-1] * 0.5\n"
                      "until: uniform() < 0.2 or t > 3\nsteps: 9\n")
    assert split.lanes_of(api.prepare(spec).program).count == 5


def test_bounds_cover_the_lanes_in_order() -> None:
    for count, size in [(1, 1), (10, 3), (10, 10), (10, 11), (1000, 7)]:
        chunks = split.bounds(count, size)
        assert [i for start, stop in chunks for i in range(start, stop)] == list(range(count))
        assert all(stop - start == size for start, stop in chunks[:-1])


@pytest.mark.parametrize(("seconds", "workers", "chunks"), [
    (0.001, 2, 1),         # the scheduler's rate: 0.001 s x 500 / 2 workers < 1 task
    (0.01, 2, 3),          # 2 per worker would be 4; the rate allows 2.5: 3 chunks
    (3.0, 2, 4),           # 2 per worker (tasks of 0.75 s)
    (30.0, 2, 30),         # a second each
    (1000.0, 2, 32),       # 16 per worker at most: tasks of 31 s
    (1000.0, 100, 1000),   # a second each
    (8000.0, 3200, 1250),  # docs/cluster.md: 8,000 x 500 / 3,200
    (1e6, 3200, 51200),    # 16 per worker (the rate would allow 156,250)
])
def test_default_size_follows_the_rule(seconds: float, workers: int, chunks: int) -> None:
    spec = recur.load("params:\n  r: linspace(0, 1, 100000)\noutputs:\n  x:\n"
                      "    initial: 0.5\n    step: r * x[t-1]\n    keep: last\nsteps: 10\n")
    program = api.prepare(spec).program
    size = split.default_size(program, split.lanes_of(program), seconds, workers)
    assert size == math.ceil(100000 / chunks)


def test_default_size_keeps_a_chunks_result_small() -> None:
    steps = 4000  # 10**4 lanes kept whole: 320 MB, more than one chunk may hold
    spec = recur.load("params:\n  r: linspace(0, 1, 10000)\noutputs:\n  x:\n"
                      f"    initial: 0.5\n    step: r * x[t-1]\nsteps: {steps}\n")
    program = api.prepare(spec).program
    size = split.default_size(program, split.lanes_of(program), 0.01, 1)
    assert size * steps * 8 <= split.CHUNK_BYTES
    assert size == math.ceil(10000 / math.ceil(10000 * steps * 8 / split.CHUNK_BYTES))
