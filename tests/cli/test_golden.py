"""Golden cases: `recur <cmd>` in a copy of tests/golden/<case>/, compared with expected/.

Each case directory holds its input files, `cmd` (one line: the arguments after
`recur`, shlex-split), an optional `stdin` (bytes fed to standard input), an optional
`case.yaml`, and `expected/`: `exit_code`, `stdout` (or `stdout.npy` / `stdout.npz`
when standard output is binary), `stderr`, and every file the command wrote.

`case.yaml` may give `rtol` / `atol` for all float arrays of the case, `files:` with
`{name: {rtol, atol}}` for one file, `skip_if_cupy: true` for a case that needs CuPy to
be absent, and `gpu: skip` (read by GPU runs: a chaotic case that CuPy may not follow).

Regenerate with `pytest tests/cli/test_golden.py --update-golden`, then read the diff.
"""

from __future__ import annotations

import difflib
import importlib.util
import io
import shlex
import shutil
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from recur.cli.main import cli
from recur.report.diff import Side, diff_sides

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(path for path in GOLDEN.glob("[!._]*") if path.is_dir())

# Files of a case directory that describe the case rather than feed the command.
META = ("cmd", "stdin", "case.yaml", "expected")
CASE_KEYS = {"rtol", "atol", "files", "skip_if_cupy", "gpu"}
STDOUT_NAMES = ("stdout", "stdout.npy", "stdout.npz")
FLOAT_RTOL = 1e-12


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_golden(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    options = _case_options(case)
    if options.get("skip_if_cupy") and importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is importable; this case is about its absence")

    for entry in case.iterdir():
        if entry.name in META:
            continue
        copy = shutil.copytree if entry.is_dir() else shutil.copy2
        copy(entry, tmp_path / entry.name)
    before = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    stdin = case / "stdin"
    result = CliRunner().invoke(
        cli,
        shlex.split((case / "cmd").read_text(encoding="utf-8")),
        input=stdin.read_bytes() if stdin.exists() else None,
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail(
            "recur raised instead of reporting an error:\n"
            + "".join(traceback.format_exception(*result.exc_info))
        )

    actual = _actual(result.exit_code, result.stdout_bytes, result.stderr_bytes)
    written = {name: data for name, data in _files(tmp_path).items() if before.get(name) != data}
    clashes = sorted(set(written) & {"exit_code", "stderr", *STDOUT_NAMES})
    assert not clashes, f"the command wrote {clashes}, which clash with expected/ names"
    actual.update(written)

    expected_dir = case / "expected"
    problems = _compare(expected_dir, actual, options)
    if not problems:
        return
    if not request.config.getoption("--update-golden"):
        pytest.fail(
            f"{case.name}: output differs from {expected_dir}:\n"
            + "\n".join(problems)
            + "\n(after checking the change: pytest tests/cli/test_golden.py --update-golden)",
            pytrace=False,
        )
    changed = _regenerate(expected_dir, actual, problems)
    pytest.fail(
        f"regenerated expected/ ({', '.join(changed)}) for {case.name}; "
        "review git diff tests/golden",
        pytrace=False,
    )


def _case_options(case: Path) -> dict[str, Any]:
    path = case / "case.yaml"
    if not path.exists():
        return {}
    options = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(options) - CASE_KEYS
    assert not unknown, f"{path}: unknown keys {sorted(unknown)}; known: {sorted(CASE_KEYS)}"
    return options


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by its '/'-separated relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _actual(exit_code: int, stdout: bytes, stderr: bytes) -> dict[str, bytes]:
    """The command's own results under their expected/ names."""
    if stdout.startswith(b"\x93NUMPY"):
        stdout_name = "stdout.npy"
    elif stdout.startswith(b"PK\x03\x04"):
        stdout_name = "stdout.npz"
    else:
        stdout_name = "stdout"
    return {"exit_code": f"{exit_code}\n".encode(), stdout_name: stdout, "stderr": stderr}


def _compare(expected_dir: Path, actual: dict[str, bytes], options: dict[str, Any]) -> list[str]:
    if not expected_dir.is_dir():
        return [f"missing {expected_dir}"]
    expected = _files(expected_dir)
    problems = [
        f"missing output file {name} (expected/{name} exists)"
        for name in sorted(set(expected) - set(actual))
    ]
    problems += [
        f"unexpected output file {name} (not in expected/)"
        for name in sorted(set(actual) - set(expected))
    ]
    for name in sorted(set(expected) & set(actual)):
        problem = _compare_file(name, expected[name], actual[name], options)
        if problem:
            problems.append(f"{name}: {problem}")
    return problems


def _compare_file(name: str, expected: bytes, actual: bytes, options: dict[str, Any]) -> str:
    if name.endswith((".npy", ".npz")):
        tolerance = {
            "rtol": options.get("rtol"),
            "atol": options.get("atol"),
            **options.get("files", {}).get(name, {}),
        }
        return _compare_arrays(_load_arrays(expected), _load_arrays(actual), tolerance)
    if name == "exit_code":
        got, want = int(actual), int(expected)
        return f"exit code {got}, expected {want}" if got != want else ""
    try:
        want_text = expected.decode("utf-8").replace("\r\n", "\n")
        got_text = actual.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return "" if expected == actual else "binary content differs"
    if want_text == got_text:
        return ""
    diff = difflib.unified_diff(
        want_text.splitlines(keepends=True),
        got_text.splitlines(keepends=True),
        "expected",
        "actual",
    )
    return "text differs:\n" + "".join(diff)


def _load_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of .npy (under the name '') or .npz bytes."""
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return {"": loaded}
    with loaded:
        return {key: loaded[key] for key in loaded.files}


def _compare_arrays(
    expected: dict[str, np.ndarray],
    actual: dict[str, np.ndarray],
    tolerance: dict[str, float | None],
) -> str:
    """What differs, array by array, as `recur diff` says it: how many elements, the
    largest errors, and the first index with both values. Dtypes and shapes must match
    exactly; integers and bools are compared exactly, floats within the case's tolerance."""
    if list(expected) != list(actual):
        return f"arrays {list(actual)}, expected {list(expected)}"
    problems = []
    for key, want in expected.items():
        got = actual[key]
        label = f"array {key!r}" if key else "array"
        if got.dtype != want.dtype or got.shape != want.shape:
            problems.append(
                f"{label}: {got.dtype} {got.shape}, expected {want.dtype} {want.shape}"
            )
            continue
        rtol, atol = _tolerance(want.dtype, tolerance)
        name = key or "array"
        same, lines = diff_sides(Side("actual", "npz", {name: got}),
                                 Side("expected", "npz", {name: want}), rtol, atol)
        if not same:
            problems.append(f"{lines[1].strip()} (rtol={rtol!r}, atol={atol!r})")
    return "; ".join(problems)


def _tolerance(dtype: np.dtype, tolerance: dict[str, float | None]) -> tuple[float, float]:
    if dtype.kind not in "fc":
        return 0.0, 0.0
    rtol = tolerance["rtol"] if tolerance["rtol"] is not None else FLOAT_RTOL
    atol = tolerance["atol"] if tolerance["atol"] is not None else 0.0
    return rtol, atol


def test_an_array_that_differs_is_described_where_and_by_how_much() -> None:
    want = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    got = want.copy()
    got[1, 0], got[2, 1] = 3.0 + 1e-10, 6.5
    problem = _compare_arrays({"x": want}, {"x": got}, {"rtol": None, "atol": None})
    # by hand: 1e-10 > 1e-12 * 3 and |0.5| > 1e-12 * 6; the largest error is 0.5
    assert problem.startswith("x: 2 of 6 elements differ"), problem
    assert "max abs error 0.5" in problem and f"first at x[1,0]: {3.0 + 1e-10!r} vs 3.0" in problem
    loose = {"rtol": 0.1, "atol": None}
    assert _compare_arrays({"x": want}, {"x": got}, loose) == ""
    ints = np.array([2**62, 7])
    off_by_one = _compare_arrays({"": ints}, {"": ints + np.array([1, 0])}, loose)
    assert off_by_one.startswith("array: 1 of 2 elements differ"), off_by_one


def _regenerate(expected_dir: Path, actual: dict[str, bytes], problems: list[str]) -> list[str]:
    """Write the files of `actual` that differ or are missing, drop stale ones."""
    expected = _files(expected_dir) if expected_dir.is_dir() else {}
    changed = []
    for name in sorted(set(expected) - set(actual)):
        (expected_dir / name).unlink()
        changed.append(f"-{name}")
    for name, data in actual.items():
        if name in expected and not any(p.startswith(f"{name}:") for p in problems):
            continue
        target = expected_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        changed.append(name)
    return changed
