"""Casts (`int64(x)`, `float32(x)`, ...) on every engine: values as `astype` gives them,
worked out here without NumPy's casts; the same bits from the interpreter, the C kernels
and the CUDA kernel (emulated in CI); the same fault, at the same step and lane, where no
value of the dtype holds the result."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cuda import where  # noqa: F401 (the fixture: emulated CUDA, or a real GPU)

import recur
from recur import api
from recur.cli.main import cli
from recur.diagnostics import render
from recur.engine import registry
from recur.engine.c import native
from recur.engine.plan import run_on

INT_LIMITS = {"int32": 2**31, "int64": 2**63}

# The sequence read through the state, so that a function of it runs in the loop (a
# function of `s[t]` alone would be computed for all steps before it).
HEADER = """\
sequences:
  s: input
outputs:
  one:
    initial: 1.0
    step: one[t-1]
"""


def _spec(**outputs: tuple[str, str]) -> str:
    """name=(dtype, function): an output that applies the function to `s[t]`."""
    return HEADER + "".join(
        f"  {name}:\n    dtype: {dtype}\n    step: {function}(where(one[t-1] > 0, s[t], s[t]))\n"
        for name, (dtype, function) in outputs.items())


def _float32(value: float) -> float:
    """The float32 nearest `value`, by the struct module (not NumPy)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _by_hand(value: Any, dtype: str) -> Any:
    """What `astype(dtype)` gives for a value that `dtype` holds, in plain Python."""
    if dtype == "bool":
        return value != 0
    if dtype in INT_LIMITS:
        return math.trunc(value)
    if dtype == "float32":
        return _float32(float(value))
    return float(value)


# (target dtype, source dtype, values: each is held by the target)
CASES = [
    ("int64", "float64", [0.0, -0.0, 0.5, -0.5, 2.5, -2.5, 1e-300, 7.99, -7.99,
                          2.0**63 - 1024, -(2.0**63), 2.0**53 + 2]),
    ("int32", "float64", [0.9, -0.9, 2147483647.99, -2147483648.99, 1e9, -3.5]),
    ("int32", "float32", [0.75, -0.75, 2147483520.0, -2147483648.0, 16777217.0]),
    ("int64", "float32", [-1.5, 3.0e18, -9.2e18, 0.1]),
    ("int32", "int64", [0, -1, 2**31 - 1, -(2**31), 12345678]),
    ("float32", "float64", [0.1, -0.0, 1e-40, 3.4028235e38, 1.0 + 2.0**-24, math.pi]),
    ("float32", "int64", [2**53 + 1, 2**24 + 1, -(2**63), 2**63 - 1, 7]),
    ("float64", "int64", [2**53 + 1, -(2**63), 2**63 - 1, -3]),
    ("float64", "float32", [0.1, -2.5, 1e-40]),
    ("bool", "float64", [0.0, -0.0, 1e-300, math.nan, math.inf, -2.0]),
    ("bool", "int32", [0, 1, -5]),
    ("int64", "bool", [True, False]),
]


def _sequence(values: list[Any], source: str, lanes: bool) -> numpy.ndarray:
    """The values over lanes (3 steps of them), or over steps (one value a step)."""
    array = numpy.array(values, dtype=source)
    return numpy.stack([array] * 3) if lanes else array


def _bits(array: numpy.ndarray) -> bytes:
    """Bit for bit, -0.0 and NaN included (`assert_array_equal` calls -0.0 == 0.0)."""
    return array.dtype.str.encode() + array.tobytes()


def _run_everywhere(text: str, inputs: dict[str, Any]) -> list[recur.Result]:
    spec = recur.load(text)
    runs = [recur.run(spec, engine="interp", inputs=inputs),
            recur.run(spec, engine="compiled", inputs=inputs),
            recur.run(spec, device="cuda", engine="compiled", inputs=inputs)]
    assert [(r.engine, r.device) for r in runs] == [
        ("interp", "cpu"), ("compiled", "cpu"), ("compiled", "cuda")]
    return runs


