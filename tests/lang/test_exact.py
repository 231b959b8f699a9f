"""Exact operations give the same bits on every engine, for any lane count and --steps.

docs/spec.md ("The same bits on every engine") lists them. A spec is run one lane at a time (its
states single values: NumPy scalars in the interpreter, the lane dialect in C) and as
one lane among several (arrays; the array dialect), on every engine: the interpreter,
the C kernel in both dialects, and the CUDA kernel built by the host's compiler
(tests/support/cuda_emulator.py). Results are compared bit for bit: the sign of a zero counts,
and a NaN equals a NaN. Edge values (signed zeros, infinities, NaN, subnormals, values
near a dtype's limits) come on a grid of pairs and in random expressions. Every spec in
specs/ then runs under `--engine auto` with step counts on both sides of the point
where auto switches from the interpreter to the compiled engine. Last, each case of the
issue that asked for all this, against values worked out here by hand.
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
from recur import api
from recur.compile.analyze import analyze_spec
from recur.compile.lower import compile_spec
from recur.diagnostics import KernelFault
from recur.engine import plan, registry
from recur.engine.backend import NumpyBackend
from recur.engine.c import generate as codegen
from recur.engine.c import lanes as lanegen
from recur.engine.c import native
from recur.engine.c.engine import CEngine
from recur.engine.cuda import generate as cudagen
from recur.engine.cuda.engine import FusedEngine
from recur.engine.interp.engine import Interpreter
from recur.engine.protocol import Engine

ROOT = Path(__file__).resolve().parents[2]
INF, NAN = math.inf, math.nan
FLOAT_EDGES = [0.0, -0.0, INF, -INF, NAN, 5e-324, -2.2250738585072014e-308, 1.0, -1.0,
               0.5, -2.5, 3.0, 1.0834583425075237, 1e308, -1e-300, 16777217.0, 1e-160]


def float_edges(dtype: str) -> list[float]:
    """The edges as `dtype` holds them (1e308 is inf in float32, 1e-160 is 0): an initial
    that a float32 would store as inf is refused before the run."""
    with numpy.errstate(over="ignore"):
        return numpy.array(FLOAT_EDGES).astype(dtype).astype(float).tolist()


INT_EDGES = {"int64": [0, 1, -1, 2, -3, 7, -100, 1290, 2**31, -(2**31) - 1],
             "int32": [0, 1, -1, 2, -3, 7, -100, 1290, 46340, -46341]}
# Every exact operation on two states a, b (float dtypes); `%` and `//` included.
FLOAT_OPS = [
    "a + b", "a - b", "a * b", "a / b", "a // b", "a % b", "-a", "a ** 2", "a ** 3",
    "a ** -1", "a ** -2", "a ** 0", "a ** 2.0", "a ** 5", "a ** -3", "a ** 0.5", "min(a, b)",
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


def forced(kernel: Any, kind: type) -> Engine:
    """The engine `kind` with `kernel` made for it, whatever its own choice would be."""

    class Forced(kind):  # type: ignore[valid-type, misc]
        def make(self, program: Any) -> Any:
            return kernel

    return Forced()  # type: ignore[no-any-return]


def run_on(engine: str, text: str, cuda: EmulatedCuda) -> Ran:
    """The spec run on one engine, its kernel chosen by name (not by `auto`)."""
    spec = recur.load(text)
    backend = cuda if engine == "cuda" else NumpyBackend()
    compiled = compile_spec(spec, analyze_spec(spec), backend, NumpyBackend())
    program = compiled.program
    made = {"c-array": lambda: codegen.generate(program, numpy),
            "c-lane": lambda: lanegen.generate_host(program, numpy),
            "cuda": lambda: cudagen.generate(program, cuda.xp)}
    chosen: Engine = (Interpreter("cpu") if engine == "interp"
                      else forced(made[engine](), CEngine if engine != "cuda" else FusedEngine))
    try:
        outcome = plan.run_on(chosen, program, backend)
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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_float_edge_pairs_give_the_same_bits_on_every_engine(
        dtype: str, cuda_backend: EmulatedCuda) -> None:
    edges = float_edges(dtype)
    pairs = [(a, b) for a in edges for b in edges]
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
        exponents = (["2", "3", "-1", "-2", "0", "4", "2.0", "-3.0", "0.5"] if floats
                     else ["2", "0"])
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
    edges = float_edges(dtype) if dtype.startswith("float") else INT_EDGES[dtype]
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


# --- every example spec on both sides of auto's cut-over -------------------------------

SPECS = sorted(path.stem for path in (ROOT / "specs").glob("*.yaml"))
MAX_PROBED_STEPS = 10**6


def _engine_at(spec: recur.Spec, steps: int) -> str:
    return registry.choose(api.prepare(spec, steps=steps).program).engine.name


def cut_over(spec: recur.Spec, bound: int) -> int | None:
    """The fewest steps (up to `bound`) for which `auto` compiles, or None: the kernel
    is in the cache by then, as it is after a spec's first compiled run."""
    if _engine_at(spec, bound) == "interp":
        return None
    if _engine_at(spec, 1) == "compiled":  # a cached kernel is the cheaper from one step
        return 1
    low, high = 1, bound  # auto interprets `low` steps, compiles `high`
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _engine_at(spec, middle) == "interp" else (
            low, middle)
    return high


