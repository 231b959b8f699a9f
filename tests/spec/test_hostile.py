"""Hostile specs: resource exhaustion is refused before it happens, and no spec reaches
the file system, the network, the environment or Python objects.

Each limit of docs/robustness.md has a test here that the refusal is quick, clear and
positioned. Bugs found while writing these (outside recur/io and recur/diagnostics) are
strict xfails, each with its reproducer; fixing one turns its xfail into a failure that
says to drop the mark (and the matching entry of KNOWN_BUGS in tests/spec/test_fuzz.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import recur
from recur import api
from recur.cli.main import cli
from recur.diagnostics import ExprError, Origin, RecurError, SpecError, render
from recur.lang.parse import parse_expression

SPEC_LIMIT = 1_000_000
ARRAY_LIMIT = "1,000,000,000"


def fails(text: str, **arguments: object) -> RecurError:
    """The error of loading and running `text` (which must fail, and quickly)."""
    started = time.monotonic()
    with pytest.raises(RecurError) as info:
        recur.run(recur.load(text, path="hostile.yaml"), **arguments)
    assert time.monotonic() - started < 10, "a refusal must come before the work"
    return info.value


def one_step(step: str, params: str = "") -> str:
    head = f"params:\n{params}" if params else ""
    return f"{head}steps: 1\noutputs:\n  x:\n    step: {step}\n"


def positioned(error: RecurError) -> str:
    """The rendered error, checked to be one located message: its first line says where,
    then come the source line, the caret and notes."""
    text = render(error)
    assert error.span is not None, text
    assert text.startswith(f"hostile.yaml:{error.span.line}:{error.span.col}: error: "), text
    assert not any(line.startswith(("hostile.yaml:", "recur:", "Traceback"))
                   for line in text.splitlines()[1:]), text
    return text


# --- resource exhaustion: refused before it happens ---------------------------------------


@pytest.mark.parametrize(("step", "params"), [
    ("sum(zeros(10**12))", ""),
    ("sum(zeros(n))", "  n: 10**12\n"),
    ("sum(arange(1e15))", ""),
    ("sum(arange(0, 1, 1e-12))", ""),
    ("sum(eye(10**6))", ""),
    ("sum(eye(2, 10**12))", ""),
    ("sum(linspace(0, 1, 10**12))", ""),
    ("sum(full((10**6, 10**6), 1.5))", ""),
    ("sum(ones((10**4, 10**4, 10**4)))", ""),
    ("sum(zeros(10**9 + 1))", ""),
    ("sum(arange(9223372036854775807))", ""),
])
def test_huge_arrays_are_refused_before_they_are_made(step: str, params: str) -> None:
    error = fails(one_step(step, params))
    assert error.exit_code == 1
    assert f"the limit is {ARRAY_LIMIT}" in error.message
    positioned(error)


@pytest.mark.parametrize("param", ["zeros(10**12)", "arange(1e15)", "eye(10**6)"])
def test_huge_array_params_are_refused(param: str) -> None:
    error = fails(f"params:\n  a: {param}\nsteps: 1\noutputs:\n  x:\n    step: sum(a)\n")
    assert error.exit_code == 1
    assert "param 'a'" in error.message and ARRAY_LIMIT in error.message


def test_huge_arrays_from_set_are_refused() -> None:
    spec = recur.load(one_step("sum(zeros(n))", "  n: 3\n"), path="hostile.yaml")
    with pytest.raises(RecurError) as info:
        recur.run(spec, params={"n": "sum(zeros(10**12))"})
    assert info.value.exit_code == 1 and ARRAY_LIMIT in info.value.message
    assert info.value.span is not None and info.value.span.path == "params"


@pytest.mark.parametrize("step", ["10**10**10", "2**64", "(-2)**65", "3**40 * 3**40",
                                  "9223372036854775807 + 1"])
def test_huge_integer_results_are_overflows(step: str) -> None:
    error = fails(one_step(step))
    assert error.exit_code == 1 and "integer overflow" in error.message
    positioned(error)


@pytest.mark.parametrize("literal", ["9223372036854775808", "-9223372036854775809",
                                     "1" + "0" * 4000], ids=["2**63", "-2**63-1", "4001-digits"])
def test_integer_literals_beyond_int64_are_refused(literal: str) -> None:
    error = fails(one_step(f"'{literal} + 0'"))
    assert error.exit_code == 2 and "does not fit in int64" in error.message
    positioned(error)


@pytest.mark.parametrize("text", [
    "params:\n  a: 99999999999999999999\nsteps: 1\noutputs:\n  x:\n    step: a\n",
    "steps: 1\noutputs:\n  x:\n    initial: 99999999999999999999\n    step: x[t-1]\n",
], ids=["param", "initial"])
def test_yaml_integer_beyond_int64_is_refused_as_a_literal(text: str) -> None:
    error = fails(text)
    assert "does not fit in int64" in error.message
    assert "object" not in render(error)


@pytest.mark.parametrize("text", [
    "(" * 200 + "1" + ")" * 200,
    "-" * 5000 + "1",
    "sin(" * 150 + "1" + ")" * 150,
    "[" * 150 + "1" + "]" * 150,
    "1 if 1 else " * 150 + "1",
    "+".join(["1"] * 3000),
    "1" + " " * 10_000,
], ids=["parentheses", "unary", "calls", "lists", "selects", "chain", "length"])
def test_deeply_nested_or_long_expressions_are_refused(text: str) -> None:
    error = fails(one_step(f"'{text}'"))
    assert error.exit_code == 2
    assert any(word in error.message for word in ("nested", "too many", "characters long"))
    positioned(error)


def test_the_nesting_limit_leaves_room_for_ordinary_expressions() -> None:
    assert recur.run(recur.load(one_step("'" + "+".join(["1"] * 100) + "'"),
                                path="ok.yaml"))["x"].tolist() == [100.0]


@pytest.mark.parametrize("value", ["[" * 1000 + "1" + "]" * 1000,
                                   "{a: " * 1000 + "1" + "}" * 1000], ids=["lists", "maps"])
def test_deeply_nested_yaml_is_refused(value: str) -> None:
    fails(f"steps: 1\noutputs:\n  x:\n    initial: {value}\n    step: x[t-1]\n")


@pytest.mark.parametrize("depth", [33, 40, 64])
def test_state_with_too_many_dimensions_is_an_error(depth: int) -> None:
    value = "[" * depth + "1" + "]" * depth
    fails(f"steps: 1\noutputs:\n  x:\n    initial: {value}\n    step: x[t-1]\n")


def test_yaml_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "\n".join(lines)
    text = f"params:\n  {bomb.replace(chr(10), chr(10) + '  ')}\noutputs:\n  x: {{step: 1}}\n"
    error = fails(text)
    assert error.exit_code == 2
    assert "aliases" in error.message
    positioned(error)


def test_alias_reused_in_a_spec_is_refused() -> None:
    text = "params:\n  a: &v [1, 2]\n  b: *v\nsteps: 1\noutputs:\n  x: {step: 'sum(b)'}\n"
    error = fails(text)
    assert "aliases" in error.message
    assert "hostile.yaml:2:6" in positioned(error)  # the anchor: the node *v shares


def test_enormous_spec_files_are_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * SPEC_LIMIT + "\noutputs:\n  x: {step: 1}\n")
    with pytest.raises(SpecError) as info:
        recur.load(path)
    assert f"the limit is {SPEC_LIMIT}" in info.value.message
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "limit" in result.stderr


def test_a_spec_at_the_size_limit_loads(tmp_path: Path) -> None:
    body = "steps: 1\noutputs:\n  x: {step: 1}\n"
    path = tmp_path / "edge.yaml"
    path.write_text("#" * (SPEC_LIMIT - len(body) - 1) + "\n" + body)
    assert path.stat().st_size == SPEC_LIMIT
    assert recur.run(recur.load(path))["x"].tolist() == [1.0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_spec_size_limit_holds_for_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)

    def feed() -> None:  # the reader stops one byte past the limit and closes the pipe
        with contextlib.suppress(BrokenPipeError), open(fifo, "w") as pipe:
            pipe.write("#" * (2 * SPEC_LIMIT) + "\noutputs:\n  x: {step: 1}\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with pytest.raises(SpecError) as info:
        recur.load(fifo)
    writer.join(timeout=10)
    assert "limit" in info.value.message


@pytest.mark.parametrize("step", ["x[t-10001]", "x[t-99999999999999999999999]"])
def test_look_back_deeper_than_the_limit_is_refused(step: str) -> None:
    error = fails(f"steps: 1\noutputs:\n  x:\n    initial: 0\n    step: {step}\n")
    assert "deeper than 10000" in error.message
    positioned(error)


@pytest.mark.parametrize("read", ["s[t+1000001]", "s[t-99999999999999999999999]"])
def test_sequence_offset_beyond_the_limit_is_refused(read: str) -> None:
    error = fails(f"sequences:\n  s: [1, 2]\noutputs:\n  x:\n    step: {read}\n")
    assert "larger than 1000000" in error.message
    positioned(error)


@pytest.mark.parametrize("steps", ["10**13", "10**15"])
def test_absurd_steps_that_keep_every_state_are_refused_before_running(steps: str) -> None:
    text = f"steps: {steps}\noutputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n"
    error = fails(text)
    assert error.exit_code == 1 and "memory available" in error.message


@pytest.mark.parametrize("last", [[], ["--last"]], ids=["all", "last"])
def test_absurd_steps_option_is_refused_by_the_command_line(tmp_path: Path,
                                                            last: list[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n")
    for steps in (2**64, 10**30):
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["run", str(path), "--steps", str(steps), *last])
        assert time.monotonic() - started < 10
        assert result.exit_code == 2, result.output
        assert result.stderr == (f"recur: error: --steps {steps} is more than any run can "
                                 "take; the limit is 1,000,000,000,000,000 (10**15)\n")


def test_steps_at_the_limit_meet_the_memory_check(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n")
    result = CliRunner().invoke(cli, ["run", str(path), "--steps", str(10**15)])
    assert result.exit_code == 1
    assert "memory available" in result.stderr and "Traceback" not in result.output


def test_steps_beyond_int64_in_a_spec_are_refused_as_a_literal() -> None:
    error = fails(f"steps: {2**64}\noutputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n"
                  "    keep: last\n")
    assert error.exit_code == 2 and "does not fit in int64" in error.message
    positioned(error)


@pytest.mark.parametrize("where", ["option", "spec"])
def test_absurd_steps_are_refused_before_running(where: str) -> None:
    """R9: through the library or a `steps:` literal too, not only on the command line."""
    text = "outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n    keep: last\n"
    if where == "spec":
        text += f"steps: {2**63 - 1}\n"
    spec = recur.load(text, path="hostile.yaml")
    with pytest.raises(RecurError) as error:
        api.prepare(spec, steps=2**64 if where == "option" else None, last=True)
    assert error.value.exit_code == 2
    assert "more than any run can take; the limit is 1,000,000,000,000,000" in error.value.message


def test_broadcast_blowup_meets_the_memory_of_the_machine(tmp_path: Path) -> None:
    """An array no constructor makes, but broadcasting does: bounded by the memory there is
    (here a 1 GiB address space), and refused as a run that does not fit (exit 1)."""
    path = tmp_path / "outer.yaml"
    path.write_text("params:\n  a: arange(100000)\nsteps: 1\noutputs:\n"
                    "  x:\n    step: sum(a * reshape(a, (100000, 1)))\n")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2**30 + 2**29, 2**30 + 2**29))\n"
        "from recur.cli.main import main\n"
        f"sys.argv = ['recur', 'run', {str(path)!r}]\n"
        "main()\n"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr
    assert "too much memory" in done.stderr and "Traceback" not in done.stderr


# --- escapes: no file system, network, environment or Python objects -------------------------

ESCAPES = [
    "__import__('os').system('touch PWNED')",
    "__import__",
    "x.__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "a.__class__.__mro__[1].__subclasses__()",
    "'{0.__class__}'.format(a)",
    "f'{a.__class__}'",
    "'%s' % a",
    "b'\\x00'",
    "open('/etc/passwd')",
    "eval('1')",
    "exec('import os')",
    "compile('1', 'f', 'eval')",
    "globals()",
    "vars()",
    "getattr(a, 'real')",
    "__builtins__",
    "breakpoint()",
    "print(1)",
    "input()",
    "lambda: 1",
    "[c for c in s]",
    "{k: 1 for k in s}",
    "(q := 1)",
    "sum.__globals__",
    "sin.__self__",
    "environ",
    "HOME",
    "sum(*a)",
    "sum(**a)",
    "a[...]",
    "None",
]


@pytest.mark.parametrize("step", ESCAPES)
def test_known_escapes_are_refused_at_their_place(
    step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    quoted = "'" + step.replace("'", "''") + "'"
    text = (f"params:\n  a: 2\nsequences:\n  s: [1, 2]\nsteps: 1\n"
            f"outputs:\n  x:\n    step: {quoted}\n")
    error = fails(text)
    assert isinstance(error, ExprError), error
    assert error.exit_code == 2
    positioned(error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ESCAPES)
def test_known_escapes_through_set_are_refused(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = recur.load("params:\n  a: 2\nsteps: 1\noutputs:\n  x:\n    step: a\n", path="s.yaml")
    with pytest.raises(ExprError) as info:
        recur.run(spec, params={"a": value})
    assert info.value.span is not None and info.value.span.path == "params"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch PWNED']",
    "!!python/object/new:os.system ['touch PWNED']",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:__main__.X {}",
    "!!binary dG91Y2ggUFdORUQ=",
    "!!set {a, b}",
    "!!omap [a: 1]",
])
@pytest.mark.parametrize("where", ["step", "initial", "param", "steps", "top"])
def test_yaml_tags_never_build_python_objects(
    tag: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    texts = {
        "step": f"steps: 1\noutputs:\n  x:\n    step: {tag}\n",
        "initial": f"steps: 1\noutputs:\n  x:\n    initial: {tag}\n    step: x[t-1]\n",
        "param": f"params:\n  a: {tag}\nsteps: 1\noutputs:\n  x:\n    step: a\n",
        "steps": f"steps: {tag}\noutputs:\n  x:\n    step: 1\n",
        "top": f"outputs: {tag}\n",
    }
    try:
        recur.run(recur.load(texts[where], path="hostile.yaml"))
    except RecurError as error:
        assert error.exit_code in (1, 2)
    assert list(tmp_path.iterdir()) == []


class _Touch:
    """Unpickling this creates the file: the proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _pickled_npy(sentinel: Path) -> bytes:
    buffer = io.BytesIO()
    array = np.empty(2, dtype=object)
    array[0], array[1] = _Touch(sentinel), 1.0
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("how", ["npy", "npz", "stdin"])
def test_pickled_npy_inputs_are_never_unpickled(tmp_path: Path, how: str) -> None:
    sentinel = tmp_path / "PWNED"
    data = _pickled_npy(sentinel)
    np.load(io.BytesIO(data), allow_pickle=True)  # the payload works when unpickled
    assert sentinel.exists()
    sentinel.unlink()
    spec = tmp_path / "s.yaml"
    spec.write_text("sequences:\n  s: input\noutputs:\n  x:\n    step: s\n")
    stdin = None
    if how == "npy":
        (tmp_path / "in.npy").write_bytes(data)
        source = str(tmp_path / "in.npy")
    elif how == "npz":
        with zipfile.ZipFile(tmp_path / "in.npz", "w") as archive:
            archive.writestr("s.npy", data)
        source = str(tmp_path / "in.npz")
    else:
        source, stdin = "-", data
    result = CliRunner().invoke(cli, ["run", str(spec), "--input", f"s={source}"], input=stdin)
    assert result.exit_code == 2
    assert "Python objects" in result.stderr
    assert not sentinel.exists()


