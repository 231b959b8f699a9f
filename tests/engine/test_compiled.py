"""The compiled engine gives the interpreter's results, faults and errors, bit for bit.

Random specs (the generator of test_engine) run through both engines and the plain-Python
reference; targeted cases cover what the random ones reach rarely: weak Python scalars
next to float32, every checked integer operator and dtype, `--check`, `until` on the
first step, deep taps over lanes, sequences walked in reverse. The kernel sources of the
example specs are golden files (`--update-golden` rewrites them).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from numpy.testing import assert_array_equal
from test_engine import OVERFLOWS, Case, _check_case, cases

import recur
from recur import api
from recur.cli.main import cli
from recur.engine import registry
from recur.engine.backend import NumpyBackend
from recur.engine.c import engine as c_engine
from recur.engine.c import generate as codegen
from recur.engine.c import native
from recur.engine.plan import allocate, collect, run_on
from recur.lang.functions import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
KERNELS = Path(__file__).resolve().parents[1] / "golden_kernels"
KERNEL_SPECS = ["accumulate", "fibonacci", "taylor_exp", "logistic_sweep", "lotka_volterra",
                "newton_sqrt", "collatz", "rnn"]
EXACT_SPECS = [name for name in KERNEL_SPECS if name != "rnn"]  # rnn has a matrix product


def both(text: str, **kwargs: object) -> tuple[recur.Result, recur.Result]:
    """The spec run by the interpreter and by the compiled engine (which must take it)."""
    spec = recur.load(text)
    interpreted = recur.run(spec, engine="interp", **kwargs)
    compiled = recur.run(spec, engine="compiled", **kwargs)
    assert compiled.engine == "compiled"
    return interpreted, compiled


def assert_same(interpreted: recur.Result, compiled: recur.Result) -> None:
    assert list(interpreted) == list(compiled)
    assert (interpreted.steps_run, interpreted.stopped_by) == (
        compiled.steps_run, compiled.stopped_by)
    for name in interpreted:
        assert compiled[name].dtype == interpreted[name].dtype, name
        assert_array_equal(compiled[name], interpreted[name], err_msg=name, strict=True)


def _compiled_case(case: Case) -> None:
    """The reference check of test_engine, with every run on the compiled engine."""
    spec = recur.load(case.yaml)
    try:
        prepared = api.prepare(spec, **case.kwargs)
        registry.choose(prepared.program, "compiled")
    except recur.RecurError as error:
        assume("cannot run this spec" not in error.message)
    _check_case(case, engine="compiled")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_float_specs_agree_compiled(case: Case) -> None:
    _compiled_case(case)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(ints=True))
def test_random_integer_specs_agree_compiled(case: Case) -> None:
    _compiled_case(case)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("op", list(OVERFLOWS))
def test_integer_faults_are_caught_by_the_kernel(op: str, dtype: str) -> None:
    body, _ = OVERFLOWS[op](dtype)
    text = f"steps: 60\ndtype: {dtype}\noutputs:\n{body}"
    spec = recur.load(text)
    with pytest.raises(recur.RecurError) as interpreted:
        recur.run(spec, engine="interp")
    with pytest.raises(native.KernelFault) as fault:  # the kernel itself stops there
        prepared = api.prepare(spec)
        run_on(registry.choose(prepared.program, "compiled").engine, prepared.program,
               prepared.backend)
    assert f"t={fault.value.t}" in interpreted.value.message
    with pytest.raises(recur.RecurError) as compiled:
        recur.run(spec, engine="compiled")
    assert compiled.value.message == interpreted.value.message
    assert compiled.value.exit_code == 1
    assert_same(*both(text, steps=fault.value.t))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32"])
def test_narrow_integer_inputs_are_range_checked(dtype: str) -> None:
    text = "sequences:\n  s: input\noutputs:\n  x:\n    dtype: int64\n    step: s + s\n"
    start = int(numpy.iinfo(dtype).max) // 2 - 3
    values = numpy.arange(start, start + 10).astype(dtype)
    spec = recur.load(text)
    errors = []
    for engine in ("interp", "compiled"):
        with pytest.raises(recur.RecurError) as error:
            recur.run(spec, engine=engine, inputs={"s": values})
        errors.append(error.value.message)
    assert errors[0] == errors[1] and "t=4" in errors[0]
    assert_same(*both(text, inputs={"s": values[:4]}))


def test_weak_python_scalars_round_as_numpy_does_in_float32() -> None:
    text = """\
