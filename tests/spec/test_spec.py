"""Spec loading: structure checks, and error positions for every YAML scalar style."""

from __future__ import annotations

import math
import struct

import pytest

import recur
from recur.compile.analyze import INITIAL_REACH
from recur.diagnostics import RecurError, render
from recur.lang.functions import FUNCTIONS_LISTED, MISSING_FUNCTIONS
from recur.spec.load import FLOW_COMMA_NOTE


def error_of(text: str) -> RecurError:
    with pytest.raises(RecurError) as caught:
        recur.load(text, path="spec.yaml")
    return caught.value


def caret_column(rendered: str) -> int:
    """The 1-based column of the caret in the rendered source line (indent 4 stripped)."""
    caret_line = rendered.splitlines()[2]
    return caret_line.index("^") - 4 + 1


@pytest.mark.parametrize(
    ("step_line", "line", "col"),
    [
        ("    step: x[t-1] + yy\n", 4, 20),
        ('    step: "x[t-1] + yy"\n', 4, 21),
        ("    step: 'x[t-1] + yy'\n", 4, 21),
        ("    step: |\n      x[t-1]\n        + yy\n", 6, 11),
    ],
    ids=["plain", "double_quoted", "single_quoted", "block"],
)
def test_unknown_name_points_at_the_name(step_line: str, line: int, col: int) -> None:
    error = error_of("outputs:\n  x:\n    initial: 0\n" + step_line)
    assert error.message == "unknown name 'yy' in the step of output 'x'"
    assert error.span is not None
    assert (error.span.line, error.span.col) == (line, col)
    assert caret_column(render(error)) == col


def test_escaped_quoted_scalar_points_at_its_start_with_no_inner_caret() -> None:
    error = error_of('outputs:\n  x:\n    initial: 0\n    step: "x[t-1] + \\u0079y"\n')
    assert error.span is not None
    assert (error.span.line, error.span.col) == (4, 11)


def test_non_ascii_names_count_characters() -> None:
    error = error_of("outputs:\n  x:\n    initial: 0\n    step: x[t-1] + é + zz\n")
    assert error.span is not None and error.span.col == 20  # 'é', the first unknown


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("outputs:\n  x: {step: 1}\nfoo: 1\n", "unknown top-level key 'foo'"),
        ("outputs:\n  x: {step: 1, intial: 0}\n", "unknown output key 'intial'"),
        ("steps: 3\n", "no 'outputs'"),
        ("outputs: {}\n", "'outputs' is empty"),
        ("outputs:\n  x: {initial: 0}\n", "has no 'step'"),
        ("outputs:\n  x: 1\n", "must be a mapping"),
        ("outputs:\n  sin: {step: 1}\n", "is a function"),
        ("outputs:\n  t: {step: 1}\n", "reserved"),
        ("params:\n  x: 1\noutputs:\n  x: {step: 1}\n", "declared twice"),
        ("outputs:\n  x: {step: 1, dtype: float16}\n", "unknown dtype 'float16'"),
        ("outputs:\n  x: {step: 1, keep: some}\n", "unknown keep 'some'"),
        ("outputs:\n  x: {step: 1, taps: [1]}\n", "is not negative"),
        ("outputs:\n  x: {step: 'sin(t)', initial: 0, taps: [-1, -1]}\n", "listed twice"),
        ("reverse: maybe\noutputs:\n  x: {step: 1}\n", "expected true or false"),
        ("outputs:\n  x: {step: 1}\n  x: {step: 2}\n", "duplicate output name 'x'"),
        ("params:\n  a: &v [1, 2]\n  b: *v\noutputs:\n  x: {step: a}\n", "aliases"),
        ("outputs:\n  x: [\n", "invalid YAML"),
        ("- 1\n- 2\n", "must be a YAML mapping"),
        ("outputs:\n  x: {step: x}\n", "needs a time index"),
        ("outputs:\n  x: {step: 'x[t-1]'}\n", "has no 'initial'"),
        ("outputs:\n  x: {step: 'x[t-1]', initial: 0, taps: [-2, -1]}\n", "declares taps"),
        ("outputs:\n  x: {step: 'y[t]'}\n  y: {step: 'x[t]'}\n", "cycle: x -> y -> x"),
        ("outputs:\n  x: {step: 'x[t+1]', initial: 0}\n", "must be read as x[t-k]"),
        ("sequences:\n  s: [1]\noutputs:\n  x: {step: 's[0]'}\n", "must be read as s[t+k]"),
        ("outputs:\n  x: {step: 'sine(t)'}\n", "did you mean 'sin'?"),
        ("outputs:\n  x: {step: 'sin(t, t)'}\n", "takes 1 argument"),
        ("outputs:\n  x: {step: 'sin(t, axis=0)'}\n", "takes no 'axis='"),
        ("params:\n  a: t\noutputs:\n  x: {step: a}\n", "defined only in steps"),
        ("params:\n  a: b\n  b: 1\noutputs:\n  x: {step: a}\n", "unknown name 'b'"),
    ],
)
def test_structure_and_name_errors(text: str, fragment: str) -> None:
    error = error_of(text)
    assert fragment in render(error)
    assert error.exit_code == 2


