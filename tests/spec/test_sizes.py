"""Large valid specs: loading and checking do work linear in the spec's size, deep taps
live in memory rather than in registers, many outputs are split over C functions and
priced by their source's size. No timings: work is counted, sources are read."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import numpy
import pytest
from cuda_emulator import EmulatedCuda, compiler
from numpy.testing import assert_array_equal

import recur
from recur import api
from recur.compile import analyze as analysis
from recur.compile.lower import _Probe
from recur.engine import registry
from recur.engine.c import engine as c_engine
from recur.engine.c import generate as codegen
from recur.engine.c import lanes as lanegen
from recur.engine.cuda.engine import FusedEngine
from recur.spec import load as spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sizes

ROOT = Path(__file__).resolve().parents[2]


def _lines(action: Any) -> int:
    """The Python lines (and calls) that `action` executes: its work, counted."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += 1
        return trace

    sys.settrace(trace)
    try:
        action()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("kind", ["params", "outputs", "sequence"])
def test_check_does_work_linear_in_the_spec_size(kind: str) -> None:
    # Eight times the spec, about eight times the lines run (7.2 to 7.9 measured); a
    # scan of every output for each output looked up (as there was) made it 10.7.
    small, large = (sizes.KINDS[kind](n) for n in (100, 800))
    assert _lines(lambda: recur.check(large)) / _lines(lambda: recur.check(small)) < 9


def test_the_source_is_split_into_lines_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = spec.source_lines
    monkeypatch.setattr(spec, "source_lines", lambda text: calls.append(1) or real(text))
    recur.check(sizes.outputs_spec(200))
    assert len(calls) == 1


def _probe_steps(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, recur.Result]:
    """How many probe steps settling shapes takes, and the run's result."""
    calls = []
    real = _Probe.step
    monkeypatch.setattr(_Probe, "step", lambda self, *args: calls.append(1) or real(self, *args))
    result = recur.run(text)
    return len(calls), result


def test_shapes_settle_in_one_probe_step_when_no_changed_state_is_read_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # o1 ... o49 start with no shape and take o0's (4,) lanes, but are read only at `t`.
    steps, result = _probe_steps(sizes.outputs_spec(50), monkeypatch)
    assert steps == 1
    assert_array_equal(result["o49"][-1], result["o0"][-1] + 49)


