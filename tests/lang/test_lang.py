"""The expression language: what it admits, what it refuses on purpose, and where."""

from __future__ import annotations

import numpy
import pytest

from recur import api
from recur.diagnostics import ExprError, Origin, RecurError
from recur.lang import nodes as n
from recur.lang.parse import MAX_DEPTH, parse_expression

ORIGIN = Origin("spec.yaml", 3, 11)


def parse(text: str) -> n.Node:
    return parse_expression(text, ORIGIN)


def test_tap_reads_become_time_indices() -> None:
    node = parse("x[t-2] + s[t+1] + s[t]")
    indices = [node for node in n.walk(node) if isinstance(node, n.TimeIndex)]
    assert [index.offset for index in indices] == [-2, 1, 0]


def test_spans_are_file_positions_in_characters() -> None:
    node = parse("α + foo(x)")
    assert isinstance(node, n.Binary)
    call = node.right
    assert isinstance(call, n.Call)
    # 'foo' starts at character 5 of the expression, which starts at column 11.
    assert (call.span.line, call.span.col, call.span.end_col) == (3, 15, 21)
    assert (node.left.span.col, node.left.span.end_col) == (11, 12)


def test_block_scalar_lines_map_to_their_file_lines() -> None:
    origin = Origin("spec.yaml", 5, 7, block_indent=7)
    node = parse_expression("x[t-1]\n  + bad", origin)
    assert isinstance(node, n.Binary)
    assert (node.right.span.line, node.right.span.col) == (6, 11)


def test_inexact_origin_points_at_the_scalar_start() -> None:
    node = parse_expression("a + b", Origin("spec.yaml", 2, 5, exact=False))
    assert isinstance(node, n.Binary)
    assert (node.right.span.line, node.right.span.col) == (2, 5)


def test_chained_comparison_and_select() -> None:
    node = parse("1 if 0 < x[t-1] <= 2 else 0")
    assert isinstance(node, n.Select)
    assert isinstance(node.test, n.Compare)
    assert node.test.ops == ("<", "<=")


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("x.real", "attribute access", 11),
        ("(lambda: 1)()", "lambdas", 12),
        ("[i for i in s]", "comprehensions", 11),
        ("'abc'", "string literals", 11),
        ("f'{x}'", "strings", 11),
        ("{1: 2}", "dictionaries", 11),
        ("{1, 2}", "sets", 11),
        ("(y := 2)", "assignment expressions", 12),
        ("a & b", "bitwise", 11),
        ("~a", "bitwise", 11),
        ("a in b", "'in' and 'is'", 11),
        ("f(*a)", "unpacking", 13),
        ("f(**a)", "'**'", 11),
        ("sum(a, dtype=1)", "unknown keyword argument 'dtype'", 18),
        ("x.__class__", "attribute access", 11),
        ("__import__('os')", "string literals", 22),
        ("a[1](2)", "only the functions", 11),
        ("None", "None and missing values", 11),
        ("...", "(Ellipsis)", 11),
        ("2 ** 99999999999999999999", "does not fit in int64", 16),
    ],
)
def test_refused_on_purpose(text: str, message: str, column: int) -> None:
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert message in caught.value.message
    assert caught.value.span is not None
    assert caught.value.span.col == column


def test_syntax_error_points_into_the_expression() -> None:
    with pytest.raises(ExprError) as caught:
        parse("x[t-1] +* 2")
    assert caught.value.message.startswith("syntax error")
    assert caught.value.span is not None and caught.value.span.line == 3


def test_unclosed_bracket_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(ExprError, match="syntax error"):
        parse("sin(x[t-1]")


def test_nesting_is_limited() -> None:
    with pytest.raises(ExprError, match="nested"):
        parse("-" * (MAX_DEPTH + 5) + "1")
    with pytest.raises(ExprError, match="nested"):
        parse("(" * 300 + "1" + ")" * 300)


