"""Fuzzing the front end: YAML, expressions, `--set`, `--input` CSV and .npy, the CLI.

Every input, however broken, must end in a result or in a `RecurError` that renders as
one message; an error about the spec's text must point into that text. The strategies
build near-valid inputs from the grammar (so that most of them get past YAML and the
parser into name resolution, shapes, dtypes and the loop), then damage some of them.

These run on every change with modest `max_examples`; `fuzz/campaign.py` runs the
same kind of inputs, and coverage-guided random bytes, by the hundred thousand.
"""

from __future__ import annotations

import io
import json
import math
import re
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import recur
from recur import api
from recur.cli.main import cli
from recur.diagnostics import (
    ExprError,
    Origin,
    RecurError,
    RunError,
    SpecError,
    render,
    source_lines,
)
from recur.io.inputs import read_input
from recur.lang.functions import FUNCTIONS
from recur.lang.parse import parse_expression

FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))

# --- the oracle ------------------------------------------------------------------------

_LOCATED = re.compile(r"[^\n]*:(\d+):(\d+): error: ")
# Errors about the run, the machine or the whole file, not about a place in the spec,
# have no position.
_UNPLACED = ("of memory available", "has no state after 0 steps", "the spec is empty",
             "cannot read spec", "bytes; the limit is")


def wrong_with(error: RecurError) -> str | None:
    """What is wrong with how an error is reported, or None: one rendered message, and an
    error about the spec's text points into that text."""
    text = render(error)
    first = text.splitlines()[0]
    if "Traceback" in text or error.exit_code not in (1, 2):
        return f"traceback-or-exit-{error.exit_code}: {first}"
    if error.span is None:
        if not first.startswith("recur: error: "):
            return f"unrendered: {first}"
        if isinstance(error, SpecError | ExprError | RunError) and not any(
            reason in error.message for reason in _UNPLACED
        ):
            return f"no-position: {first}"
        return None
    if not _LOCATED.match(first):
        return f"not-located: {first}"
    if error.source is None:
        return f"no-source: {first}"
    lines = source_lines(error.source) or [""]
    if not 1 <= error.span.line <= len(lines):
        return f"line-out-of-range: line {error.span.line} of {len(lines)}: {first}"
    if not 1 <= error.span.col <= len(lines[error.span.line - 1]) + 2:
        return f"column-out-of-range: column {error.span.col}: {first}"
    return None


# Bugs found by fuzzing, outside the code this suite may change: each has a strict xfail
# test in tests/spec/test_hostile.py (named here) and is reported; fuzzing tolerates them so
# that it goes on finding others. Delete an entry when its bug is fixed.
KNOWN_BUGS: dict[str, Any] = {}


def known_bug(exc: BaseException, wrong: str | None = None) -> str | None:
    return next((name for name, test in KNOWN_BUGS.items() if test(exc, wrong)), None)