def test_unknown_key_lists_the_valid_keys() -> None:
    rendered = render(error_of("outputs:\n  x: {step: 1}\nsteps_: 3\n"))
    assert "did you mean 'steps'?" in rendered
    assert "valid keys: description, params" in rendered


def test_bare_output_suggests_both_reads() -> None:
    rendered = render(error_of("outputs:\n  x: {step: 'x + 1', initial: 0}\n"))
    assert "x[t-1]" in rendered and "x[t]" in rendered


def test_missing_file_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(RecurError, match="cannot read spec"):
        recur.load("does/not/exist.yaml")


def test_a_repeated_tap_is_refused_at_its_second_place() -> None:
    error = error_of("outputs:\n  x:\n    initial: [1.0, 2.0]\n    step: x[t-1] + x[t-2]\n"
                     "    taps: [-2, -1, -2]\n")
    assert error.message == "tap -2 is listed twice"
    assert error.span is not None and (error.span.line, error.span.col) == (5, 20)
    assert error.notes == ("spec.yaml:5:12: first listed here",)


@pytest.mark.parametrize(("text", "line", "col"), [
    ("params: {a: linspace(1.0, 1.4, 20), b: 0.3}\noutputs:\n  x: {step: a}\n", 1, 21),
    ("outputs:\n  x: {step: 'x[t-1]', initial: [max(1, 2), 3]}\n", 2, 36),
])
def test_an_expression_cut_at_a_flow_comma_says_why(text: str, line: int, col: int) -> None:
    error = error_of(text)
    assert error.message == "syntax error: '(' was never closed"
    assert error.span is not None and (error.span.line, error.span.col) == (line, col)
    assert error.notes == (FLOW_COMMA_NOTE,)


def test_a_quoted_or_block_expression_with_commas_is_whole() -> None:
    for text in ("params: {a: 'linspace(1.0, 1.4, 3)', b: 0.3}\n",
                 "params:\n  a: linspace(1.0, 1.4, 3)\n  b: 0.3\n"):
        result = recur.run(recur.load(text + "steps: 1\noutputs:\n  x: {step: a + b}\n"))
        assert result["x"].tolist() == [[1.0 + 0.3, 1.2 + 0.3, 1.4 + 0.3]]


@pytest.mark.parametrize("step", ["'x[t-1] +* 1'", "t +* 1"])
def test_a_syntax_error_elsewhere_gets_no_flow_note(step: str) -> None:
    error = error_of(f"outputs:\n  x: {{step: {step}, initial: 0}}\n")
    assert error.message.startswith("syntax error")
    assert error.notes == ()


INITIAL_FROM_PRICES = """\
{reverse}sequences:
  price: [10.0, 11.0, 12.5, 12.0]
outputs:
  ema:
    initial: {initial}
    step: 0.5 * ema[t-1] + 0.5 * price[t]
"""


@pytest.mark.parametrize(("initial", "first"), [
    ("price[0]", 10.0), ("mean(price)", (10.0 + 11.0 + 12.5 + 12.0) / 4),
    ("price[-1] * 2", 24.0),
])
@pytest.mark.parametrize("reverse", [False, True])
def test_an_initial_reads_sequences_as_given(initial: str, first: float,
                                             reverse: bool) -> None:
    """Whole or indexed, before `reverse` turns them around (a value from outside the loop)."""
    prices = [10.0, 11.0, 12.5, 12.0]
    text = INITIAL_FROM_PRICES.format(reverse="reverse: true\n" if reverse else "",
                                      initial=initial)
    expected, state = [], first
    for price in (prices[::-1] if reverse else prices):
        state = 0.5 * state + 0.5 * price
        expected.append(state)
    assert recur.run(recur.load(text))["ema"].tolist() == expected


@pytest.mark.parametrize(("initial", "message", "col"), [
    ("ema[t-1]", "unknown name 'ema' in the initial of output 'ema'", 14),
    ("price[t]", "'t' is defined only in steps and 'until' in the initial of output 'ema'", 20),
    ("prices[0]", "unknown name 'prices' in the initial of output 'ema'", 14),
    ("steps * 1.0", "'steps' is defined only in steps and 'until' in the initial of output "
     "'ema'", 14),
])
def test_what_an_initial_cannot_read_is_named_with_what_it_may(
        initial: str, message: str, col: int) -> None:
    error = error_of(INITIAL_FROM_PRICES.format(reverse="", initial=initial))
    assert error.message == message
    assert error.span is not None and (error.span.line, error.span.col) == (5, col)
    assert error.notes[-1] == INITIAL_REACH