def _outcome(spec: recur.Spec, **options: Any) -> recur.Result | str:
    try:
        return recur.run(spec, **options)
    except recur.RecurError as error:
        return error.message


@pytest.mark.parametrize("name", SPECS)
def test_auto_gives_the_same_bits_below_and_above_its_cut_over(name: str) -> None:
    """What `--steps` makes auto pick must not change any value: the common prefix of a
    run just below the cut-over and one above agrees bit for bit, and each agrees with
    the other engine at the same step count (rnn's matrix product excepted: BLAS sums in
    its own order, docs/performance.md)."""
    spec = recur.load(ROOT / "specs" / f"{name}.yaml")
    recur.run(spec, engine="compiled", steps=1)  # in the cache, as after a first run
    try:
        bound = api.prepare(spec, steps=MAX_PROBED_STEPS).program.steps
    except recur.RecurError:  # its sequences allow fewer steps
        bound = api.prepare(spec).program.steps
    high = cut_over(spec, bound)
    steps = [bound] if high is None else [max(high - 1, 1), high]
    runs = {}
    for count in steps:
        auto = _outcome(spec, steps=count)
        chosen = auto.engine if isinstance(auto, recur.Result) else "interp"
        other = _outcome(spec, steps=count,
                         engine="interp" if chosen == "compiled" else "compiled")
        _agree(auto, other, exact=name != "rnn")
        runs[count] = auto
    below, above = runs[steps[0]], runs[steps[-1]]
    if high is None or high == 1 or isinstance(below, str) or isinstance(above, str):
        return  # one engine only, or an overflow reported alike (fibonacci)
    assert (below.engine, above.engine) == ("interp", "compiled")
    for output in below:
        if below.keeps[output] == "all":
            _agree(below[output], above[output][: high - 1], exact=name != "rnn")


def _agree(got: Any, want: Any, exact: bool) -> None:
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
    elif isinstance(want, recur.Result):
        assert list(got) == list(want)
        for output in want:
            _agree(got[output], want[output], exact)
    elif exact:
        assert_bits(got, want, "auto")
    else:
        numpy.testing.assert_allclose(got, want, rtol=1e-12)


# --- the cases of the issue, one by one --------------------------------------------------


def _all_engines(text: str, cuda: EmulatedCuda) -> dict[str, Ran]:
    spec = recur.load(text)
    lanes = any(len(o.shape) for o in api.prepare(spec).program.outputs)
    engines = ENGINES_LANES if lanes else ENGINES_ONE_LANE
    return {engine: run_on(engine, text, cuda) for engine in engines}


def test_a_square_is_one_correctly_rounded_product_everywhere(
        cuda_backend: EmulatedCuda) -> None:
    """The issue's repro: libm's pow gave ...507 for one value, a product ...504."""
    v = 1.0834583425075237
    expected = numpy.float64(v * v)  # Python's float product: correctly rounded
    assert repr(float(expected)) == "1.1738819799491504"
    for params in (f"{v!r}", f"[{v!r}, 0.5]"):
        text = (f"params: {{v: '{params}'}}\nsteps: 1\n"
                "outputs:\n  y: {initial: v, step: 'y[t-1] ** 2'}\n")
        for engine, ran in _all_engines(text, cuda_backend).items():
            assert ran.arrays is not None
            assert_bits(ran.arrays["y"][..., :1].reshape(1), numpy.array([expected]), engine)


@pytest.mark.parametrize("k", [3, 5, -1, -2, 0, 7])
def test_integer_powers_are_the_documented_chain(k: int, cuda_backend: EmulatedCuda) -> None:
    """x ** k as repeated squaring, most significant bit first, then 1/x**|k|."""
    values = [1.0834583425075237, -2.5, 0.1, 3.0000001, -0.0, 7e-100]

    def chain(x: float) -> float:
        if k == 0:
            return 1.0
        r = x
        for bit in bin(abs(k))[3:]:
            r = r * r
            if bit == "1":
                r = r * x
        with numpy.errstate(divide="ignore"):
            return r if k > 0 else float(numpy.float64(1.0) / numpy.float64(r))

    expected = numpy.array([chain(x) for x in values])
    text = (f"params: {{v: '{json.dumps(values)}'}}\nsteps: 1\n"
            f"outputs:\n  y: {{initial: v, step: 'y[t-1] ** ({k})'}}\n")
    for engine, ran in _all_engines(text, cuda_backend).items():
        assert ran.arrays is not None
        assert_bits(ran.arrays["y"][0], expected, engine)


