"""Exact operations give the same bits on every engine, for any lane count and --steps.

docs/spec.md ("Exact operations") lists them. A spec is run one lane at a time (its
states single values: NumPy scalars in the interpreter, the lane dialect in C) and as
one lane among several (arrays; the array dialect), on every engine: the interpreter,
the C kernel in both dialects, and the CUDA kernel built by the host's compiler
(tests/cuda_emulator.py). Results are compared bit for bit: the sign of a zero counts,
and a NaN equals a NaN. Edge values (signed zeros, infinities, NaN, subnormals, values
near a dtype's limits) come on a grid of pairs and in random expressions. Every spec in
specs/ then runs under `--engine auto` with step counts on both sides of the point
where auto switches from the interpreter to the compiled engine.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import pytest
from cuda_emulator import EmulatedCuda, compiler
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import recur
from recur import api, codegen, cudagen, dispatch, lanegen
from recur.analysis import analyze_spec
from recur.compiler import compile_spec
from recur.engine import native
from recur.engine.backend import NumpyBackend
from recur.engine.frame import KernelFault

ROOT = Path(__file__).resolve().parent.parent
INF, NAN = math.inf, math.nan
FLOAT_EDGES = [0.0, -0.0, INF, -INF, NAN, 5e-324, -2.2250738585072014e-308, 1.0, -1.0,
               0.5, -2.5, 3.0, 1.0834583425075237, 1e308, -1e-300, 16777217.0, 1e-160]
INT_EDGES = {"int64": [0, 1, -1, 2, -3, 7, -100, 1290, 2**31, -(2**31) - 1],
             "int32": [0, 1, -1, 2, -3, 7, -100, 1290, 46340, -46341]}
# Every exact operation on two states a, b (float dtypes); `%` and `//` included.
FLOAT_OPS = [
    "a + b", "a - b", "a * b", "a / b", "a // b", "a % b", "-a", "a ** 2", "a ** 3",
    "a ** -1", "a ** -2", "a ** 0", "a ** 2.0", "a ** 5", "a ** -3", "min(a, b)",
    "max(a, b)", "minimum(a, b)", "maximum(a, b)", "min(b, a, 0.0)", "max(a, -0.0)",
    "clip(a, b, 1.0)", "clip(a, -0.0, b)", "abs(a)", "sign(a)", "floor(a)", "ceil(a)",
    "trunc(a)", "a if a < b else b", "a if a <= b else -b", "where(a == b, a, b)",
    "1.0 if a > b else 0.0", "a if a != b else 2.5", "1 / max(a, 0.0)", "a + 1",
    "a * 0 + 1152921573326323713", "a * 3 - 0.1", "sqrt(abs(a))",
]
INT_OPS = [
    "a + b", "a if a >= b else b", "a - b if a >= b else b - a", "a * b",
    "a // b if b != 0 else a", "a % b if b != 0 else b", "abs(a)", "sign(a)", "a ** 2",
    "a ** 0", "a ** 1", "min(a, b)", "max(a, b)", "minimum(a, b)", "maximum(a, b)",
    "clip(a, b, 7)", "a + 1", "a * 2", "a // 2", "a % 3", "(a ** 3 if a < 1291 else a)",
]
ENGINES_ONE_LANE = ("interp", "c-array", "c-lane", "cuda")
ENGINES_LANES = ("interp", "c-array", "cuda")


@dataclass(frozen=True)
class Ran:
    """What an engine gave: arrays, or the step of the first fault."""

    arrays: dict[str, numpy.ndarray] | None
    fault: int | None


@pytest.fixture(scope="module")
def cuda_backend(tmp_path_factory: pytest.TempPathFactory) -> EmulatedCuda:
    if compiler() is None or not native.available():
        pytest.skip("needs a C and a C++ compiler")
    return EmulatedCuda(tmp_path_factory.mktemp("emulated"))


def run_on(engine: str, text: str, cuda: EmulatedCuda) -> Ran:
    """The spec run on one engine, its kernel chosen by name (not by `auto`)."""
    spec = recur.load(text)
    backend = cuda if engine == "cuda" else NumpyBackend()
    compiled = compile_spec(spec, analyze_spec(spec), backend)
    if engine == "interp":
        choice = dispatch.Choice("interpreter", "")
    elif engine == "c-array":
        choice = dispatch.Choice("compiled", "", codegen.generate(compiled, spec))
    elif engine == "c-lane":
        choice = dispatch.Choice("compiled", "", lanegen.generate_host(compiled, spec))
    else:
        choice = dispatch.Choice("fused", "", cudagen.generate(compiled, spec))
    try:
        outcome = dispatch.execute(choice, compiled)
    except KernelFault as fault:
        return Ran(None, fault.t)
    except recur.RecurError as error:
        found = re.search(r"at t=(\d+)", error.message)
        assert found and error.exit_code == 1, error.message
        return Ran(None, int(found.group(1)))
    return Ran(outcome.arrays, None)


def assert_same_bits(got: Ran, want: Ran, what: str) -> None:
    assert got.fault == want.fault, what
    if want.arrays is None or got.arrays is None:
        return
    assert list(got.arrays) == list(want.arrays), what
    for name, expected in want.arrays.items():
        assert_bits(got.arrays[name], expected, f"{what}: {name}")


def assert_bits(got: numpy.ndarray, want: numpy.ndarray, what: str) -> None:
    """Equal dtypes, shapes and bits; any NaN equals any NaN."""
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if want.dtype.kind == "f":
        nan = numpy.isnan(want)
        assert (numpy.isnan(got) == nan).all(), f"{what}: NaN where the other has none"
        got, want = got[~nan], want[~nan]
        unsigned = f"u{want.dtype.itemsize}"
        got, want = got.view(unsigned), want.view(unsigned)
    mismatch = numpy.flatnonzero(got != want)
    assert not mismatch.size, f"{what}: first differing element {mismatch[0]}"


def lane(ran: Ran, k: int) -> Ran:
    """Lane k of a run over lanes, shaped as a run of that lane alone."""
    if ran.arrays is None:
        return ran
    return Ran({name: array[..., k] for name, array in ran.arrays.items()}, None)


def spec_text(dtype: str, values: dict[str, Any], steps_of: dict[str, str], steps: int,
              initial: Any = None) -> str:
    """States a, b (held at their params' values) and one output per expression.

    `values` holds a param per state: a number (one lane) or a list (lanes)."""
    lines = [f"steps: {steps}", f"dtype: {dtype}", "params:"]
    lines += [f"  {name}: {_number(value)}" for name, value in values.items()]
    lines.append("outputs:")
    for name in ("a", "b"):
        lines.append(f"  {name}: {{initial: v{name}, step: '{name}[t-1]'}}")
    for name, step in steps_of.items():
        initial_line = f", initial: {_number(initial)}" if initial is not None else ""
        lines.append(f"  {name}: {{step: '{step}'{initial_line}}}")
    return "\n".join(lines) + "\n"


def _number(value: Any) -> str:
    """A number or a list of numbers as a recur expression (inf, nan, -0.0 included)."""
    if isinstance(value, list):
        return json.dumps("[" + ", ".join(_number(v) for v in value) + "]")
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def check_everywhere(dtype: str, pairs: list[tuple[Any, Any]], steps_of: dict[str, str],
                     cuda: EmulatedCuda, steps: int = 2, initial: Any = None,
                     alone: int | None = None,
                     one_lane_engines: tuple[str, ...] = ENGINES_ONE_LANE) -> None:
    """All pairs as lanes on every engine, and `alone` of them (all if None) one by one,
    each on `one_lane_engines` and against its lane: the same bits or the same fault."""
    def text(va: Any, vb: Any) -> str:
        lanes = isinstance(va, list) and initial is not None
        return spec_text(dtype, {"va": va, "vb": vb}, steps_of, steps,
                         [initial] * len(va) if lanes else initial)

    together_text = text([a for a, _ in pairs], [b for _, b in pairs])
    together = {engine: run_on(engine, together_text, cuda) for engine in ENGINES_LANES}
    for engine in ENGINES_LANES[1:]:
        assert_same_bits(together[engine], together["interp"], f"{engine}, lanes")
    every = 1 if alone is None else max(1, len(pairs) // alone)
    faults = []
    for index in range(0, len(pairs), every):
        a, b = pairs[index]
        one_text = text(a, b)
        runs = {engine: run_on(engine, one_text, cuda) for engine in one_lane_engines}
        for engine in one_lane_engines[1:]:
            assert_same_bits(runs[engine], runs["interp"], f"{engine}, one lane {a!r}, {b!r}")
        faults.append(runs["interp"].fault)
        if together["interp"].fault is None:
            assert_same_bits(runs["interp"], lane(together["interp"], index),
                             f"alone and among lanes: {a!r}, {b!r}")
    if alone is None:
        first = min((t for t in faults if t is not None), default=None)
        assert together["interp"].fault == first


# --- edge values on a grid of pairs ----------------------------------------------------


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 1e308 as float32
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_float_edge_pairs_give_the_same_bits_on_every_engine(
        dtype: str, cuda_backend: EmulatedCuda) -> None:
    pairs = [(a, b) for a in FLOAT_EDGES for b in FLOAT_EDGES]
    steps_of = {f"y{k}": _taps(op) for k, op in enumerate(FLOAT_OPS)}
    check_everywhere(dtype, pairs, steps_of, cuda_backend, alone=12)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_integer_edge_pairs_give_the_same_bits_on_every_engine(
        dtype: str, cuda_backend: EmulatedCuda) -> None:
    edges = INT_EDGES[dtype]
    pairs = [(a, b) for a in edges for b in edges]
    check_everywhere(dtype, pairs, {f"y{k}": _taps(op) for k, op in enumerate(INT_OPS)},
                     cuda_backend, alone=8)


def _taps(expression: str) -> str:
    """`a`, `b` in an expression over the states' values -> their taps `a[t-1]`, `b[t-1]`."""
    return re.sub(r"\b([ab])\b", r"\1[t-1]", expression)


# --- random expressions ----------------------------------------------------------------


def _leaf(draw: Any, dtype: str) -> str:
    if dtype.startswith("float"):
        literals = ["0.0", "-0.0", "inf", "-inf", "nan", "1.5", "2", "3", "1e-310", "0.1"]
    else:
        literals = ["0", "1", "2", "3", "-1"]
    # a param is a weak Python number alone and an array among lanes: the same dtype
    # for float64 and int64 states, so the same bits are due
    params = ["va", "vb"] if dtype in ("float64", "int64") else []
    return draw(st.sampled_from(["a[t-1]", "b[t-1]", "y[t-1]", *params, *literals]))


def _expression(draw: Any, dtype: str, depth: int) -> str:
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return _leaf(draw, dtype)
    floats = dtype.startswith("float")
    kind = draw(st.sampled_from(["binary", "power", "call", "select", "unary"]))

    def sub() -> str:
        return _expression(draw, dtype, depth - 1)

    if kind == "binary":
        ops = ["+", "-", "*", "/", "//", "%"] if floats else ["+", "*"]
        return f"({sub()} {draw(st.sampled_from(ops))} {sub()})"
    if kind == "power":
        exponents = ["2", "3", "-1", "-2", "0", "4", "2.0", "-3.0"] if floats else ["2", "0"]
        return f"({sub()} ** {draw(st.sampled_from(exponents))})"
    if kind == "select":
        test = draw(st.sampled_from(["<", "<=", "==", "!=", ">", ">="]))
        return f"({sub()} if {sub()} {test} {sub()} else {sub()})"
    if kind == "unary":
        names = ["abs", "sign", "floor", "ceil", "trunc", "-"] if floats else ["abs", "sign"]
        name = draw(st.sampled_from(names))
        return f"(-{sub()})" if name == "-" else f"{name}({sub()})"
    name = draw(st.sampled_from(["min", "max", "minimum", "maximum", "clip", "where"]))
    if name == "clip":
        return f"clip({sub()}, {sub()}, {sub()})"
    if name == "where":
        return f"where({sub()} < {sub()}, {sub()}, {sub()})"
    count = draw(st.integers(2, 3)) if name in ("min", "max") else 2
    return f"{name}({', '.join(sub() for _ in range(count))})"


@st.composite
def random_specs(draw: Any) -> tuple[str, list[tuple[Any, Any]], dict[str, str]]:
    dtype = draw(st.sampled_from(["float64", "float32", "float64", "int64", "int32"]))
    edges = FLOAT_EDGES if dtype.startswith("float") else INT_EDGES[dtype]
    pairs = draw(st.lists(st.tuples(st.sampled_from(edges), st.sampled_from(edges)),
                          min_size=2, max_size=5))
    steps_of = {f"y{k}": _expression(draw, dtype, 3).replace("y[", f"y{k}[")
                for k in range(6)}
    return dtype, pairs, steps_of


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(random_specs())
def test_random_exact_expressions_give_the_same_bits_everywhere(
        cuda_backend: EmulatedCuda,
        case: tuple[str, list[tuple[Any, Any]], dict[str, str]]) -> None:
    dtype, pairs, steps_of = case
    note(f"{dtype} {pairs} {steps_of}")
    try:
        recur.check(recur.load(spec_text(dtype, {"va": 0, "vb": 0}, steps_of, 1, 1)))
    except recur.RecurError as error:
        if error.exit_code == 2:  # a float result for an integer output, say
            return
    check_everywhere(dtype, pairs, steps_of, cuda_backend, steps=4, initial=1,
                     one_lane_engines=("interp", "c-lane"))  # fewer compiles
