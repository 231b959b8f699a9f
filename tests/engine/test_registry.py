"""The engine registry: adding an engine is one class and one `register` call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest
from click.testing import CliRunner

import recur
from recur import api
from recur.cli.main import cli
from recur.compile.ir import Program
from recur.diagnostics import UsageError
from recur.engine import registry
from recur.engine.interp.loop import run_steps
from recur.engine.plan import Buffers
from recur.engine.protocol import Estimate, Progress

FIB = str(Path(__file__).resolve().parents[2] / "specs" / "fibonacci.yaml")


class Toy:
    """An engine for scalar states only, that says it is free: it runs the program's
    closures as the interpreter does, and counts its runs."""

    name = "toy"
    device = "cpu"
    words = "a toy engine from the tests"

    def __init__(self) -> None:
        self.runs = 0

    def supports(self, program: Program) -> str | None:
        if any(output.shape for output in program.outputs):
            return "states with lanes"
        return None

    def estimate(self, program: Program) -> Estimate:
        return Estimate(0.0, "the toy engine needs no time at all")

    def ready(self, program: Program) -> bool:
        return True

    def run(self, program: Program, buffers: Buffers,
            progress: Progress | None = None) -> tuple[int, str]:
        self.runs += 1
        return run_steps(program, buffers, progress)


@pytest.fixture
def toy() -> Iterator[Toy]:
    engine = Toy()
    registry.register(engine)
    yield engine
    registry.unregister("toy", "cpu")


def test_a_registered_engine_is_a_name_auto_and_explain_know(toy: Toy) -> None:
    assert "toy" in registry.engine_names()
    spec = recur.load(FIB)
    result = recur.run(spec, steps=20)
    assert result.engine == "toy" and toy.runs == 1
    expected = recur.run(spec, steps=20, engine="interp")
    numpy.testing.assert_array_equal(result["x"], expected["x"])
    explained = CliRunner().invoke(cli, ["explain", FIB])
    assert "engine: toy (a toy engine from the tests)" in explained.output
    assert "the toy engine needs no time at all" in explained.output


def test_the_cli_takes_a_registered_engine_by_name(toy: Toy) -> None:
    result = CliRunner().invoke(cli, ["run", FIB, "--steps", "5", "--engine", "toy",
                                      "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert toy.runs == 1


def test_an_engine_that_cannot_run_a_program_says_why(toy: Toy) -> None:
    lanes = recur.load("outputs:\n  x:\n    initial: [1.0, 2.0]\n    step: x[t-1] * 2\n"
                       "steps: 3\n")
    with pytest.raises(UsageError, match="engine='toy' cannot run this spec: states with "
                                         "lanes"):
        recur.run(lanes, engine="toy")
    assert recur.run(lanes).engine != "toy"


def test_an_unknown_engine_lists_the_registered_ones() -> None:
    with pytest.raises(UsageError, match="engine must be one of auto, interp, compiled, "
                                         "scan, not 'fast'"):
        recur.run(recur.load(FIB), engine="fast")


def test_the_lowered_trees_are_made_once_per_spec() -> None:
    """`--set` and later runs reuse the untyped trees; each run gets its own Program."""
    spec = recur.load("params:\n  a: 2.0\noutputs:\n  x:\n    initial: 1.0\n"
                      "    step: a * x[t-1]\nsteps: 4\n")
    first, second = api.prepare(spec), api.prepare(spec, params={"a": "3.0"})
    trees = spec.derived["structure"]
    assert api.prepare(spec).program is not first.program
    assert spec.derived["structure"] is trees
    assert first.program.params["a"] == 2.0 and second.program.params["a"] == 3.0
    assert recur.run(spec, params={"a": "3.0"})["x"].tolist() == [3.0, 9.0, 27.0, 81.0]