ZERO_PAIRS = [(a, b) for a in (0.0, -0.0) for b in (0.0, -0.0, 1.0, -1.0, NAN)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_min_and_max_order_minus_zero_below_plus_zero(dtype: str,
                                                      cuda_backend: EmulatedCuda) -> None:
    """IEEE 754-2019 minimum/maximum: -0.0 < +0.0 and NaN wins, on every engine."""
    ops = {"lo": "min(a[t-1], b[t-1])", "hi": "max(a[t-1], b[t-1])",
           "lo2": "minimum(b[t-1], a[t-1])", "hi2": "maximum(b[t-1], a[t-1])",
           "c": "clip(a[t-1], b[t-1], 0.0)", "inv": "1 / max(a[t-1], 0.0)"}

    def ieee(a: float, b: float, largest: bool) -> float:
        if math.isnan(a) or math.isnan(b):
            return NAN
        if a == b == 0:
            signs = [math.copysign(1, a) < 0, math.copysign(1, b) < 0]
            return -0.0 if (all(signs) if largest else any(signs)) else 0.0
        return max(a, b) if largest else min(a, b)

    expected = {
        "lo": [ieee(a, b, False) for a, b in ZERO_PAIRS],
        "hi": [ieee(a, b, True) for a, b in ZERO_PAIRS],
        "c": [ieee(ieee(a, b, True), 0.0, False) for a, b in ZERO_PAIRS],
        "inv": [INF] * len(ZERO_PAIRS),  # the case: max(-0.0, 0.0) is +0.0
    }
    expected["lo2"], expected["hi2"] = expected["lo"], expected["hi"]
    check_everywhere(dtype, ZERO_PAIRS, ops, cuda_backend)
    text = spec_text(dtype, {"va": [a for a, _ in ZERO_PAIRS], "vb": [b for _, b in ZERO_PAIRS]},
                     ops, 1)
    ran = run_on("interp", text, cuda_backend)
    assert ran.arrays is not None
    for name, values in expected.items():
        assert_bits(ran.arrays[name][0], numpy.array(values, dtype=dtype), name)


def test_an_int_literal_outside_an_int32_operation_is_a_spec_error() -> None:
    text = "steps: 2\noutputs:\n  x: {dtype: int32, initial: 5, step: 'x[t-1] % 4294967296'}\n"
    for engine in ("interp", "compiled", "auto"):
        with pytest.raises(recur.RecurError) as error:
            recur.run(recur.load(text), engine=engine)
        assert error.value.exit_code == 2
        assert "integer literal 4294967296 does not fit int32" in error.value.message
        column = text.splitlines()[2].index("4294967296") + 1
        assert (error.value.span.line, error.value.span.col) == (3, column)
        assert "dtype: int64" in error.value.notes[0]
    wide = recur.run(recur.load(text.replace("int32", "int64")), engine="compiled")
    assert wide["x"].tolist() == [5 % 4294967296] * 2


def test_a_python_int_meets_float32_as_numpy_converts_it(cuda_backend: EmulatedCuda) -> None:
    """NumPy converts a Python int to float32 by way of a double: 2**60 + 2**36 + 1 is
    2**60 + 2**36 as a double, then a tie that rounds to even, 2**60; rounding once would
    give 2**60 + 2**37. A literal, and the same int computed from t, alike."""
    big = 2**60 + 2**36 + 1
    expected = numpy.float32(float(big))
    assert float(expected) == 2.0**60
    text = ("steps: 2\ndtype: float32\nparams: {v: '[1.0, 2.0]'}\noutputs:\n"
            f"  x: {{initial: v, step: 'x[t-1] * 0 + {big}'}}\n"
            f"  y: {{initial: v, step: 'y[t-1] * 0 + (t * 0 + {big - 1} + 1)'}}\n")
    for engine, ran in _all_engines(text, cuda_backend).items():
        assert ran.arrays is not None
        for name in ("x", "y"):
            assert_bits(ran.arrays[name], numpy.full((2, 2), expected), f"{engine} {name}")


@pytest.mark.parametrize("lanes", [1, 2, 3, 5, 8, 17])
def test_a_half_power_has_pows_special_values_in_every_lane(
        lanes: int, cuda_backend: EmulatedCuda) -> None:
    """C's pow(-inf, 0.5) is inf and pow(-0.0, 0.5) is +0.0, where sqrt gives NaN and
    -0.0: so on every engine, alone or in any lane (GCC's vectoriser made it sqrt for
    all lanes but the leftover ones, NumPy's array loop for all but single values)."""
    assert (math.pow(-INF, 0.5), math.copysign(1, math.pow(-0.0, 0.5))) == (INF, 1.0)
    values = [-INF, -0.0] * lanes
    for params in ([values[0]], [values[1]]) if lanes == 1 else (values[:lanes],):
        value = params[0] if lanes == 1 else params
        text = (f"steps: 1\nparams: {{v: {_number(value)}}}\n"
                "outputs:\n  x: {initial: v, step: 'x[t-1] ** 0.5'}\n")
        expected = numpy.array([INF if v == -INF else 0.0 for v in params])
        for engine, ran in _all_engines(text, cuda_backend).items():
            assert ran.arrays is not None
            assert_bits(ran.arrays["x"].reshape(-1), expected, engine)


def test_weak_numbers_take_the_arrays_power() -> None:
    """A scalar param is a Python number: `(-8.0) ** 0.5` is NaN as for an array (not
    Python's complex), and `0.0 ** -1` is inf (not Python's ZeroDivisionError)."""
    text = ("steps: 1\nparams: {{v: {}}}\noutputs:\n"
            "  x: {{initial: 1.0, step: 'x[t-1] * 0 + v ** 0.5 + (v + 8) ** -1'}}\n")
    alone = recur.run(recur.load(text.format("-8.0")), engine="interp")["x"]
    among = recur.run(recur.load(text.format("'[-8.0, 4.0]'")), engine="interp")["x"]
    assert math.isnan(alone[0]) and math.isnan(among[0, 0])
    assert among[0, 1] == 2.0 + 1 / 12


@pytest.mark.parametrize("step", ["k / 3", "(k > 9007199254740992.0) + 0.0"])
def test_weak_ints_beyond_2_53_round_as_int64_arrays_do(step: str) -> None:
    """NumPy rounds an int64 to a float64 before dividing or comparing it with a float;
    Python divides and compares exactly. A scalar param must give its lane's bits."""
    k = 2**53 + 1
    as_float = float(k)  # 2**53: the int rounded, as NumPy does
    expected = as_float / 3 if "/" in step else float(as_float > 9007199254740992.0)
    text = ("steps: 1\nparams: {{k: {}}}\noutputs:\n"
            f"  x: {{{{initial: 0.0, step: 'x[t-1] * 0 + {step}'}}}}\n")
    alone = recur.run(recur.load(text.format(k)), engine="interp")["x"]
    among = recur.run(recur.load(text.format(f"'[{k}, 1]'")), engine="interp")["x"]
    compiled = recur.run(recur.load(text.format(k)), engine="compiled")["x"]
    assert alone[0] == among[0, 0] == compiled[0] == expected


@pytest.mark.parametrize(("template", "number"), [
    ("maximum(x[t-1], {})", "t * 1000000000"), ("clip(x[t-1], 0, {})", "t * 1000000000"),
    ("x[t-1] % ({})", "t * 2000000000 + 1"), ("min(x[t-1], {})", "5 - t * 1100000000")])
def test_a_python_int_outside_int32_stops_every_engine_at_its_step(
        template: str, number: str, cuda_backend: EmulatedCuda) -> None:
    """An int computed from `t` meets an int32 state: NumPy refuses it at the first step
    where it leaves int32; the kernels, which work in int64, must stop there too rather
    than wrap."""
    t = [abs(eval(number, {"t": k})) > 2**31 - 1 for k in range(4)].index(True)
    step = template.format(number)
    text = f"steps: 4\noutputs:\n  x: {{dtype: int32, initial: 5, step: '{step}'}}\n"
    for engine, ran in _all_engines(text, cuda_backend).items():
        assert ran.fault == t, engine


def test_a_later_lane_that_faults_sooner_sets_the_step(cuda_backend: EmulatedCuda) -> None:
    """The CUDA kernel walks lanes in a grid-stride loop: a fault in one lane must not
    end the walk before a later lane that faults at an earlier step (found by the
    random test above: the emulator's one thread walks every lane)."""
    lanes = [2**60, 2**62]
    t = min(next(k for k in range(10) if v * 2 ** (k + 1) > 2**63 - 1) for v in lanes)
    assert t == 0
    text = (f"steps: 5\ndtype: int64\nparams: {{v: '{json.dumps(lanes)}'}}\n"
            "outputs:\n  x: {initial: v, step: 'x[t-1] * 2'}\n")
    for engine, ran in _all_engines(text, cuda_backend).items():
        assert ran.fault == t, engine