def test_empty_and_overlong_expressions() -> None:
    with pytest.raises(ExprError, match="empty"):
        parse("   ")
    with pytest.raises(ExprError, match="characters long"):
        parse("1+" * 6000 + "1")


@pytest.mark.parametrize(("text", "bracket", "column"), [
    ("sin(x[t-1]", "(", 14),  # sin's, not the one around the whole text
    ("f(g(1), h(2", "(", 20),  # the innermost still open, as Python says
    ("a[1", "[", 12),  # not a mismatch with a parenthesis the text does not have
    ("é + sin(x", "(", 18),  # columns count characters
])
def test_an_unclosed_bracket_is_shown_where_it_opens(text: str, bracket: str,
                                                     column: int) -> None:
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert caught.value.message == f"syntax error: '{bracket}' was never closed"
    assert caught.value.span is not None
    assert (caught.value.span.line, caught.value.span.col) == (3, column)


@pytest.mark.parametrize(("text", "note"), [
    ("x[t-1].real + 1", "for x.real, write real(x)"),
    ("z.conjugate()", "for x.conjugate, write conj(x)"),
    ("x.astype(int)", "for x.astype, write a cast named by the dtype, as int64(x) or "
     "float32(x)"),
    ("m.T @ v", "for x.T, write transpose(x)"),
])
def test_a_numpy_attribute_is_refused_with_recurs_function_for_it(text: str,
                                                                  note: str) -> None:
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert caught.value.message == "attribute access is not part of the recur language"
    assert caught.value.notes == (note,)
    assert caught.value.span is not None and caught.value.span.col == 11


def test_another_attribute_gets_no_hint() -> None:
    with pytest.raises(ExprError) as caught:
        parse("x.shape")
    assert caught.value.notes == ()


# The int64 minimum: `-9223372036854775808` is one literal, though its digits alone do
# not fit in int64.

INT64_MIN = -(2**63)


@pytest.mark.parametrize("text", ["-9223372036854775808", "- 9223372036854775808",
                                  "-(9223372036854775808)"])
def test_the_negated_int64_minimum_is_one_literal(text: str) -> None:
    node = parse(text)
    assert isinstance(node, n.Number)
    assert type(node.value) is int and node.value == INT64_MIN
    assert (node.span.col, node.span.end_col) == (11, 11 + len(text))


@pytest.mark.parametrize(("text", "column"), [("-9223372036854775809", 12),
                                              ("-(-9223372036854775809)", 14),
                                              ("9223372036854775808", 11)])
def test_beyond_the_int64_range_is_still_refused(text: str, column: int) -> None:
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert "does not fit in int64" in caught.value.message
    assert caught.value.span is not None and caught.value.span.col == column


def test_negating_the_folded_minimum_stays_an_operation() -> None:
    node = parse("--9223372036854775808")
    assert isinstance(node, n.Unary) and node.op == "-"
    assert isinstance(node.operand, n.Number) and node.operand.value == INT64_MIN


INT64_MIN_SPEC = """\
steps: 6
outputs:
  x:
    dtype: int64
    initial: 0
    step: '-9223372036854775808 + t if t % 2 == 0 else max(x[t-1], -9223372036854775808)'
"""


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_the_int64_minimum_runs_on_every_engine(engine: str) -> None:
    result = api.run(INT64_MIN_SPEC, engine=engine)
    assert result.engine == engine
    expected, previous = [], 0
    for t in range(6):
        previous = INT64_MIN + t if t % 2 == 0 else max(previous, INT64_MIN)
        expected.append(previous)
    assert result["x"].dtype == numpy.int64
    assert result["x"].tolist() == expected


def test_negating_the_int64_minimum_overflows_in_the_interpreter() -> None:
    spec = INT64_MIN_SPEC.replace("-9223372036854775808 + t", "--9223372036854775808 + t")
    with pytest.raises(RecurError) as caught:
        api.run(spec, engine="interp")
    assert "integer overflow" in caught.value.message