steps: 200
outputs:
  x:
    dtype: float32
    initial: 0.1
    step: x[t-1] * 1.0000001 + 1/3 - t * 0.001
  y:
    dtype: float32
    step: sqrt(abs(x[t])) / 7 + (x[t] if x[t] > 0.2 else -x[t-1])
"""
    assert_same(*both(text))


def test_integer_and_float_mixing_follows_numpy_promotion() -> None:
    text = """\
steps: 50
params:
  k: arange(3)
outputs:
  n:
    dtype: int32
    initial: 1
    step: (n[t-1] * 3 + t) % 1000 - k
  f:
    step: n[t] / 3 + n[t] // 7 + (t % 5) ** 2 + min(n[t], 40, f[t-1]) if t > 0 else 0.5
    initial: zeros(3)
"""
    assert_same(*both(text))


def failures(spec: recur.Spec, **kwargs: object) -> list[str]:
    """The message of the error each engine stops the run with (the interpreter's first)."""
    messages = []
    for engine in ("interp", "compiled"):
        with pytest.raises(recur.RecurError) as error:
            recur.run(spec, engine=engine, **kwargs)
        messages.append(error.value.message)
    return messages


def test_check_reports_the_same_first_non_finite_value() -> None:
    text = "steps: 30\noutputs:\n  x:\n    initial: [1.0, 2.0]\n    step: x[t-1] * 1e40\n"
    errors = failures(recur.load(text), check=True)
    assert errors[0] == errors[1]
    assert "t=7" in errors[0] and "not finite" in errors[0]


def test_until_on_the_first_step_keeps_that_step() -> None:
    interpreted, compiled = both(
        "steps: 10\noutputs:\n  x:\n    initial: 5\n    step: x[t-1] * 2\nuntil: x[t] > 0\n")
    assert compiled.steps_run == 1 and compiled.stopped_by == "until"
    assert_same(interpreted, compiled)


# Taps -1 and -3 over four lanes, a ring kept 'last', a same-step read, a select and a
# sequence walked in reverse, read at two offsets (test_cuda runs it too).
DEEP_TAPS_SPEC = """\
reverse: true
params:
  r: linspace(0.5, 1.5, 4)
sequences:
  s: arange(20) * 0.25
outputs:
  x:
    initial: [[1.0], [2.0], [3.0]]
    step: r * x[t-1] - 0.5 * x[t-3] + s[t] + s[t+1]
    keep: last
  y:
    step: x[t] * x[t-2] if s[t] > 2 else y[t-1] - 1
    initial: 0.0
"""


def test_deep_gapped_taps_over_lanes_and_a_reversed_sequence() -> None:
    assert_same(*both(DEEP_TAPS_SPEC))


def test_zero_steps_run_no_kernel() -> None:
    assert_same(*both("outputs:\n  x:\n    initial: 1.5\n    step: x[t-1] + 1\n", steps=0))


def test_a_spec_the_kernel_cannot_run_is_refused_when_asked_for() -> None:
    spec = recur.load("outputs:\n  h:\n    initial: [1.0, 0.0]\n"
                      "    step: h[t-1] / sum(h[t-1])\nsteps: 3\n")
    with pytest.raises(recur.RecurError) as error:
        recur.run(spec, engine="compiled")
    assert error.value.exit_code == 2
    assert "sum(), which mixes lanes" in error.value.message
    assert recur.run(spec).engine == "interp"


@pytest.mark.parametrize("order", ["W @ h[t-1]", "h[t-1] @ W"])
def test_matrix_products_sum_in_index_order(order: str) -> None:
    """Each lane's sum runs over the shared index in order: a Python loop gives the same
    bits. (NumPy's BLAS sums in its own order, so it agrees only to a few ulp.)"""
    rng = numpy.random.default_rng(7)
    w = rng.normal(size=(5, 5)) * 0.4
    text = (f"steps: 40\nparams:\n  W: input\nsequences:\n  u: input\noutputs:\n"
            f"  h:\n    initial: zeros(5)\n    step: 0.5 * ({order}) + u\n")
    u = rng.normal(size=(40, 5))
    result = recur.run(recur.load(text), engine="compiled", inputs={"W": w, "u": u})
    h = [0.0] * 5
    expected = []
    for t in range(40):
        if order.startswith("W"):
            product = [sum_in_order(w[i, j] * h[j] for j in range(5)) for i in range(5)]
        else:
            product = [sum_in_order(h[j] * w[j, i] for j in range(5)) for i in range(5)]
        h = [0.5 * product[i] + float(u[t, i]) for i in range(5)]
        expected.append(h)
    assert_array_equal(result["h"], numpy.array(expected))
    interpreted = recur.run(recur.load(text), engine="interp", inputs={"W": w, "u": u})
    numpy.testing.assert_allclose(result["h"], interpreted["h"], rtol=1e-13, atol=1e-15)


def sum_in_order(terms: object) -> float:
    total = 0.0
    for term in terms:  # type: ignore[attr-defined]
        total += float(term)
    return total


def test_auto_compiles_long_scalar_loops_and_interprets_short_ones() -> None:
    long = recur.load("steps: 1000000\noutputs:\n  x:\n    initial: 0.5\n"
                      "    step: sin(x[t-1]) + 0.1\n")
    short = recur.load("steps: 100\noutputs:\n  x:\n    initial: 0.5\n    step: sin(x[t-1])\n")
    assert registry.choose(api.prepare(long).program).engine.name == "compiled"
    assert registry.choose(api.prepare(short).program).engine.name == "interp"


def test_auto_interprets_without_a_c_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "available", lambda: False)
    spec = recur.load("steps: 1000000\noutputs:\n  x:\n    initial: 0.5\n    step: x[t-1]\n")
    choice = registry.choose(api.prepare(spec).program)
    assert choice.engine.name == "interp"
    assert "no C compiler" in choice.reason


