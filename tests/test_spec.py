"""Spec loading: structure checks, and error positions for every YAML scalar style."""

from __future__ import annotations

import pytest

import recur
from recur.diagnostics import RecurError, render


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
