"""`recur diff`: pairing by name, tolerances, NaN, shapes, the summary's numbers, errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recur.cli.main import cli
from recur.diagnostics import RecurError
from recur.report.diff import compare_arrays, diff

SPECS = Path(__file__).resolve().parents[2] / "specs"
FIB = str(SPECS / "fibonacci.yaml")
SWEEP = str(SPECS / "logistic_sweep.yaml")

# A differing array's line; the optional parts appear only when they apply.
LINE = re.compile(
    r"  (?P<name>\w+): (?P<count>\d+) of (?P<size>\d+) elements? differ \((?P<pct>[^)]+)\)"
    r"(?:; (?P<nan>\d+) with NaN on one side only)?"
    r"(?:; max abs error (?P<abs>\S+); max rel error (?P<rel>\S+))?"
    r"; first at (?P<where>\S+): (?P<a>\S+) vs (?P<b>\S+)"
)


@pytest.fixture(autouse=True)
def _registered() -> None:
    cli.add_command(diff)  # what the lead does in recur/cli/main.py; idempotent


def invoke(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def run_ok(*args: str) -> None:
    result = invoke("run", *args)
    assert result.exit_code == 0, result.stderr


def npy(path: Path, array: object) -> str:
    np.save(path, np.asarray(array))
    return str(path)


def npz(path: Path, **arrays: object) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(array))
    return str(path)


def csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def tolerance(rtol: float, atol: float) -> tuple[str, ...]:
    return ("--rtol", repr(rtol), "--atol", repr(atol))


# Same results, in every pair of formats


def test_npy_and_csv_of_the_same_run_are_the_same(tmp_path: Path) -> None:
    run_ok(FIB, "-o", str(tmp_path / "fib.npy"))
    run_ok(FIB, "-o", str(tmp_path / "fib.csv"))
    result = invoke("diff", str(tmp_path / "fib.npy"), str(tmp_path / "fib.csv"))
    assert result.exit_code == 0, result.output
    assert result.stdout == "same: 1 array, 10 elements within rtol=1e-07, atol=0.0\n"
    assert result.stderr == ""


def test_lanes_as_csv_npz_and_npy_are_the_same(tmp_path: Path) -> None:
    for suffix in ("csv", "npz", "npy"):
        run_ok(SWEEP, "--steps", "7", "-o", str(tmp_path / f"sweep.{suffix}"))
    files = [str(tmp_path / f"sweep.{suffix}") for suffix in ("csv", "npz", "npy")]
    lanes = np.load(files[2]).shape[1]
    for a in files:
        for b in files:
            result = invoke("diff", a, b)
            assert result.exit_code == 0, (a, b, result.output)
            assert f"1 array, {7 * lanes} elements" in result.stdout


def test_a_final_state_as_csv_matches_its_npy(tmp_path: Path) -> None:
    # CSV writes the final state as one line, shape (1,); the .npy holds shape ().
    run_ok(FIB, "--last", "-o", str(tmp_path / "last.npy"))
    run_ok(FIB, "--last", "-o", str(tmp_path / "last.csv"))
    assert np.load(tmp_path / "last.npy").shape == ()
    result = invoke("diff", str(tmp_path / "last.csv"), str(tmp_path / "last.npy"))
    assert result.exit_code == 0, result.output
    # ...but two .npy files keep their shapes: (1,) is not ().
    one = npy(tmp_path / "one.npy", [89])
    result = invoke("diff", one, str(tmp_path / "last.npy"))
    assert result.exit_code == 1
    assert "shapes differ: (1,) vs ()" in result.stdout


def test_int_and_float_arrays_of_equal_values_agree(tmp_path: Path) -> None:
    ints = npy(tmp_path / "i.npy", np.array([1, 2, 3], dtype=np.int32))
    floats = csv(tmp_path / "f.csv", "i\n1.0\n2.0\n3.0\n")
    assert invoke("diff", ints, floats).exit_code == 0
    assert invoke("diff", floats, ints).exit_code == 0


def test_several_arrays_by_name_in_any_order(tmp_path: Path) -> None:
    a = npz(tmp_path / "a.npz", x=[1.0, 2.0], y=[[1, 2], [3, 4]])
    b = csv(tmp_path / "b.csv",
            '"y[0,0]","y[0,1]","y[1,0]","y[1,1]",x\n1,2,3,4,1.0\n1,2,3,4,2.0\n')
    b_rows = csv(tmp_path / "rows.csv", "x,y[0],y[1]\n1.0,1,2\n2.0,3,4\n")
    assert np.load(a)["y"].shape == (2, 2)
    # b.csv holds y as (2, 2, 2): two steps of a 2x2 state; a.npz's y is (2, 2).
    result = invoke("diff", a, b)
    assert result.exit_code == 1 and "y: shapes differ: (2, 2) vs (2, 2, 2)" in result.stdout
    result = invoke("diff", a, b_rows)
    assert result.exit_code == 0, result.output
    assert result.stdout == "same: 2 arrays, 6 elements within rtol=1e-07, atol=0.0\n"


def test_an_npy_takes_the_name_of_the_other_sides_only_array(tmp_path: Path) -> None:
    unnamed = npy(tmp_path / "result.npy", [1.0, 2.0])
    assert invoke("diff", unnamed, npz(tmp_path / "q.npz", q=[1.0, 2.0])).exit_code == 0
    # With several arrays on the other side, the .npy is named after its stem.
    result = invoke("diff", unnamed, npz(tmp_path / "two.npz", result=[1.0, 2.0], z=[0]))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [f"  z: only in {tmp_path / 'two.npz'}"]
    # Two .npy files: one array each, compared whatever their stems.
    assert invoke("diff", unnamed, npy(tmp_path / "other.npy", [1, 2])).exit_code == 0


# Tolerances: exactly on the boundary agrees, the next float past it does not


@pytest.mark.parametrize(
    ("a", "b", "rtol", "atol"),
    [
        (1.5, 1.0, 0.5, 0.0),  # |a - b| = rtol * |b|
        (-0.25, 0.0, 0.0, 0.25),  # |a - b| = atol
        (3.0, 2.0, 0.25, 0.5),  # |a - b| = atol + rtol * |b|
        (-1.5, -1.0, 0.5, 0.0),  # negative values: |b|
    ],
)
def test_tolerance_boundary(tmp_path: Path, a: float, b: float, rtol: float, atol: float) -> None:
    away = np.nextafter(a, np.copysign(np.inf, a - b))
    assert abs(away - b) > atol + rtol * abs(b) == abs(a - b)  # the boundary is exact
    ref = npy(tmp_path / "b.npy", [b])
    inside = invoke("diff", npy(tmp_path / "in.npy", [a]), ref, *tolerance(rtol, atol))
    assert inside.exit_code == 0, inside.output
    assert inside.stdout == f"same: 1 array, 1 element within rtol={rtol!r}, atol={atol!r}\n"
    outside = invoke("diff", npy(tmp_path / "out.npy", [away]), ref, *tolerance(rtol, atol))
    assert outside.exit_code == 1, outside.output
    assert outside.stdout.startswith(
        f"different: 1 of 1 array differs (rtol={rtol!r}, atol={atol!r})\n"
    )


def test_rtol_is_relative_to_b(tmp_path: Path) -> None:
    one = npy(tmp_path / "one.npy", [1.0])
    two = npy(tmp_path / "two.npy", [2.0])
    assert invoke("diff", one, two, "--rtol", "0.5").exit_code == 0  # 1 <= 0.5 * 2
    assert invoke("diff", two, one, "--rtol", "0.5").exit_code == 1  # 1 > 0.5 * 1


def test_default_tolerances_are_assert_allclose_ones(tmp_path: Path) -> None:
    ref = npy(tmp_path / "ref.npy", [1.0, 0.0])
    near = npy(tmp_path / "near.npy", [1.0 + 0.5e-7, 0.0])
    far = npy(tmp_path / "far.npy", [1.0 + 2e-7, 0.0])
    tiny = npy(tmp_path / "tiny.npy", [1.0, 1e-300])  # atol=0: nothing is near 0 but 0
    assert invoke("diff", near, ref).exit_code == 0
    assert invoke("diff", far, ref).exit_code == 1
    assert invoke("diff", tiny, ref).exit_code == 1
    assert invoke("diff", tiny, ref, "--atol", "1e-8").exit_code == 0
    help_text = invoke("diff", "--help").stdout
    assert "default: 1e-07" in help_text and "default: 0.0" in help_text


def test_integers_are_compared_exactly(tmp_path: Path) -> None:
    big = 2**60
    a = npy(tmp_path / "a.npy", np.array([big, -(2**63)], dtype=np.int64))
    b = npy(tmp_path / "b.npy", np.array([big + 1, 2**63 - 1], dtype=np.int64))
    same_first = npy(tmp_path / "c.npy", np.array([big + 1, -(2**63)], dtype=np.int64))
    result = invoke("diff", a, same_first, "--rtol", "0")
    assert result.exit_code == 1  # float64 would round both to 2**60
    assert "max abs error 1;" in result.stdout
    assert invoke("diff", a, same_first).exit_code == 0  # 1 <= 1e-7 * 2**60
    result = invoke("diff", a, b)  # no int64 overflow in |a - b|
    assert f"max abs error {2**64 - 1};" in result.stdout


# NaN and infinities


def test_nan_equals_nan_at_the_same_place(tmp_path: Path) -> None:
    a = npy(tmp_path / "a.npy", [1.0, np.nan, np.inf, -np.inf])
    b = csv(tmp_path / "b.csv", "a\n1.0\nnan\ninf\n-inf\n")
    assert invoke("diff", a, b).exit_code == 0


def test_nan_at_different_places_differs(tmp_path: Path) -> None:
    a = npy(tmp_path / "a.npy", [np.nan, 2.0, 3.0, 4.0])
    b = npy(tmp_path / "b.npy", [1.0, np.nan, 3.0, 5.0])
    result = invoke("diff", a, b, "--atol", "100")  # no tolerance forgives a NaN
    assert result.exit_code == 1
    match = LINE.fullmatch(result.stdout.splitlines()[1])
    assert match is not None, result.stdout
    assert (match["count"], match["nan"], match["where"]) == ("2", "2", "a[0]")
    assert (match["a"], match["b"]) == ("nan", "1.0")
    assert match["abs"] is None  # only NaN differences: no error to measure


def test_infinities_of_opposite_sign_differ(tmp_path: Path) -> None:
    a = npy(tmp_path / "a.npy", [np.inf, 1.0])
    b = npy(tmp_path / "b.npy", [-np.inf, 1.0])
    result = invoke("diff", a, b, "--atol", "1e300")
    assert result.exit_code == 1
    assert "1 of 2 elements differ (50%); max abs error inf; max rel error inf" in result.stdout


# Shapes, names, dtypes


def test_shape_mismatch(tmp_path: Path) -> None:
    a = npz(tmp_path / "a.npz", x=np.zeros((3, 2)), y=[1])
    b = npz(tmp_path / "b.npz", x=np.zeros((2, 3)), y=[1])
    result = invoke("diff", a, b)
    assert result.exit_code == 1
    assert result.stdout == (
        "different: 1 of 2 arrays differs (rtol=1e-07, atol=0.0)\n"
        "  x: shapes differ: (3, 2) vs (2, 3)\n"
    )


def test_names_in_one_file_only(tmp_path: Path) -> None:
    a = npz(tmp_path / "a.npz", x=[1], y=[2])
    b = csv(tmp_path / "b.csv", "z,x\n3,1\n")
    result = invoke("diff", a, b)
    assert result.exit_code == 1
    assert result.stdout == (
        "different: 2 of 3 arrays differ (rtol=1e-07, atol=0.0)\n"
        f"  y: only in {a}\n"
        f"  z: only in {b}\n"
    )


def test_bool_against_numbers_is_a_dtype_mismatch(tmp_path: Path) -> None:
    flags = npy(tmp_path / "flags.npy", [True, False])
    assert "flags: dtypes differ: bool vs float64" in invoke(
        "diff", flags, npy(tmp_path / "ones.npy", [1.0, 0.0])
    ).stdout
    result = invoke("diff", flags, csv(tmp_path / "f.csv", "flags\ntrue\ntrue\n"))
    assert result.exit_code == 1
    assert "1 of 2 elements differ (50%); first at flags[1]: false vs true" in result.stdout


# The summary's numbers, against NumPy


def test_summary_numbers_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    b = rng.normal(size=(40, 3))
    a = b.copy()
    picked = rng.choice(a.size, size=17, replace=False)
    a.flat[picked] += rng.normal(scale=1e-3, size=17)
    rtol, atol = 1e-5, 1e-6
    result = invoke("diff", npz(tmp_path / "a.npz", v=a), npz(tmp_path / "b.npz", v=b),
                    *tolerance(rtol, atol))
    assert result.exit_code == 1
    match = LINE.fullmatch(result.stdout.splitlines()[1])
    assert match is not None, result.stdout

    differ = ~np.isclose(a, b, rtol=rtol, atol=atol)
    abs_err = np.abs(a - b)[differ]
    rel_err = (np.abs(a - b) / np.abs(b))[differ]
    first = np.argwhere(differ)[0]
    assert int(match["count"]) == differ.sum() and int(match["size"]) == a.size
    assert match["pct"] == f"{100 * differ.sum() / a.size:.3g}%"
    assert float(match["abs"]) == abs_err.max()
    assert float(match["rel"]) == rel_err.max()
    assert match["where"] == f"v[{first[0]},{first[1]}]"
    assert float(match["a"]) == a[tuple(first)] and float(match["b"]) == b[tuple(first)]


def test_percentages_never_round_to_whole(tmp_path: Path) -> None:
    b = np.zeros(10_000)
    a = np.ones(10_000)
    a[-1] = 0.0
    result = invoke("diff", npy(tmp_path / "a.npy", a), npy(tmp_path / "b.npy", b))
    assert "9999 of 10000 elements differ (99.9%)" in result.stdout


@settings(max_examples=200, deadline=None)
@given(
    pair=st.integers(1, 12).flatmap(
        lambda n: st.tuples(
            *[hnp.arrays(np.float64, n, elements=st.floats(allow_subnormal=False)
                         | st.sampled_from([0.0, 1.0, np.nan, np.inf]))] * 2
        )
    ),
    rtol=st.sampled_from([0.0, 1e-7, 1e-3, 0.5]),
    atol=st.sampled_from([0.0, 1e-8, 1.0]),
)
def test_agreement_is_numpy_isclose_with_equal_nan(
    pair: tuple[np.ndarray, np.ndarray], rtol: float, atol: float
) -> None:
    a, b = pair
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    mismatch = compare_arrays(a, b, rtol, atol)
    if close.all():
        assert mismatch is None
    else:
        assert mismatch is not None and mismatch.count == (~close).sum()
        assert mismatch.first == (int(np.argmin(close)),)


# Standard input


@pytest.mark.parametrize("side", ["a", "b"])
def test_standard_input_as_either_side(tmp_path: Path, side: str) -> None:
    piped = invoke("run", FIB, "-o", "-", "-f", "npy").stdout_bytes
    run_ok(FIB, "-o", str(tmp_path / "fib.csv"))
    args = ["-", str(tmp_path / "fib.csv")]
    result = invoke("diff", *(args if side == "a" else args[::-1]), stdin=piped)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("same: 1 array, 10 elements")


def test_standard_input_csv_is_sniffed(tmp_path: Path) -> None:
    run_ok(FIB, "--steps", "11", "-o", str(tmp_path / "fib.npz"))
    piped = invoke("run", FIB).stdout_bytes
    result = invoke("diff", "-", str(tmp_path / "fib.npz"), stdin=piped)
    assert result.exit_code == 1
    assert "x: shapes differ: (10,) vs (11,)" in result.stdout


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash to close standard input")
def test_closed_standard_input_is_one_error(tmp_path: Path) -> None:
    npy(tmp_path / "b.npy", [1.0])
    done = subprocess.run(["bash", "-c", '"$PYTHON" -m recur diff - b.npy <&-'],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable}, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "recur: error: standard input: it is closed: there is nothing to read\n"
    assert done.stdout == ""


# Errors in the invocation: exit 2, one message on stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "b.npy"], "recur: error: missing.csv: cannot read: No such file"),
        (["b.npy", "data.txt"], "recur: error: data.txt: cannot tell the format from suffix"),
        (["-", "-"], "recur: error: only one of A and B can be standard input"),
        (["bad.npz", "b.npy"], "recur: error: bad.npz: not a valid .npz file"),
        (["b.npy", "ragged.csv"], "recur: error: ragged.csv: line 3 has 1 fields"),
        (["b.npy", "b.npy", "--rtol", "-1"], "recur: error: Invalid value for '--rtol'"),
        (["b.npy", "b.npy", "--atol", "nan"], "recur: error: Invalid value for '--atol'"),
        (["b.npy"], "recur: error: Missing argument 'B'"),
    ],
)
def test_invocation_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    npy(tmp_path / "b.npy", [1.0])
    (tmp_path / "data.txt").write_text("x\n1\n")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "ragged.csv").write_text("x,y\n1,2\n3\n")
    result = invoke("diff", *args, stdin=b"")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_the_bare_command_raises_recur_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(diff, [str(tmp_path / "missing.npy"), str(tmp_path / "b.npy")])
    assert isinstance(result.exception, RecurError) and result.exception.exit_code == 2


def test_the_bare_command_exits_1_on_a_difference(tmp_path: Path) -> None:
    a, b = npy(tmp_path / "a.npy", [1.0]), npy(tmp_path / "b.npy", [2.0])
    result = CliRunner().invoke(diff, [a, b])
    assert result.exit_code == 1 and result.stdout.startswith("different:")


def test_help_has_an_example() -> None:
    result = invoke("diff", "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout and "recur diff fib.npy fib.csv" in result.stdout


def test_an_empty_npz_holds_no_arrays(tmp_path: Path) -> None:
    empty = npz(tmp_path / "empty.npz")
    result = invoke("diff", empty, npz(tmp_path / "empty2.npz"))
    assert result.exit_code == 0, result.output
    assert result.stdout == "same: 0 arrays, 0 elements within rtol=1e-07, atol=0.0\n"
    result = invoke("diff", npz(tmp_path / "one.npz", x=[1]), empty)
    assert result.stdout.splitlines()[1:] == [f"  x: only in {tmp_path / 'one.npz'}"]