def test_kernels_are_cached_on_disk_by_their_source() -> None:
    spec = recur.load("steps: 5\noutputs:\n  x:\n    initial: 2\n    step: x[t-1] * 3 - 1\n")
    kernel = c_engine.CEngine().kernel(api.prepare(spec).program)
    recur.run(spec, engine="compiled")
    assert native.is_cached(kernel.source)
    cached = native.library_path(kernel.source)
    assert cached.exists()
    assert str(cached).startswith(os.environ["RECUR_CACHE_DIR"])


def test_the_source_does_not_depend_on_param_values() -> None:
    spec = recur.load("params:\n  a: 0.5\noutputs:\n  x:\n    initial: 1.0\n"
                      "    step: a * x[t-1] + a ** 2\nsteps: 4\n")
    sources = {codegen.generate(api.prepare(spec, params={"a": value}).program, numpy).source
               for value in ("0.5", "2.0", "-1e300")}
    assert len(sources) == 1


def test_cli_engine_option_gives_the_same_bytes() -> None:
    runner = CliRunner()
    outputs = [
        runner.invoke(cli, ["run", str(ROOT / "specs/lotka_volterra.yaml"), "--engine",
                            engine, "-o", "-", "-f", "csv"]).stdout
        for engine in ("interp", "compiled")
    ]
    assert outputs[0] == outputs[1] and outputs[0].count("\n") > 10


@pytest.mark.parametrize("name", EXACT_SPECS)
def test_every_example_spec_runs_compiled_as_interpreted(name: str) -> None:
    spec = recur.load(ROOT / "specs" / f"{name}.yaml")
    assert_same(recur.run(spec, engine="interp"), recur.run(spec, engine="compiled"))


@pytest.mark.parametrize("name", KERNEL_SPECS)
def test_kernel_source_is_golden(name: str, request: pytest.FixtureRequest) -> None:
    spec = recur.load(ROOT / "specs" / f"{name}.yaml")
    source = c_engine.CEngine().kernel(api.prepare(spec).program).source
    body = source[source.index("int64_t kernel("):]  # the prelude is the same for all
    golden = KERNELS / f"{name}.c"
    if request.config.getoption("--update-golden") and (
            not golden.exists() or golden.read_text() != body):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(body)
        pytest.fail(f"regenerated {golden.name}; review git diff tests/golden_kernels")
    assert body == golden.read_text()