def signature(exc: BaseException) -> str:
    """A crash's identity: its type and the innermost frame of recur (or the last one)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/recur/" in f.filename.replace("\\", "/")]
    frame = (ours or frames or [None])[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    return f"{type(exc).__name__} at {where}"


def outcome(call: Any) -> str:
    """`result`, `error`, `known:NAME`, `bad-error:WHAT` or `crash:SIGNATURE`."""
    try:
        call()
    except RecurError as error:
        wrong = wrong_with(error)
        if wrong is None:
            return "error"
        known = known_bug(error, wrong)
        return f"known:{known}" if known else f"bad-error:{wrong}"
    except Exception as exc:  # RecursionError, MemoryError, anything: a crash
        known = known_bug(exc)
        if known:
            return f"known:{known}"
        return f"crash:{signature(exc)}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    return "result"


def assert_clean(call: Any) -> None:
    got = outcome(call)
    note(got)
    assert not got.startswith(("crash:", "bad-error:")), got


def assert_clean_error(error: RecurError) -> None:
    wrong = wrong_with(error)
    assert wrong is None or known_bug(error, wrong), wrong


def run_capped(spec: Any, **arguments: Any) -> Any:
    """Run a spec, at most a few steps of it: a fuzzed `steps: 10**9` is not a finding."""
    compiled = api.prepare(spec, **arguments)
    lanes = sum(math.prod(output.shape) for output in compiled.outputs) or 1
    cap = max(0, min(compiled.program.steps, 20, 10**6 // lanes))
    steps = cap if cap < compiled.program.steps else None
    return recur.run(spec, steps=steps, **arguments)


def exercise(text: str, **arguments: Any) -> None:
    assert_clean(lambda: run_capped(recur.load(text, path="fuzz.yaml"), **arguments))


# --- expressions -----------------------------------------------------------------------

NAMES = [
    "a", "b", "n", "v", "s", "s[t+1]", "s[t-1]", "x[t-1]", "x[t-2]", "y[t]", "y[t-1]",
    "t", "steps", "pi", "e", "inf", "nan", "True", "False",
]
NUMBERS = [
    "0", "1", "2", "3", "-1", "0.5", "1.5", "1e-3", "1e308", "1j", "9223372036854775807",
    "2147483647", "3037000500", "64", "0.1",
]
HOSTILE = [
    "__import__", "__import__('os')", "x.real", "a.__class__", "a.__class__.__mro__",
    "'text'", "f'{a}'", "'{0.__class__}'.format(a)", "b'x'", "None", "...", "lambda: 1",
    "{1: 2}", "{1}", "[i for i in s]", "(i for i in s)", "(q := 1)", "*s", "open('x')",
    "eval('1')", "globals()", "getattr(a, 'b')", "zz", "sin", "x", "y", "10**10**10",
    "9223372036854775808", "1e999", "0x10", "1_000", "a & b", "~a", "a in s", "a is b",
    "sum(a, key=1)", "sum(**a)", "sin(*a)", "x[t+1]", "x[t-100000]", "s[t+2000000]", "s[0]",
    "x[0]", "zeros(10**12)", "arange(1e15)", "eye(10**6)", "linspace(0, 1, 10**10)",
    "full((10**5, 10**5), 1)", "reshape(a, (-1,))",
]
BINARY = ["+", "-", "*", "/", "//", "%", "**", "@", "<", "<=", "==", "!=", ">", ">=",
          "and", "or"]
UNARY = ["-", "+", "not "]
CALLED = [*sorted(FUNCTIONS), "zz", "x", "print"]
AXES = ["", "", "", ", axis=0", ", axis=-1", ", axis=(0, 1)", ", axis=a", ", axis=1.5"]
INDEXES = ["[0]", "[-1]", "[1:]", "[::-1]", "[:, 0]", "[[0, 1]]", "[a]", "[0, 0]", "[t]",
           "[t-1]", "[1:2:0]", "[True]"]
DAMAGE = list("()[],:.+-*/%<>=!'\"#@&|^~\\ \t\n{}0a_α")

def chance(draw: st.DrawFn, percent: int) -> bool:
    """True about `percent` times in a hundred. Hypothesis favours the ends of a range
    (0 and the maximum), so the window sits in its middle, away from both."""
    return 30 <= draw(st.integers(0, 99)) < 30 + percent


def _call(parts: tuple[str, list[str], str]) -> str:
    function, args, axis = parts
    return f"{function}({', '.join(args)}{axis})"


def expression_texts(names: list[str]) -> st.SearchStrategy[str]:
    """Expressions of the grammar over `names`: mostly names and small numbers, so that
    most get past the parser and the name checks into evaluation, and a hostile atom in
    about one leaf in thirty."""
    def atom(k: int) -> st.SearchStrategy[str]:
        if 30 <= k < 33:
            return st.sampled_from(HOSTILE)
        if k < 60:
            return st.sampled_from(names)
        if k < 90:
            return st.sampled_from(NUMBERS)
        if k < 95:
            return st.integers(-(2**63), 2**63 - 1).map(str)
        return st.floats(allow_nan=False, allow_infinity=False).map(repr)

    atoms = st.integers(0, 99).flatmap(atom)
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            *[st.tuples(inner, st.sampled_from(BINARY), inner).map(" ".join)] * 4,
            st.tuples(st.sampled_from(UNARY), inner).map("".join),
            inner.map(lambda text: f"({text})"),
            *[st.tuples(st.sampled_from(CALLED), st.lists(inner, min_size=1, max_size=3),
                        st.sampled_from(AXES)).map(_call)] * 2,
            st.tuples(inner, st.sampled_from(INDEXES)).map("".join),
            st.tuples(inner, inner, inner).map(lambda p: f"{p[0]} if {p[1]} else {p[2]}"),
            st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]}, {p[1]})"),
        ),
        max_leaves=8,
    )


expressions = expression_texts(NAMES)
param_expressions = expression_texts(["a", "b", "n", "v", "pi", "e", "inf", "nan", "True"])


@st.composite
def damaged(draw: st.DrawFn, text: st.SearchStrategy[str]) -> str:
    """Text, left whole most of the time, else with a character cut, added or the end lost."""
    value = draw(text)
    if not value or not chance(draw, 8):
        return value
    how = draw(st.sampled_from(["cut", "add", "truncate"]))
    at = draw(st.integers(0, len(value) - 1))
    if how == "cut":
        return value[:at] + value[at + 1:]
    if how == "add":
        return value[:at] + draw(st.sampled_from(DAMAGE)) + value[at:]
    return value[:at]


near_expressions = damaged(expressions)
near_param_expressions = damaged(param_expressions)


# --- specs -----------------------------------------------------------------------------


def _scalar(text: str, style: str, indent: int) -> str:
    """`text` as a YAML scalar in one of its styles (plain may well break the YAML)."""
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    if style == "double":
        return json.dumps(text, ensure_ascii=False)
    if style == "block":
        pad = " " * indent
        return "|\n" + "\n".join(pad + line for line in (text.splitlines() or [""]))
    return text


def middle(common: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    """One of `common`, or now and then one of `odd`, kept away from the ends of the list
    that Hypothesis favours."""
    half = len(common) // 2
    return st.sampled_from([*common[:half] * 3, *odd, *common[half:] * 3])


@st.composite
def values(draw: st.DrawFn, indent: int, names: list[str]) -> str:
    """A param or an initial: a number, a list, an expression over `names`, or `input`."""
    kind = draw(middle(["number", "list", "expression"], ["input"]))
    if kind == "number":
        return draw(st.sampled_from(NUMBERS))
    if kind == "list":
        items = draw(st.lists(middle(NUMBERS[:8], ["[1, 2]", "a", "'a + 1'"]), max_size=4))
        return "[" + ", ".join(items) + "]"
    if kind == "input":
        return "input"
    text = draw(damaged(expression_texts([*names, "pi", "e", "inf", "nan", "True"])))
    return _scalar(text, draw(STYLES), indent)


STYLES = middle(["single", "single", "double", "block"], ["plain"])
YAML_DAMAGE = [
    "&anchor [1, 2]", "*anchor", "!!python/object/apply:os.system ['echo hi']", "? [a]",
    "\t- x", "<<: *anchor", "---", "%YAML 1.1", "x: !!binary aGk=", "- 1", "{", "]",
    "steps: 2\nsteps: 3", "outputs: {}", "outputs: [x]", "extra: 1", "params: input",
]
SEQUENCES = ["arange(n + 1)", "linspace(0, 1, 8)", "[1, 2, 3, 4, 5]", "v", "b",
             "'[[1, 2], [3, 4], [5, 6]]'", "arange(6) * a"]


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    """A spec that mostly makes sense: params a, b, n, v in order, a sequence s, outputs x
    and y whose steps read them; then, now and then, a line dropped, doubled or added."""
    lines: list[str] = ["params:"]
    earlier: list[str] = []
    for name in ["a", "b", "n", "v"]:
        if not chance(draw, 5):
            lines.append(f"  {name}: {draw(values(4, earlier))}")
            earlier.append(name)
    if not chance(draw, 30):
        sequence = draw(middle(SEQUENCES, ["input", "3"])) if not chance(draw, 15) else (
            draw(values(4, earlier)))
        lines += ["sequences:", f"  s: {sequence}"]
    lines.append("outputs:")
    for name in draw(st.lists(st.sampled_from(["x", "y"]), unique=True, min_size=1)):
        lines.append(f"  {name}:")
        lines.append(f"    step: {_scalar(draw(near_expressions), draw(STYLES), 6)}")
        if not chance(draw, 15):
            lines.append(f"    initial: {draw(values(6, earlier))}")
        if chance(draw, 8):
            lines.append(f"    taps: {draw(middle(['[-1]', '[-2, -1]'], ['[0]', '1']))}")
        if chance(draw, 30):
            dtypes = ["float64", "float32", "int32", "int64", "bool", "complex128"]
            lines.append(f"    dtype: {draw(middle(dtypes, ['int8']))}")
        if chance(draw, 20):
            lines.append(f"    keep: {draw(middle(['all', 'last', 'none'], ['some']))}")
    if not chance(draw, 10):
        steps = middle(["0", "1", "3", "n", "n + 1", "2"], ["1e3", "-1", "10**18", "a", "'2'"])
        lines.append(f"steps: {draw(steps)}")
    if chance(draw, 20):
        dtypes = ["int64", "float32", "bool", "int32", "complex128", "float64"]
        lines.append(f"dtype: {draw(middle(dtypes, ['nope']))}")
    if chance(draw, 15):
        lines.append(f"reverse: {draw(middle(['true', 'false'], ['1']))}")
    if chance(draw, 15):
        lines.append(f"until: {_scalar(draw(near_expressions), 'single', 2)}")
    if chance(draw, 10):
        how = draw(st.sampled_from(["drop", "duplicate", "insert"]))
        at = draw(st.integers(0, len(lines) - 1))
        if how == "drop":
            del lines[at]
        elif how == "duplicate":
            lines.insert(at, lines[at])
        else:
            lines.insert(at, draw(st.sampled_from(YAML_DAMAGE)))
    return "\n".join(lines) + "\n"


INPUT_ARRAYS = [
    np.arange(5), np.array([1.5, np.nan, -np.inf]), np.zeros((3, 2)),
    np.array([2**31 - 1, 5], dtype=np.int32), np.array([True, False]), np.array(7.0),
    np.array([1 + 2j, 3j]), np.empty((0,)),
]


def _inputs_for(text: str, choice: int) -> dict[str, np.ndarray]:
    """Arrays for whatever the spec declares `input` (a guess from its text)."""
    names = re.findall(r"^\s*([abns]): input\s*$", text, flags=re.MULTILINE)
    return {name: INPUT_ARRAYS[(choice + i) % len(INPUT_ARRAYS)]
            for i, name in enumerate(names)}


# --- tests: expressions and specs ---------------------------------------------------------


@settings(FUZZ, max_examples=300)
@given(st.lists(st.one_of(
    st.sampled_from(list("xst0123456789+-*/%()[],.:<>=!ab _'\"@~&|^\n\tα")),
    st.sampled_from(["x[t-1]", "x[t]", "s[t+1]", "t", "steps", "sin(", "sum(", "axis=",
                     " if ", " else ", " and ", " not ", "lambda", "__import__", ".real",
                     "**", "//", "1e3", "[", "]", ","]),
), max_size=30).map("".join))
def test_parser_gives_a_tree_or_a_positioned_error(text: str) -> None:
    try:
        parse_expression(text, Origin("spec.yaml", 1, 1))
    except RecurError as error:
        assert error.span is not None
        error.source = text
        assert_clean_error(error)


@settings(FUZZ, max_examples=400)
@given(near_expressions)
def test_grammar_expressions_parse_or_fail_at_a_position(text: str) -> None:
    try:
        parse_expression(text, Origin("spec.yaml", 1, 1))
    except RecurError as error:
        assert isinstance(error, ExprError)
        error.source = text
        assert_clean_error(error)


STEP_SPEC = """\
params:
  a: 2
  b: [1.0, 2.0, 3.0]
  n: 3
  v: arange(3)