@pytest.mark.usefixtures("where")
@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "one_value"])
@pytest.mark.parametrize(("dtype", "source", "values"), CASES,
                         ids=[f"{s}_to_{d}" for d, s, _ in CASES])
def test_casts_give_astypes_values_with_the_same_bits_on_every_engine(
        dtype: str, source: str, values: list[Any], lanes: bool) -> None:
    sequence = _sequence(values, source, lanes)
    runs = _run_everywhere(_spec(y=(dtype, dtype)), {"s": sequence})
    expected = numpy.array([_by_hand(v, dtype) for v in sequence.ravel().tolist()],
                           dtype=dtype).reshape(sequence.shape)
    got = runs[0]["y"]
    assert _bits(got) == _bits(expected)
    for other in runs[1:]:
        assert _bits(other["y"]) == _bits(got), other.engine


# (target, source, a value no element of the target holds, the fault's words)
FAULTS = [
    ("int64", "float64", math.nan, "int64() of NaN or infinity"),
    ("int64", "float64", -math.inf, "int64() of NaN or infinity"),
    ("int32", "float32", math.inf, "int32() of NaN or infinity"),
    ("int64", "float64", 2.0**63, "integer overflow: int64() of a value outside int64"),
    ("int64", "float64", -(2.0**63) - 2048,
     "integer overflow: int64() of a value outside int64"),
    ("int32", "float64", 2147483648.0, "integer overflow: int32() of a value outside int32"),
    ("int32", "float64", -2147483649.0, "integer overflow: int32() of a value outside int32"),
    ("int32", "float32", -3e9, "integer overflow: int32() of a value outside int32"),
    ("int32", "int64", 2**31, "integer overflow: int32() of a value outside int32"),
    ("int32", "int64", -(2**31) - 1, "integer overflow: int32() of a value outside int32"),
]


def _faulty(source: str, bad: Any) -> numpy.ndarray:
    """Five steps over three lanes, `bad` at t=3 in lane 1."""
    sequence = numpy.ones((5, 3), dtype=source)
    sequence[3, 1] = bad
    return sequence


@pytest.mark.usefixtures("where")
@pytest.mark.parametrize(("dtype", "source", "bad", "kind"), FAULTS,
                         ids=[f"{s}_{b}_to_{d}" for d, s, b, _ in FAULTS])
def test_a_cast_no_value_holds_is_a_fault_on_every_engine(
        dtype: str, source: str, bad: Any, kind: str) -> None:
    spec = recur.load(_spec(y=(dtype, dtype)))
    inputs = {"s": _faulty(source, bad)}
    with pytest.raises(native.KernelFault) as fault:  # the C kernel itself stops there
        prepared = api.prepare(spec, inputs=inputs)
        run_on(registry.choose(prepared.program, "compiled").engine, prepared.program,
               prepared.backend)
    assert fault.value.t == 3
    for device in ("cpu", "cuda"):
        for engine in ("interp", "compiled"):
            with pytest.raises(recur.RecurError) as error:
                recur.run(spec, device=device, engine=engine, inputs=inputs)
            assert error.value.exit_code == 1
            assert error.value.message == f"{kind} in the step of output 'y' at t=3 (lane 1)"
            assert error.value.span is not None
            assert (error.value.span.line, error.value.span.col) == (9, 11)


