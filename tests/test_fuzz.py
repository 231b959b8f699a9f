"""Random text into the loader and the parser: a spec or a RecurError, never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recur
from recur.diagnostics import Origin, RecurError, render
from recur.lang.parse import parse_expression

EXPRESSION_ALPHABET = st.sampled_from(list("xst0123456789+-*/%()[],.:<>=!ab _'\"@~&|^\n\tα"))
EXPRESSION_WORDS = st.sampled_from([
    "x[t-1]", "x[t]", "s[t+1]", "t", "steps", "sin(", "sum(", "axis=", " if ", " else ",
    " and ", " not ", "lambda", "__import__", ".real", "**", "//", "1e3", "[", "]", ",",
])
SPEC_LINES = st.sampled_from([
    "outputs:", "  x:", "    step: ", "    initial: 0", "    initial: [0, 1]", "steps: 3",
    "sequences:", "  s: arange(5)", "params:", "  a: 2", "    dtype: int32", "until: ",
    "reverse: true", "    keep: last", "    taps: [-1]", "  y: {step: 'x[t]'}", "- 1", "&a",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(EXPRESSION_ALPHABET, EXPRESSION_WORDS), max_size=30).map("".join))
def test_parser_gives_a_tree_or_a_positioned_error(text: str) -> None:
    try:
        parse_expression(text, Origin("spec.yaml", 1, 1))
    except RecurError as error:
        assert error.span is not None
        error.source = text
        render(error)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(SPEC_LINES, st.one_of(st.just(""), EXPRESSION_WORDS)), max_size=12))
def test_near_valid_specs_run_or_fail_cleanly(lines: list[tuple[str, str]]) -> None:
    text = "\n".join(line + extra for line, extra in lines) + "\n"
    try:
        recur.run(recur.load(text, path="spec.yaml"), steps=3)
    except RecurError as error:
        assert render(error).count("error:") == 1
