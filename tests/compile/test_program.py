"""Lowering a spec to its `Program`: names resolved, types attached, work moved out of
the loop into slots, each checked against NumPy by hand."""

from __future__ import annotations

import dataclasses

import numpy
import pytest

import recur
from recur import api
from recur.compile import ir
from recur.engine.interp.engine import Interpreter
from recur.engine.plan import allocate, collect


def _program(text: str, **options: object) -> ir.Program:
    return api.prepare(recur.load(text), **options).program  # type: ignore[arg-type]


def _nodes(program: ir.Program, kind: type) -> list[ir.Node]:
    return [node for root in program.roots() for node in ir.walk(root)
            if isinstance(node, kind)]


def test_names_are_resolved_to_taps_sequence_rows_params_and_time() -> None:
    program = _program("params:\n  a: 2.0\nsequences:\n  s: [1.0, 2.0, 3.0, 4.0, 5.0]\n"
                       "outputs:\n  x:\n    initial: [0.0, 0.0]\n    taps: [-2, -1]\n"
                       "    step: x[t-1] + x[t-2] * s[t-2] + s + a * x[t-1] * t\nsteps: 3\n")
    taps = sorted((node.output, node.lag) for node in _nodes(program, ir.Tap))
    assert taps == [("x", 1), ("x", 1), ("x", 2)]
    reads = sorted((node.offset, node.row) for node in _nodes(program, ir.SequenceRead))
    assert reads == [(-2, 0), (0, 2)]  # the lowest offset read, -2, is row 0 at t = 0
    assert [node.name for node in _nodes(program, ir.Param)] == ["a"]
    assert len(_nodes(program, ir.Time)) == 1
    step = program.output("x").step
    assert step.varies == ir.PER_STATE and step.type == ir.Type("float64", (), False, "other")


def test_a_constant_sub_expression_is_computed_once_into_a_slot() -> None:
    program = _program("params:\n  a: [0.5, 1.5]\noutputs:\n  x:\n    initial: 1.0\n"
                       "    step: sin(a) * 2 + x[t-1]\nsteps: 4\n")
    (hoisted,) = _nodes(program, ir.Hoisted)
    assert isinstance(hoisted.source, ir.Binary) and hoisted.varies == ir.CONSTANT
    numpy.testing.assert_array_equal(program.hoisted[hoisted.slot],
                                     numpy.sin(numpy.array([0.5, 1.5])) * 2)
    assert program.output("x").shape == (2,)


def test_a_sub_expression_free_of_the_state_is_computed_for_all_steps() -> None:
    program = _program("outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + cos(t * 0.25)\n"
                       "steps: 6\n")
    (swept,) = _nodes(program, ir.Swept)
    expected = numpy.array([numpy.cos(t * 0.25) for t in range(6)])
    numpy.testing.assert_array_equal(program.swept[swept.slot], expected)
    assert swept.varies == ir.PER_STEP


def test_a_constant_that_fails_stays_in_the_loop_to_fail_only_where_it_runs() -> None:
    spec = recur.load("params:\n  zero: 0\noutputs:\n  x:\n    dtype: int64\n"
                      "    initial: 1\n    step: (1 // zero) if t > 100 else x[t-1] + 1\n"
                      "steps: 5\n")
    program = api.prepare(spec).program
    assert not _nodes(program, ir.Hoisted)
    assert recur.run(spec)["x"].tolist() == [2, 3, 4, 5, 6]
    with pytest.raises(recur.RecurError, match=r"division by zero .* at t=101"):
        recur.run(spec, steps=102)


def test_the_program_cannot_be_changed() -> None:
    program = _program("params:\n  a: 2.0\noutputs:\n  x:\n    initial: 1.0\n"
                       "    step: a * x[t-1]\nsteps: 2\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.steps = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        program.params["a"] = 3.0  # type: ignore[index]


def test_a_program_runs_again_on_fresh_buffers_with_the_same_result() -> None:
    compiled = api.prepare(recur.load("specs/logistic_sweep.yaml"), steps=50)
    program, engine = compiled.program, Interpreter("cpu")
    results = []
    for _ in range(2):
        buffers = allocate(program, compiled.backend)
        steps_run, _ = engine.run(program, buffers)
        results.append(collect(program, buffers, steps_run))
    r = numpy.linspace(2.5, 4.0, 400)  # the spec's sweep, by hand
    x = numpy.full(400, 0.5)
    for _ in range(50):
        x = r * x * (1 - x)
    numpy.testing.assert_array_equal(results[0]["x"][-1], x)
    numpy.testing.assert_array_equal(results[0]["x"], results[1]["x"])