@pytest.mark.parametrize(("step", "faults"), [
    ("int64(x[t-1]) if isfinite(x[t-1]) else -1", False),  # the lanes not picked: no fault
    ("where(isfinite(x[t-1]), int64(x[t-1]), -1)", True),  # both computed, as in NumPy
])
def test_a_select_forgives_the_casts_of_lanes_it_does_not_pick(step: str, faults: bool) -> None:
    text = ("steps: 3\noutputs:\n  x:\n    initial: [1.5, nan]\n    step: x[t-1] * 2\n"
            f"  y:\n    dtype: int64\n    step: {step}\n")
    spec = recur.load(text)
    for engine in ("interp", "compiled"):
        if faults:
            with pytest.raises(recur.RecurError, match="of NaN or infinity"):
                recur.run(spec, engine=engine)
        else:
            result = recur.run(spec, engine=engine)
            assert result["y"].tolist() == [[1, -1], [3, -1], [6, -1]]


def test_an_int_output_takes_a_cast_of_floor() -> None:
    """PyTensor's test_grad_dtype_change: floor gives floats, a cast makes them ints."""
    text = "steps: 6\noutputs:\n  x:\n    dtype: int64\n    initial: 1001\n    step: {}\n"
    result = recur.run(recur.load(text.format("int64(floor(x[t-1] / 2))")))
    expected, value = [], 1001
    for _ in range(6):
        value //= 2
        expected.append(value)
    assert result["x"].dtype == numpy.int64 and result["x"].tolist() == expected
    with pytest.raises(recur.RecurError) as error:
        recur.run(recur.load(text.format("floor(x[t-1] / 2)")))
    assert error.value.message == ("the step of output 'x' gives float64 values, which "
                                   "cannot be stored in its dtype int64")


def test_a_cast_of_a_complex_value_to_a_real_dtype_is_refused() -> None:
    text = "params:\n  z: 3 + 4j\nsteps: 2\noutputs:\n  y:\n    step: 1 + float64(z * t)\n"
    with pytest.raises(recur.RecurError) as error:
        recur.run(recur.load(text, path="spec.yaml"))
    assert error.value.exit_code == 2
    assert render(error.value) == (
        "spec.yaml:6:15: error: float64() of a complex128 value would drop its imaginary part\n"
        "        step: 1 + float64(z * t)\n"
        "                  ^~~~~~~~~~~~~~\n"
        "note: take real(z), imag(z) or abs(z) first, whichever is meant")
    fixed = recur.run(recur.load(text.replace("float64(z * t)", "abs(z * t)")))
    assert fixed["y"].tolist() == [1.0, 6.0]  # |3 + 4j| = 5


def test_complex_and_bool_casts_keep_every_part() -> None:
    text = ("params:\n  z: [1.5 - 2j, 0j]\nsteps: 1\noutputs:\n"
            "  c:\n    dtype: complex128\n    step: complex128(z) * 2\n"
            "  b:\n    dtype: bool\n    step: bool(z)\n")
    result = recur.run(recur.load(text))
    assert result["c"].tolist() == [[3 - 4j, 0j]]
    assert result["b"].tolist() == [[True, False]]


def test_a_param_cast_out_of_range_is_reported_at_the_param() -> None:
    text = "params:\n  n: int32(3e9)\nsteps: 1\noutputs:\n  y:\n    step: n\n"
    with pytest.raises(recur.RecurError) as error:
        recur.run(recur.load(text))
    assert error.value.exit_code == 1
    assert error.value.message == ("integer overflow: int32() of a value outside int32 "
                                   "in param 'n'")


@pytest.mark.usefixtures("where")
@pytest.mark.parametrize(("dtype", "values"), [
    ("float64", [1.5, -2.0, 0.0, -0.0, math.inf, -math.inf, math.nan]),
    ("float32", [1.5, -2.0, -0.0, math.nan]),
    ("int64", [3, -4, 0]),
])
def test_the_parts_of_a_real_number_are_compiled_with_the_same_bits(
        dtype: str, values: list[Any]) -> None:
    """As NumPy: real and conj give x, imag 0 (of x's dtype), angle arctan2(0, x)."""
    sequence = numpy.stack([numpy.array(values, dtype=dtype)] * 2)
    angle = "float32" if dtype == "float32" else "float64"
    text = _spec(re=(dtype, "real"), im=(dtype, "imag"), co=(dtype, "conj"), an=(angle, "angle"))
    runs = _run_everywhere(text, {"s": sequence})
    round_angle = _float32 if dtype == "float32" else float
    expected = {
        "re": sequence, "co": sequence, "im": numpy.zeros_like(sequence),
        "an": numpy.array([[round_angle(math.atan2(0.0, v)) for v in row]
                           for row in sequence.tolist()], dtype=angle),
    }
    for name, want in expected.items():
        assert _bits(runs[0][name]) == _bits(numpy.asarray(want)), name
        for other in runs[1:]:
            assert _bits(other[name]) == _bits(runs[0][name]), (name, other.engine)


