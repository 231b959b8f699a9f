"""Messages name options in the caller's words: the library its parameters (`steps`,
`params['r']`, `engine='scan'`), the command line its flags (`--steps`, `--set r`,
`--engine scan`). Each message is checked from both sides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner

import recur
from recur import api
from recur.cli.main import cli
from recur.diagnostics import RecurError, flag_words, option, option_entry, render
from recur.engine import registry
from recur.engine.c import native

SPECS = Path(__file__).resolve().parents[2] / "specs"
FIB = str(SPECS / "fibonacci.yaml")
TAYLOR = str(SPECS / "taylor_exp.yaml")
SUMS = "steps: 3\noutputs:\n  h:\n    initial: [1.0, 3.0]\n    step: h[t-1] / sum(h[t-1])\n"
NEEDS_W = "params:\n  W: input\nsteps: 2\noutputs:\n  x: {initial: 0.0, step: 'x[t-1] + W'}\n"
COUNTER = "outputs:\n  x: {initial: 0.0, step: 'x[t-1] + 1'}\n"  # no steps: give them


def library_error(call: Callable[[], Any]) -> str:
    """The rendered error of a library call: message, caret and notes."""
    with pytest.raises(RecurError) as raised:
        call()
    return render(raised.value)


def command_error(tmp_path: Path, args: list[str], spec_text: str | None = None) -> str:
    if spec_text is not None:
        (tmp_path / "spec.yaml").write_text(spec_text)
        args = [str(tmp_path / "spec.yaml") if arg == "SPEC" else arg for arg in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (1, 2), result.output
    return result.stderr


# (library call, the library's words, command line, a spec's text or None, the CLI's words)
CASES: list[tuple[str, Callable[[], Any], list[str], list[str], str | None, list[str]]] = [
    ("negative steps", lambda: recur.run(FIB, steps=-1), ["steps must be >= 0, not -1"],
     ["run", FIB, "--steps", "-1"], None, ["--steps must be >= 0, not -1"]),
    ("too many steps", lambda: recur.run(FIB, steps=10**16),
     ["steps=10000000000000000 is more than any run can take"],
     ["run", FIB, "--steps", str(10**16)], None,
     ["--steps 10000000000000000 is more than any run can take"]),
    ("unknown param", lambda: recur.run(FIB, params={"q": 1}),
     ["params['q']: the spec has no param 'q'"],
     ["run", FIB, "--set", "q=1"], None, ["--set q: the spec has no param 'q'"]),
    ("bad param expression", lambda: recur.run(TAYLOR, params={"x": "1 + q"}),
     ["params:1:7: error: unknown name 'q' in params['x']", "    x=1 + q"],
     ["run", TAYLOR, "--set", "x=1 + q"], None,
     ["--set:1:7: error: unknown name 'q' in --set x", "    x=1 + q"]),
    ("failing param expression", lambda: recur.run(TAYLOR, params={"x": "1 // 0"}),
     ["in params['x']"], ["run", TAYLOR, "--set", "x=1 // 0"], None, ["in --set x"]),
    ("unknown input", lambda: recur.run(FIB, inputs={"zz": numpy.ones(3)}),
     ["inputs['zz']: the spec has no sequence or param 'zz'"],
     ["run", FIB, "--input", "zz=f.npy"], None,
     ["--input zz: the spec has no sequence or param 'zz'"]),
    ("missing input", lambda: recur.run(recur.load(NEEDS_W)),
     ["param 'W' is 'input', but no inputs['W'] was given",
      "note: pass an array as inputs['W']"],
     ["run", "SPEC"], NEEDS_W,
     ["param 'W' is 'input', but no --input W=PATH was given",
      "note: run with --input W=file.npy"]),
    ("no step count", lambda: recur.run(recur.load(COUNTER)),
     ["or run with steps=N"], ["run", "SPEC"], COUNTER, ["or run with --steps N"]),
    ("no step count, checked", lambda: recur.check(recur.load(COUNTER)),
     ["or run with steps=N"], ["check", "SPEC"], COUNTER, ["or run with --steps N"]),
    ("outputs too large", lambda: recur.run(recur.load(COUNTER), steps=10**14),
     ["keep only final states with last=True", "or run fewer steps"],
     ["run", "SPEC", "--steps", str(10**14)], COUNTER,
     ["keep only final states with --last", "or run fewer --steps"]),
    ("scan on the CPU", lambda: recur.run(FIB, engine="scan"),
     ["engine='scan' runs on device='cuda' only", "note: use engine='compiled' or 'auto'"],
     ["run", FIB, "--engine", "scan"], None,
     ["--engine scan runs on --device cuda only", "note: use --engine compiled or auto"]),
]


@pytest.mark.parametrize(("library", "library_words", "args", "spec_text", "cli_words"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_library_names_parameters_and_the_command_line_flags(
        tmp_path: Path, library: Callable[[], Any], library_words: list[str],
        args: list[str], spec_text: str | None, cli_words: list[str]) -> None:
    said = library_error(library)
    for words in library_words:
        assert words in said
    assert "--" not in said
    printed = command_error(tmp_path, args, spec_text)
    for words in cli_words:
        assert words in printed


def test_an_unknown_engine_is_named_as_a_parameter() -> None:
    """The command line's click.Choice refuses it before the library sees it."""
    said = library_error(lambda: recur.run(FIB, engine="fast"))
    assert "engine must be one of auto, interp, compiled, scan, not 'fast'" in said
    assert "--" not in said


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_a_compiled_engine_that_cannot_run_the_spec(tmp_path: Path) -> None:
    said = library_error(lambda: recur.run(recur.load(SUMS), engine="compiled"))
    assert "engine='compiled' cannot run this spec: sum(), which mixes lanes" in said
    assert "note: use engine='auto' or 'interp'" in said
    printed = command_error(tmp_path, ["run", "SPEC", "--engine", "compiled"], SUMS)
    assert "--engine compiled cannot run this spec: sum(), which mixes lanes" in printed
    assert "note: use --engine auto or interp" in printed


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_a_kernel_that_fails_to_compile(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: str, time_limit: float) -> Any:
        raise native.CompileError("cc: error: out of disk")

    monkeypatch.setattr(native, "load", refuse)
    said = library_error(lambda: recur.run(FIB, engine="compiled", steps=5))
    assert "engine='compiled': cc: error: out of disk" in said
    assert "note: use engine='interp'" in said
    printed = command_error(tmp_path, ["run", FIB, "--steps", "5", "--engine", "compiled"])
    assert "--engine compiled: cc: error: out of disk" in printed
    assert "note: use --engine interp" in printed