@pytest.mark.parametrize("keep", ["all", "last"])
def test_one_value_kernels_carry_their_taps_across_calls(
        keep: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane loop (taps in registers) runs in calls of a few steps: each call reloads
    the taps and a ring gets its last states back, also when `until` stops mid-call."""
    monkeypatch.setattr(native, "CHUNK_ELEMENTS", 7)
    text = ("steps: 60\noutputs:\n  x:\n    initial: [0.25, 0.5, 0.75]\n"
            "    step: 0.5 * x[t-1] + 0.25 * x[t-3] + 0.125\n"
            f"    keep: {keep}\n  n:\n    initial: 0\n    step: n[t-1] + 1\n"
            "until: n[t] >= 45\n")
    interpreted, compiled = both(text)
    assert compiled.steps_run == 45 and compiled.stopped_by == "until"
    assert_same(interpreted, compiled)
    spec = recur.load(text)
    kernel = c_engine.CEngine().kernel(api.prepare(spec).program)
    assert "s0_3" in kernel.source  # the taps are registers


# Single values (the lane kernel, taps in registers) and lanes (the loop over lanes);
# `n` is kept as a ring of its last states.
REPLAYED = {
    "one value": "steps: 40\noutputs:\n  x:\n    initial: 1.0\n    step: 0.5 * x[t-1] + 1\n"
                 "  n:\n    initial: 0\n    step: n[t-1] + 3\n    keep: last\n",
    "lanes": "steps: 40\noutputs:\n  x:\n    initial: [1.0, -2.0, 7.0]\n"
             "    step: 0.5 * x[t-1] + 1\n  n:\n    initial: 0\n    step: n[t-1] + 3\n"
             "    keep: last\n",
}


@pytest.mark.parametrize("form", list(REPLAYED))
def test_a_kernel_runs_again_on_fresh_buffers_without_regenerating(
        form: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The kernel holds no states: a second run (a replay) binds new buffers to it. The
    engine is ready (nothing to compile) once the first run has cached its kernel."""
    monkeypatch.setenv("RECUR_CACHE_DIR", str(tmp_path))
    made: list[object] = []
    real = c_engine.kernel
    monkeypatch.setattr(c_engine, "kernel", lambda *args: made.append(args) or real(*args))
    spec = recur.load(REPLAYED[form])
    program = api.prepare(spec).program
    engine = c_engine.CEngine()
    assert engine.supports(program) is None
    assert engine.estimate(program).setup > 0 and not engine.ready(program)
    runs = []
    for _ in range(2):
        buffers = allocate(program, NumpyBackend())
        assert engine.run(program, buffers) == (40, "steps")
        runs.append(collect(program, buffers, 40))
    assert len(made) == 1 and engine.ready(program)
    lanes = [1.0] if form == "one value" else [1.0, -2.0, 7.0]
    trajectory = []
    for _ in range(40):
        lanes = [0.5 * value + 1 for value in lanes]
        trajectory.append(lanes)
    want = numpy.array(trajectory).reshape(40, *([] if form == "one value" else [3]))
    for arrays in runs:
        assert_array_equal(arrays["x"], want, strict=True)
        assert int(arrays["n"]) == 3 * 40


def test_a_function_without_a_c_name_is_the_reason_the_kernel_gives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FUNCTIONS, "sinh", dataclasses.replace(FUNCTIONS["sinh"], c=None))
    spec = recur.load("steps: 3\noutputs:\n  x:\n    initial: 0.5\n    step: sinh(x[t-1])\n")
    reason = "the function sinh(), which has no C name in recur.lang.functions"
    assert c_engine.CEngine().supports(api.prepare(spec).program) == reason
    assert registry.choose(api.prepare(spec).program).reason.endswith(reason)
    with pytest.raises(recur.RecurError, match=r"cannot run this spec: the function sinh\(\)"):
        recur.run(spec, engine="compiled")


@pytest.mark.parametrize("call", ["digamma(x[t-1] + 2)", "polygamma(1, x[t-1] + 2)"])
def test_the_special_functions_without_a_c_name_run_on_the_interpreter(call: str) -> None:
    spec = recur.load(f"steps: 3\noutputs:\n  x:\n    initial: 0.5\n    step: {call}\n")
    name = call.split("(")[0]
    reason = f"the function {name}(), which has no C name in recur.lang.functions"
    assert c_engine.CEngine().supports(api.prepare(spec).program) == reason
    assert registry.choose(api.prepare(spec).program).reason.endswith(reason)