@pytest.mark.parametrize(("output", "engine"), [
    ("x:\n    dtype: int64\n    initial: 1000\n"
     "    step: int64(floor(x[t-1] * 0.9)) + int64(float32(t % 3))\n",
     ["engine: compiled ("]),
    ("z:\n    dtype: complex128\n    initial: 1.0\n    step: conj(z[t-1]) * 0.5j\n",
     ["engine: interp (",
      "\n  because: the compiled engine cannot run it: output 'z' is complex128\n"]),
])
def test_explain_says_casts_are_compiled_and_why_complex_values_are_not(
        output: str, engine: list[str], tmp_path: Any) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(f"steps: 3000000\noutputs:\n  {output}")
    result = CliRunner().invoke(cli, ["explain", str(path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert all(line in result.stdout for line in engine)


def _expected_fault(dtype: str, values: list[float]) -> str | None:
    """The interpreter's words for a float-to-integer cast of one step over `values`:
    NaN or infinity first, then values beyond the dtype (its first lane in each case)."""
    limit = INT_LIMITS[dtype]
    infinite = [k for k, v in enumerate(values) if not math.isfinite(v)]
    beyond = [k for k, v in enumerate(values)
              if math.isfinite(v) and not -limit <= math.trunc(v) < limit]
    if infinite:
        return (f"{dtype}() of NaN or infinity in the step of output 'y' at t=0 "
                f"(lane {infinite[0]})")
    if beyond:
        return (f"integer overflow: {dtype}() of a value outside {dtype} in the step of output "
                f"'y' at t=0 (lane {beyond[0]})")
    return None


edge_floats = st.one_of(
    st.floats(width=32), st.floats(),
    st.sampled_from([2.0**31, -(2.0**31), 2.0**31 - 0.5, -(2.0**31) - 1, 2.0**63,
                     -(2.0**63), -(2.0**63) - 2048, 2.0**63 - 1024]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from(["int32", "int64"]), source=st.sampled_from(["float32", "float64"]),
       values=st.lists(edge_floats, min_size=1, max_size=5))
def test_float_to_integer_casts_agree_with_truncation_or_fault_alike(
        dtype: str, source: str, values: list[float]) -> None:
    """Any floats: the interpreter and the C kernel give trunc(x) where the dtype holds
    it, or both stop with the same words at the same lane."""
    with numpy.errstate(over="ignore"):  # a float64 beyond float32 is an infinity
        sequence = numpy.array([values], dtype=source)
    spec = recur.load(_spec(y=(dtype, dtype)))
    widened = [float(v) for v in sequence[0].tolist()]  # the values the cast sees
    expected = _expected_fault(dtype, widened)
    outcomes = []
    for engine in ("interp", "compiled"):
        try:
            result = recur.run(spec, engine=engine, inputs={"s": sequence})
            outcomes.append(_bits(result["y"]))
        except recur.RecurError as error:
            outcomes.append(error.message.encode())
    if expected is None:
        wanted = numpy.array([[math.trunc(v) for v in widened]], dtype=dtype)
        assert outcomes == [_bits(wanted)] * 2
    else:
        assert outcomes == [expected.encode()] * 2