def test_parse_never_evaluates(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval or exec was called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    for step in ESCAPES:
        with contextlib.suppress(ExprError):
            parse_expression(step, Origin("s.yaml", 1, 1))


# --- bugs found while fuzzing (each a strict xfail, with its reproducer) ---------------------


@pytest.mark.parametrize("step", ["'[a, b]'", "'" + "[" * 70 + "1" + "]" * 70 + "'"],
                         ids=["ragged", "70-deep"])
def test_step_giving_a_ragged_list_is_an_error(step: str) -> None:
    fails(one_step(step, "  a: 2\n  b: [1.0, 2.0, 3.0]\n"))


def test_syntax_error_in_a_block_scalar_points_into_it() -> None:
    text = "steps: 1\noutputs:\n  x:\n    step: |\n      (1))\n    initial: 0\n"
    error = fails(text)
    assert error.span is not None
    assert error.span.line == 5, render(error)  # not 6, `initial: 0`


@pytest.mark.parametrize("after", ["    initial: 0\n", ""], ids=["inside", "at-the-end"])
def test_block_scalar_with_a_leading_blank_line_points_at_the_right_line(after: str) -> None:
    text = "steps: 1\noutputs:\n  x:\n    step: |\n\n      1 + y\n" + after
    error = fails(text)
    assert error.span is not None
    assert (error.span.line, error.span.col) == (6, 11), render(error)


def test_error_positions_never_fall_before_the_expression() -> None:
    with pytest.raises(ExprError) as info:
        parse_expression(")(", Origin("s.yaml", 1, 1))
    assert info.value.span is not None and info.value.span.col >= 1
    error = fails("steps: 1\noutputs:\n  x:\n    step: ')('\n")
    assert error.span is not None and error.span.col >= 12, render(error)


def test_syntax_error_after_a_carriage_return_points_into_its_line() -> None:
    spec = recur.load(one_step("a", "  a: 2\n"), path="s.yaml")
    with pytest.raises(ExprError) as info:
        recur.run(spec, params={"a": "[1,\r\r 4, 7$]"})
    span = info.value.span
    assert span is not None
    assert span.line == 3 and span.col == 6


def test_integer_literal_of_thousands_of_digits_does_not_fit() -> None:
    error = fails(one_step("'1" + "0" * 5000 + " + 0'"))
    assert "does not fit in int64" in error.message
    assert "sys." not in error.message


def test_set_evaluation_error_shows_the_expression() -> None:
    spec = recur.load(one_step("a", "  a: 2\n"), path="s.yaml")
    with pytest.raises(RecurError) as info:
        recur.run(spec, params={"a": "1[0]"})
    assert "a=1[0]" in render(info.value)


@pytest.mark.parametrize("text", ["outputs:\n  x: {step: 1}\x07\n", "steps: 1\x00\n"],
                         ids=["bell", "nul"])
def test_control_character_in_yaml_is_an_error_at_its_place(text: str) -> None:
    error = fails(text)
    assert error.span is not None


@pytest.mark.parametrize("text", ["---\n", "---"], ids=["newline", "bare"])
def test_a_document_marker_alone_is_an_empty_spec(text: str) -> None:
    with pytest.raises(SpecError):
        recur.load(text + ("" if text.endswith("\n") else "\n"), path="hostile.yaml")


@pytest.mark.parametrize("text", ["1if t else 2", "0x1for", "1_000if t else 2"])
def test_parser_warnings_do_not_reach_stderr(text: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.suppress(ExprError):
            parse_expression(text, Origin("s.yaml", 1, 1))
    assert [str(w.message) for w in caught] == []