def test_the_reason_for_an_engine_asked_for_names_it_in_the_callers_words() -> None:
    spec = recur.load(FIB)
    compiled = api.prepare(spec, steps=5)
    assert registry.choose(compiled.program, "interp").reason == "asked for with engine='interp'"
    assert compiled.steps_reason == "from steps"
    result = CliRunner().invoke(cli, ["explain", FIB, "--steps", "5", "--engine", "interp"])
    assert "because: asked for with --engine interp" in result.stdout
    assert "steps: 5 (from --steps)" in result.stdout


def test_a_missing_cuda_device_is_named_in_the_callers_words(tmp_path: Path) -> None:
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed")
    said = library_error(lambda: recur.run(FIB, device="cuda"))
    assert "device='cuda' needs CuPy" in said and "or use device='cpu'" in said
    printed = command_error(tmp_path, ["run", FIB, "--device", "cuda"])
    assert "--device cuda needs CuPy" in printed and "or use --device cpu" in printed


@pytest.mark.parametrize(("call", "library", "flags"), [
    (lambda: option("steps"), "steps", "--steps"),
    (lambda: option("steps", 5), "steps=5", "--steps 5"),
    (lambda: option("steps", "N"), "steps=N", "--steps N"),
    (lambda: option("engine", "scan"), "engine='scan'", "--engine scan"),
    (lambda: option("engine", "auto", "interp", "compiled"),
     "engine='auto', 'interp' or 'compiled'", "--engine auto, interp or compiled"),
    (lambda: option("last", True), "last=True", "--last"),
    (lambda: option_entry("params", "r"), "params['r']", "--set r"),
    (lambda: option_entry("inputs", "s", "PATH"), "inputs['s']", "--input s=PATH"),
])
def test_options_in_both_words(call: Callable[[], str], library: str, flags: str) -> None:
    assert call() == library
    with flag_words():
        assert call() == flags
    assert call() == library  # the command line's words end with it