def test_a_state_read_back_with_a_new_shape_takes_another_probe_step(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("steps: 3\nparams:\n  r: arange(4) * 1.0\noutputs:\n  x:\n    initial: 0.0\n"
            "    step: x[t-1] + r\n")
    steps, result = _probe_steps(text, monkeypatch)
    assert steps == 2
    r = numpy.arange(4) * 1.0
    assert_array_equal(result["x"], numpy.array([r, r + r, r + r + r]))


def test_a_loaded_spec_is_analysed_once_however_often_it_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = analysis._analyze
    monkeypatch.setattr(analysis, "_analyze", lambda spec: calls.append(1) or real(spec))
    loaded = recur.load(sizes.params_spec(3))
    recur.check(loaded)
    first = recur.run(loaded, params={"p0": 1.0})["x"]
    second = recur.run(loaded, params={"p0": 2.0})["x"]
    assert len(calls) == 1
    assert_array_equal(second - first, numpy.arange(1, sizes.STEPS + 1) * 1.0)
    recur.check(sizes.params_spec(3))  # another spec: analysed anew
    assert len(calls) == 2


@pytest.mark.parametrize("collecting", [True, False])
def test_the_cycle_collector_is_left_as_it_was(collecting: bool) -> None:
    """Loading and compiling go without it (it took half of checking a 1 MB spec)."""
    (gc.enable if collecting else gc.disable)()
    try:
        recur.check(sizes.outputs_spec(3))
        with pytest.raises(recur.RecurError):
            recur.check("outputs:\n  x:\n    step: y[t-1]\n")
        assert gc.isenabled() == collecting
    finally:
        gc.enable()


def _python_loop(depth: int, steps: int, lanes: numpy.ndarray) -> numpy.ndarray:
    """x[t] = x[t-depth] * 0.5 + x[t-1] * 0.25 + r, from x = 0, 1, ..., depth-1."""
    rows = []
    for r in lanes:
        history = [float(k) for k in range(depth)]
        for _ in range(steps):
            history.append(history[-depth] * 0.5 + history[-1] * 0.25 + float(r))
        rows.append(history[depth:])
    return numpy.array(rows).T


DEPTH = lanegen.REGISTER_DEPTH + 8


def _deep_spec(lanes: int, keep: str) -> str:
    return f"""\
steps: {3 * DEPTH}
params:
  r: linspace(0.5, 1.5, {lanes})
outputs:
  x:
    keep: {keep}
    initial: arange({DEPTH}) * 1.0
    step: x[t-{DEPTH}] * 0.5 + x[t-1] * 0.25 + r
  y:
    initial: arange({DEPTH - 1}) * 1.0
    step: y[t-{DEPTH - 1}] + x[t-{DEPTH}] - x[t]
"""


def _expected(lanes: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    r = numpy.linspace(0.5, 1.5, lanes)
    x = _python_loop(DEPTH, 3 * DEPTH, r)
    y = [[float(k) for k in range(DEPTH - 1)] for _ in r]
    past = numpy.vstack([numpy.tile(numpy.arange(DEPTH, dtype=float), (lanes, 1)).T, x])
    for t in range(3 * DEPTH):
        for lane in range(lanes):
            y[lane].append(y[lane][-(DEPTH - 1)] + past[t][lane] - x[t][lane])
    return x, numpy.array([row[DEPTH - 1:] for row in y]).T


@pytest.mark.parametrize("keep", ["all", "last"])
def test_a_deep_tap_is_read_from_memory_with_the_interpreters_bits(keep: str) -> None:
    loaded = recur.load(_deep_spec(1, keep))
    source = lanegen.generate_host(api.prepare(loaded).program, numpy).source
    _agrees_with_the_loop(loaded, source, recur.run(loaded, engine="compiled"), 1, keep)


def _agrees_with_the_loop(loaded: recur.Spec, source: str, kernel_run: recur.Result,
                          lanes: int, keep: str) -> None:
    """No shifted registers in the kernel's source; its run and the interpreter's give a
    plain Python loop's values, bit for bit."""
    assert f"s0_{DEPTH}" not in source and "s0_1 =" not in source
    interp = recur.run(loaded, engine="interp")
    x, y = _expected(lanes)
    assert_array_equal(interp["x"], x[-1] if keep == "last" else x)
    assert_array_equal(interp["y"], y)
    for name in ("x", "y"):
        assert_array_equal(kernel_run[name], interp[name], strict=True)


def test_taps_within_the_threshold_stay_in_registers() -> None:
    text = _deep_spec(1, "all").replace(str(DEPTH), str(lanegen.REGISTER_DEPTH))
    loaded = recur.load(text)
    source = lanegen.generate_host(api.prepare(loaded).program, numpy).source
    assert f"s0_{lanegen.REGISTER_DEPTH} = s0_{lanegen.REGISTER_DEPTH - 1};" in source


@pytest.mark.parametrize("keep", ["all", "last"])
def test_a_deep_tap_on_cuda_lanes_agrees_bit_for_bit(keep: str, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    if compiler() is None:
        pytest.skip("needs a C++ compiler to emulate CUDA kernels")
    backend = EmulatedCuda(tmp_path)
    real = api.get_backend
    monkeypatch.setattr(api, "get_backend",
                        lambda device: backend if device == "cuda" else real(device))
    loaded = recur.load(_deep_spec(5, keep))
    kernel = FusedEngine().kernel(api.prepare(loaded, device="cuda").program)
    cuda = recur.run(loaded, device="cuda", engine="compiled")
    _agrees_with_the_loop(loaded, kernel.source, cuda, 5, keep)


def test_many_outputs_are_split_over_functions_with_the_interpreters_bits() -> None:
    count = 2 * codegen.OUTPUTS_PER_FUNCTION + 3
    loaded = recur.load(sizes.outputs_spec(count))
    kernel = c_engine.CEngine().kernel(api.prepare(loaded).program)
    assert kernel.source.count("__attribute__((noinline)) static int64_t step") == 3
    compiled = recur.run(loaded, engine="compiled")
    interp = recur.run(loaded, engine="interp")
    o0 = [float(r) for r in range(sizes.LANES)]
    expected = []
    for _ in range(sizes.STEPS):
        o0 = [value * 0.5 + 1 for value in o0]
        expected.append(o0)
    chain = numpy.array(expected)
    for k in range(count):
        assert_array_equal(interp[f"o{k}"], chain)
        assert_array_equal(compiled[f"o{k}"], interp[f"o{k}"], strict=True)
        chain = chain + 1


def test_auto_interprets_a_huge_many_output_spec_by_its_source_size() -> None:
    loaded = recur.load(sizes.outputs_spec(2000))
    compiled = api.prepare(loaded)
    kernel = c_engine.kernel(compiled.program)
    cost = registry.estimates(compiled.program)
    compile_time = c_engine.compile_estimate(kernel.source)
    assert compile_time == len(kernel.source) * c_engine.COMPILE_BYTE
    assert cost["compiled"].setup == compile_time
    assert cost["compiled"].seconds + compile_time > cost["interp"].seconds  # the verdict
    choice = registry.choose(compiled.program)
    assert choice.engine.name == "interp"
    assert f"compiling takes about {compile_time:.2g} s" in choice.reason


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.yaml")) + sorted(
    (ROOT / "docs" / "examples").glob("*.yaml")), ids=lambda path: path.name)
def test_libyaml_and_pyyaml_compose_the_same_spec(path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml composes large specs quickly; PyYAML's composer must find the same spec
    (every node, value and position) wherever libyaml is missing."""
    if spec._LIBYAML is None:
        pytest.skip("PyYAML without libyaml")
    try:
        fast = recur.load(path)
    except recur.RecurError as error:  # a documented error: the same words either way
        fast = recur.render(error)
    monkeypatch.setattr(spec, "_LIBYAML", None)
    try:
        slow = recur.load(path)
    except recur.RecurError as error:
        slow = recur.render(error)
    assert fast == slow
