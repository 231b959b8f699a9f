"""The installed command as a real process: pipes, stdin, exit codes, atomic files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy
import pytest

SPECS = Path(__file__).resolve().parents[2] / "specs"
RECUR = [sys.executable, "-m", "recur"]


def recur(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> (
    subprocess.CompletedProcess[bytes]
):
    return subprocess.run([*RECUR, *args], input=stdin, capture_output=True, cwd=cwd,
                          timeout=60, check=False)


def test_python_dash_m_and_console_script_agree() -> None:
    module = recur("run", str(SPECS / "fibonacci.yaml"), "-s", "4")
    script = Path(sys.executable).with_name("recur")
    installed = subprocess.run([str(script), "run", str(SPECS / "fibonacci.yaml"), "-s", "4"],
                               capture_output=True, timeout=60, check=False)
    assert module.returncode == installed.returncode == 0
    assert module.stdout == installed.stdout == b"x\n1\n2\n3\n5\n"


def test_npy_pipe_between_two_processes(tmp_path: Path) -> None:
    second = tmp_path / "double.yaml"
    second.write_text("sequences:\n  s: input\noutputs:\n  y: {step: 's * 2', dtype: int64}\n")
    first = subprocess.Popen([*RECUR, "run", str(SPECS / "fibonacci.yaml"), "-o", "-", "-f",
                              "npy"], stdout=subprocess.PIPE)
    result = subprocess.run([*RECUR, "run", str(second), "--input", "s=-"],
                            stdin=first.stdout, capture_output=True, timeout=60, check=False)
    assert first.wait(timeout=60) == 0
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["y"] + [str(2 * v) for v in
                                                       [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]]


def test_csv_pipe_with_different_names(tmp_path: Path) -> None:
    second = tmp_path / "sum.yaml"
    second.write_text("sequences:\n  s: input\noutputs:\n"
                      "  total: {step: 'total[t-1] + s', initial: 0, dtype: int64, keep: last}\n")
    csv = recur("run", str(SPECS / "fibonacci.yaml")).stdout
    result = recur("run", str(second), "--input", "s=-", stdin=csv)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"total\n231\n"


def test_failed_run_leaves_the_existing_file_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out.npy"
    out.write_bytes(b"precious")
    spec = tmp_path / "overflow.yaml"
    spec.write_text("steps: 200\noutputs:\n  x:\n    dtype: int64\n    initial: [0, 1]\n"
                    "    step: x[t-1] + x[t-2]\n")
    result = recur("run", str(spec), "-o", str(out))
    assert result.returncode == 1
    assert b"integer overflow" in result.stderr and b"at t=91" in result.stderr
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy", "overflow.yaml"]


def test_successful_run_replaces_the_file_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.npy"
    out.write_bytes(b"old")
    result = recur("run", str(SPECS / "fibonacci.yaml"), "-o", str(out))
    assert result.returncode == 0 and result.stdout == b""
    assert numpy.load(out).tolist()[-1] == 89


def test_closed_pipe_exits_quietly() -> None:
    result = subprocess.run(
        f"{sys.executable} -m recur run {SPECS / 'accumulate.yaml'} --set n=300000 | head -1",
        shell=True, capture_output=True, timeout=120, check=False,
    )
    assert result.stdout == b"total\n"
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr


def test_importing_the_cli_does_not_import_cupy_or_scipy() -> None:
    code = ("import sys, recur.cli.main; from recur import api; "
            "api.run(api.load(sys.argv[1]), steps=3); "
            "print('cupy' in sys.modules, 'scipy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(SPECS / "fibonacci.yaml")],
                            capture_output=True, timeout=60, check=False)
    assert result.stdout == b"False False\n", result.stderr


def test_importing_recur_imports_nothing_heavy_and_its_names_still_work() -> None:
    """`import recur` is the first thing the `recur` command does, before it handles
    Ctrl-C: NumPy and click come only when a name needs them."""
    code = ("import sys, recur; print([m for m in ('numpy', 'click') if m in sys.modules]); "
            "from recur import Spec, load; result = recur.run(load(sys.argv[1]), steps=5); "
            "print(result['x'].tolist(), Spec.__name__, 'run' in dir(recur))")
    result = subprocess.run([sys.executable, "-c", code, str(SPECS / "fibonacci.yaml")],
                            capture_output=True, timeout=60, check=False)
    fibonacci = [0, 1]
    for _ in range(5):
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    assert result.stdout.decode().splitlines() == ["[]", f"{fibonacci[2:]} Spec True"], (
        result.stderr)


def test_an_unknown_name_of_the_package_is_an_attribute_error() -> None:
    import recur

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        recur.nope  # noqa: B018


def test_shell_completion_completes_commands_and_options() -> None:
    script = Path(sys.executable).with_name("recur")

    def complete(words: str, index: int) -> str:
        env = {"PATH": str(script.parent), "COMP_WORDS": words, "COMP_CWORD": str(index),
               "_RECUR_COMPLETE": "bash_complete"}
        return subprocess.run([str(script)], env=env, capture_output=True, timeout=60,
                              check=False).stdout.decode()

    assert "plain,run" in complete("recur ru", 1).splitlines()
    assert "plain,--device" in complete("recur run spec.yaml --dev", 3).splitlines()