@pytest.mark.parametrize(("step", "notes"), [
    ("sqr(t)", ("did you mean 'sqrt'?", FUNCTIONS_LISTED)),
    ("random()", (MISSING_FUNCTIONS["random"], FUNCTIONS_LISTED)),
    ("float(t)", (MISSING_FUNCTIONS["float"], FUNCTIONS_LISTED)),
])
def test_an_unknown_function_says_where_the_functions_are(step: str,
                                                          notes: tuple[str, ...]) -> None:
    error = error_of(f"outputs:\n  x:\n    step: {step}\n")
    assert error.message == f"unknown function '{step.split('(')[0]}' in the step of output 'x'"
    assert error.notes == notes
    assert "int64(x)" in MISSING_FUNCTIONS["float"] and "uniform()" in MISSING_FUNCTIONS["rand"]


@pytest.mark.parametrize(("keep", "last", "why"), [
    ("", True, "--last keeps"), ("    keep: last\n", False, "'keep: last' keeps")])
def test_zero_steps_kept_last_without_an_initial_is_a_usage_error_at_the_output(
        keep: str, last: bool, why: str) -> None:
    spec = recur.load(f"outputs:\n  y:\n    step: t * 2.0\n{keep}  x:\n    step: t * 2.0\n"
                      f"    initial: 1.5\n{keep}", path="spec.yaml")
    with pytest.raises(RecurError) as caught:
        recur.run(spec, steps=0, last=last)
    assert caught.value.exit_code == 2
    assert caught.value.message == "output 'y' has no state after 0 steps: it has no 'initial'"
    assert caught.value.span is not None
    assert (caught.value.span.line, caught.value.span.col) == (2, 3)
    assert caught.value.notes[0].startswith(why)
    unread = recur.load(f"outputs:\n  x:\n    step: t * 2.0\n    initial: 1.5\n{keep}")
    with pytest.raises(RecurError) as caught:
        recur.run(unread, steps=0, last=last)
    assert caught.value.exit_code == 2
    assert caught.value.message == ("output 'x' has no state after 0 steps: its 'initial' "
                                    "is kept only where a step reads x[t-k]")
    read = recur.load(f"outputs:\n  x:\n    step: x[t-1] * 2.0\n    initial: 1.5\n{keep}")
    assert recur.run(read, steps=0, last=last)["x"].tolist() == 1.5


# The smallest magnitude float32 rounds to inf, from its format: the largest float32,
# (2 - 2**-23) * 2**127, plus half its last place (a tie, which rounds to the even inf).
FLOAT32_INF_FROM = 2.0**128 - 2.0**103


@pytest.mark.parametrize("value", [1e308, -1e39, FLOAT32_INF_FROM, -FLOAT32_INF_FROM,
                                   float.fromhex("0x1.fffffefffffffp+127"), 3.4e38,
                                   float("inf"), float("-inf"), float("nan")])
def test_an_initial_that_float32_would_store_as_inf_is_refused_at_the_initial(
        value: float) -> None:
    text = (f"outputs:\n  y:\n    dtype: float32\n    initial: {value!r}\n"
            "    step: y[t-1] * 0.5\n").replace("nan", ".nan").replace("inf", ".inf")
    beyond = math.isfinite(value) and abs(value) >= FLOAT32_INF_FROM
    if not beyond:
        result = recur.run(recur.load(text), steps=1)
        stored = struct.unpack("f", struct.pack("f", value))[0] if math.isfinite(value) else value
        assert result["y"].tolist()[0] == pytest.approx(stored * 0.5, nan_ok=True, rel=0)
        return
    with pytest.raises(RecurError) as error:
        recur.run(recur.load(text), steps=1)
    assert error.value.exit_code == 2 and error.value.span is not None
    assert (error.value.span.line, error.value.span.col) == (4, 14)
    assert "the initial of output 'y' has values beyond float32" in error.value.message
    assert "declare 'dtype: float64'" in error.value.notes[0]


@pytest.mark.parametrize(("text", "where"), [
    ("params:\n  a: '[[1, 2], [3]]'\noutputs:\n  x:\n    step: t\n", "param 'a'"),
    ("steps: 2\noutputs:\n  x:\n    initial: 0.0\n    step: '[x[t-1], [1, 2]]'\n",
     "the step of output 'x'"),
])
def test_a_ragged_list_is_said_in_recurs_words(text: str, where: str) -> None:
    with pytest.raises(RecurError) as caught:
        recur.run(recur.load(text, path="spec.yaml"))
    error = caught.value
    assert error.message == f"cannot evaluate {where}: the nested lists are not rectangular"
    assert error.span is not None