sequences:
  s: linspace(0, 1, 8)
steps: 4
dtype: {dtype}
outputs:
  x:
    initial: [0, 1]
    step: {step}
  y:
    initial: 1
    step: y[t-1] + 1
"""


def step_spec(text: str, dtype: str = "float64") -> str:
    """A spec whose output x steps by the expression `text` (fuzz/campaign.py's too)."""
    return STEP_SPEC.format(dtype=dtype, step=_scalar(text, "single", 6))


@settings(FUZZ, max_examples=250)
@given(near_expressions, st.sampled_from(["float64", "int64", "int32", "bool", "complex128"]))
def test_grammar_expressions_in_a_step_run_or_fail_cleanly(text: str, dtype: str) -> None:
    exercise(step_spec(text, dtype))


@pytest.mark.slow
@settings(FUZZ, max_examples=200)
@given(spec_texts(), st.integers(0, 7), st.booleans())
def test_near_valid_specs_run_or_fail_cleanly(text: str, choice: int, check: bool) -> None:
    exercise(text, inputs=_inputs_for(text, choice), check=check)


SPEC_LINES = st.sampled_from([
    "outputs:", "  x:", "    step: ", "    initial: 0", "    initial: [0, 1]", "steps: 3",
    "sequences:", "  s: arange(5)", "params:", "  a: 2", "    dtype: int32", "until: ",
    "reverse: true", "    keep: last", "    taps: [-1]", "  y: {step: 'x[t]'}", "- 1", "&a",
])
EXPRESSION_WORDS = st.sampled_from([
    "x[t-1]", "x[t]", "s[t+1]", "t", "steps", "sin(", "sum(", "axis=", " if ", " else ",
    " and ", " not ", "lambda", "__import__", ".real", "**", "//", "1e3", "[", "]", ",",
])


@settings(FUZZ, max_examples=150)
@given(st.lists(st.tuples(SPEC_LINES, st.one_of(st.just(""), EXPRESSION_WORDS)), max_size=12))
def test_spec_lines_in_any_order_run_or_fail_cleanly(lines: list[tuple[str, str]]) -> None:
    exercise("\n".join(line + extra for line, extra in lines) + "\n")


# --- --set ---------------------------------------------------------------------------------

SET_SPEC = """\
params:
  a: 2
  b: a * 2
  v: arange(3)
steps: 3
outputs:
  x:
    initial: 0
    step: x[t-1] + a + b + sum(v)
"""


@settings(FUZZ, max_examples=250)
@given(st.sampled_from(["a", "b", "v"]), near_expressions)
def test_set_expressions_run_or_fail_cleanly(name: str, text: str) -> None:
    spec = recur.load(SET_SPEC, path="set.yaml")
    assert_clean(lambda: run_capped(spec, params={name: text}))


# --- --input: CSV and .npy -----------------------------------------------------------------

TITLES = ["x", "x", "x[0]", "x[1]", '"x[0,0]"', '"x[0,1]"', '"x[1,0]"', "y", "y[0]", " x ",
          "x[]", "x[-1]", "x[99999999999999999999]", "1x", "", "x[0][1]", "x[ 1 ]"]
CELLS = ["0", "1", "-7", "1.5", "nan", "-inf", "1e999", "true", "False", "(1+2j)", "1j", "",
         " ", "abc", '"1,2"', '""', "9223372036854775808", "0x10", "1_0", "NaN", "+3",
         '"a\nb"', "1" * 30, "١", "\x00", '"', "x[0]"]


@st.composite
def csv_texts(draw: st.DrawFn) -> bytes:
    titles = draw(st.lists(st.sampled_from(TITLES), min_size=1, max_size=5))
    width = len(titles)
    rows = draw(st.lists(
        st.lists(st.sampled_from(CELLS), min_size=max(width - 1, 0), max_size=width + 1)
        .filter(lambda row: True), max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = end.join([",".join(titles), *(",".join(row) for row in rows)])
    if draw(st.booleans()):
        text += end
    data = text.encode()
    if chance(draw, 10):
        data = b"\xef\xbb\xbf" + data
    if chance(draw, 10):
        data = data + draw(st.binary(max_size=8))
    return data


def load_input(data: bytes, name: str = "x") -> np.ndarray:
    """`--input NAME=-`: an array in one of recur's dtypes, or one clean error about it."""
    try:
        array = read_input(name, "-", io.BytesIO(data))
    except RecurError as error:
        message = render(error)
        assert message.startswith(f"recur: error: --input {name}=-: "), message
        assert "\n" not in error.message, error.message
        raise
    assert isinstance(array, np.ndarray)
    assert array.dtype.name in ("bool", "int32", "int64", "float32", "float64", "complex128")
    return array


def assert_input_or_clean_error(data: bytes, name: str = "x") -> None:
    assert_clean(lambda: load_input(data, name))


@settings(FUZZ, max_examples=400)
@given(csv_texts(), st.sampled_from(["x", "y", "z"]))
def test_csv_inputs_load_or_fail_cleanly(data: bytes, name: str) -> None:
    assert_input_or_clean_error(data, name)


npy_arrays = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes(),
                    hnp.array_dtypes(max_size=2)),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)


@st.composite
def npy_bytes(draw: st.DrawFn) -> bytes:
    """A saved array, then truncated, with a byte changed, or its header's shape changed."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # "Stored array in format 3.0": a new-enough reader
        warnings.simplefilter("ignore", UserWarning)
        np.save(buffer, draw(npy_arrays), allow_pickle=False)
    data = buffer.getvalue()
    how = draw(st.sampled_from(["whole", "truncate", "flip", "shape", "pickle"]))
    if how == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if how == "flip":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    if how == "shape":
        shape = draw(st.sampled_from(["(10**12,)", "(1000000000000,)", "(-1,)", "(2, 2)",
                                      "(4611686018427387904,)", "(1099511627776, 1024)", "()"]))
        return re.sub(rb"'shape': \([^)]*\)", f"'shape': {shape}".encode(), data, count=1)
    if how == "pickle":
        buffer = io.BytesIO()
        np.save(buffer, np.array([1, "a", None], dtype=object), allow_pickle=True)
        return buffer.getvalue()
    return data


@settings(FUZZ, max_examples=300)
@given(npy_bytes())
def test_npy_inputs_load_or_fail_cleanly(data: bytes) -> None:
    assert_input_or_clean_error(data)


@settings(FUZZ, max_examples=150)
@given(st.binary(max_size=64).map(lambda tail: b"PK\x03\x04" + tail))
def test_npz_garbage_fails_cleanly(data: bytes) -> None:
    assert_input_or_clean_error(data)


# --- the command line, end to end --------------------------------------------------------------

SET_OPTIONS = ["a=1", "a=", "=1", "a", "a==1", " a = 2", "zz=1", "a=__import__('os')",
               "a=x.real", "a=10**10**10", "b=a*", "a=(", "a=1\n2", "v=[1, 2]", "a=zeros(10**12)"]
STEPS_OPTIONS = ["0", "3", "-1", "1e3", "x", "7", ""]


@settings(FUZZ, max_examples=60)
@given(st.sampled_from([SET_SPEC, *(path.read_text() for path in
                                    sorted(Path(__file__).resolve().parents[2]
                                           .glob("specs/*.yaml")))]),
       st.lists(st.sampled_from(SET_OPTIONS), max_size=2),
       st.sampled_from(STEPS_OPTIONS), csv_texts(), st.booleans(), st.booleans())
def test_command_line_ends_in_a_status_never_a_traceback(
    tmp_path_factory: Any, text: str, sets: list[str], steps: str, csv: bytes,
    with_input: bool, check: bool,
) -> None:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "spec.yaml").write_text(text)
    (folder / "in.csv").write_bytes(csv)
    args = ["run", str(folder / "spec.yaml"), "--steps", steps]
    for option in sets:
        args += ["--set", option]
    if with_input:
        name = "s" if "sequences:" in text else "a"
        args += ["--input", f"{name}={folder / 'in.csv'}"]
    if check:
        args.append("--check")
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception
    )
    assert result.exit_code in (0, 1, 2)
    assert "Traceback" not in result.output
    if result.exit_code:
        assert "error:" in result.stderr.splitlines()[0]
