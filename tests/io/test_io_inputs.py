"""`--input NAME=PATH`: formats, stdin sniffing, CSV column rules, dtypes and errors."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recur.diagnostics import UsageError
from recur.io.inputs import read_all, read_input


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _from_csv(text: str, name: str = "x") -> np.ndarray:
    return read_input(name, "-", io.BytesIO(text.encode()))


def _error(name: str, path: str, stdin: bytes | None = None) -> str:
    stream = None if stdin is None else io.BytesIO(stdin)
    with pytest.raises(UsageError) as info:
        read_input(name, path, stream)
    message = str(info.value)
    assert message.startswith(f"--input {name}={path}: ")
    assert not message.endswith(".")
    return message


def _csv_error(text: str, name: str = "x") -> str:
    return _error(name, "-", text.encode())


# Formats and standard input


def test_npy_file_keeps_shape_and_dtype(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.int64).reshape(2, 3)
    np.save(tmp_path / "a.npy", array)
    loaded = read_input("x", str(tmp_path / "a.npy"))
    assert loaded.dtype == np.int64
    np.testing.assert_array_equal(loaded, array)


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "A.NPY"
    path.write_bytes(_npy_bytes(np.array([1.5, 2.5])))
    np.testing.assert_array_equal(read_input("x", str(path)), [1.5, 2.5])


def test_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "a.Csv"
    path.write_text("x\n1\n2\n")
    np.testing.assert_array_equal(read_input("x", str(path)), [1, 2])


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv"])
def test_stdin_format_is_sniffed(fmt: str) -> None:
    array = np.array([[1.25, -2.0], [3.0, 0.5]])
    data = {
        "npy": _npy_bytes(array),
        "npz": _npz_bytes(x=array),
        "csv": b"x[0],x[1]\n1.25,-2.0\n3.0,0.5\n",
    }[fmt]
    loaded = read_input("x", "-", io.BytesIO(data))
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, array)


def test_stdin_defaults_to_sys_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStdin:
        buffer = io.BytesIO(b"x\n7\n")

    monkeypatch.setattr("sys.stdin", FakeStdin)
    np.testing.assert_array_equal(read_input("x", "-"), [7])


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash to close standard input")
def test_closed_standard_input_is_one_error(tmp_path: Path) -> None:
    """Started with descriptor 0 closed (`<&-`), Python's `sys.stdin` is None."""
    (tmp_path / "spec.yaml").write_text("sequences:\n  s: input\noutputs:\n  y: {step: s}\n")
    done = subprocess.run(["bash", "-c", '"$PYTHON" -m recur run spec.yaml --input s=- <&-'],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable}, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("recur: error: --input s=-: standard input is closed: "
                           "there is nothing to read\n")
    assert done.stdout == ""


# .npz


def test_npz_picks_the_named_array(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    path.write_bytes(_npz_bytes(a=np.arange(3), x=np.arange(4), b=np.arange(5)))
    np.testing.assert_array_equal(read_input("x", str(path)), np.arange(4))


def test_npz_with_one_array_is_used_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    path.write_bytes(_npz_bytes(other=np.array([4.0, 5.0])))
    np.testing.assert_array_equal(read_input("x", str(path)), [4.0, 5.0])


def test_npz_without_the_name_lists_its_arrays(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    path.write_bytes(_npz_bytes(a=np.arange(3), b=np.arange(2)))
    message = _error("x", str(path))
    assert "no array 'x'" in message
    assert "a, b" in message


def test_empty_npz(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    path.write_bytes(_npz_bytes())
    assert "holds no arrays" in _error("x", str(path))


def test_empty_npz_on_stdin_is_sniffed_as_npz() -> None:
    """An archive with no member starts with its end record (`PK\\x05\\x06`), not with a
    member's (`PK\\x03\\x04`): it is still an .npz, not a CSV file."""
    data = _npz_bytes()
    assert data.startswith(b"PK\x05\x06")
    assert "holds no arrays" in _error("x", "-", data)
    assert read_all("-", io.BytesIO(data)) == ("npz", {})


def test_corrupt_npz(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    path.write_bytes(_npz_bytes(x=np.arange(100))[:60])
    assert "not a valid .npz file" in _error("x", str(path))


def test_npz_member_that_is_not_npy(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", b"hello")
    assert "not a valid .npy file" in _error("x", str(path))


# .npy errors


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_truncated_npy(tmp_path: Path, where: str) -> None:
    data = _npy_bytes(np.arange(100.0))[:-40]
    if where == "stdin":
        message = _error("x", "-", data)
    else:
        (tmp_path / "a.npy").write_bytes(data)
        message = _error("x", str(tmp_path / "a.npy"))
    assert "truncated or corrupt" in message


def test_npy_that_is_not_npy(tmp_path: Path) -> None:
    (tmp_path / "a.npy").write_bytes(b"1,2,3\n")
    assert "not a valid .npy file" in _error("x", str(tmp_path / "a.npy"))


def test_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.array([1, "a", None], dtype=object), allow_pickle=True)
    assert "Python objects" in _error("x", str(path))


# Files that cannot be read


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x\n1\n")
    message = _error("x", str(path))
    assert "'.txt'" in message
    assert ".npy, .npz or .csv" in message


def test_no_suffix() -> None:
    assert "no suffix" in _error("x", "data")


def test_missing_file(tmp_path: Path) -> None:
    assert "No such file or directory" in _error("x", str(tmp_path / "nope.csv"))


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    assert "Is a directory" in _error("x", str(tmp_path / "d.csv"))


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("permissions do not apply to this user")
        assert "Permission denied" in _error("x", str(path))
    finally:
        path.chmod(0o600)


# dtypes


@pytest.mark.parametrize(
    ("stored", "loaded"),
    [
        ("bool", "bool"),
        ("int8", "int64"),
        ("int16", "int64"),
        ("int32", "int32"),
        ("int64", "int64"),
        ("uint8", "int64"),
        ("uint16", "int64"),
        ("uint32", "int64"),
        ("uint64", "int64"),
        ("float16", "float32"),
        ("float32", "float32"),
        ("float64", "float64"),
        (">f8", "float64"),
        (">i4", "int32"),
        ("complex64", "complex128"),
        ("complex128", "complex128"),
    ],
)
def test_dtype_normalisation(stored: str, loaded: str) -> None:
    array = np.array([0, 1, 1, 0, 1], dtype=stored)
    result = read_input("x", "-", io.BytesIO(_npy_bytes(array)))
    assert result.dtype == np.dtype(loaded)
    assert result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_uint64_above_int64_max() -> None:
    array = np.array([1, 2**63], dtype=np.uint64)
    assert "do not fit in int64" in _error("x", "-", _npy_bytes(array))


@pytest.mark.parametrize(
    "array",
    [
        np.array(["ab", "c"]),
        np.array([b"ab"]),
        np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        np.zeros(2, dtype="V4"),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
    ],
    ids=["unicode", "bytes", "structured", "void", "datetime"],
)
def test_unsupported_dtypes_are_named(array: np.ndarray) -> None:
    message = _error("x", "-", _npy_bytes(array))
    assert f"unsupported dtype {array.dtype}" in message


@pytest.mark.skipif(
    np.dtype(np.longdouble).itemsize <= 8, reason="long double is plain float64 here"
)
def test_long_double_is_refused() -> None:
    array = np.array([1.0], dtype=np.longdouble)
    assert "unsupported dtype" in _error("x", "-", _npy_bytes(array))


# CSV: columns


def test_one_plain_column() -> None:
    result = _from_csv("x\n3\n1\n2\n")
    assert result.shape == (3,)
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, [3, 1, 2])


def test_indexed_columns_fill_the_grid_in_any_order() -> None:
    titles = [(i, j) for i in range(2) for j in range(3)]
    shuffled = [titles[k] for k in (4, 0, 5, 2, 1, 3)]
    expected = np.arange(12).reshape(2, 2, 3)
    header = ",".join(f'"x[{i},{j}]"' for i, j in shuffled)
    rows = [",".join(str(expected[t, i, j]) for i, j in shuffled) for t in range(2)]
    result = _from_csv("\n".join([header, *rows]) + "\n")
    assert result.shape == (2, 2, 3)
    np.testing.assert_array_equal(result, expected)


def test_the_named_columns_are_chosen_among_others() -> None:
    result = _from_csv("t,x[1],y,x[0]\n0,1.5,9,2.5\n1,3.5,9,4.5\n")
    np.testing.assert_array_equal(result, [[2.5, 1.5], [4.5, 3.5]])


def test_all_columns_of_one_other_name_are_used() -> None:
    result = _from_csv("s[0],s[1]\n1,2\n3,4\n", name="x")
    np.testing.assert_array_equal(result, [[1, 2], [3, 4]])


def test_a_single_column_with_any_title_is_used() -> None:
    np.testing.assert_array_equal(_from_csv("time (s)\n1\n2\n"), [1, 2])


def test_columns_of_several_other_names_are_an_error() -> None:
    message = _csv_error("a,b[0],b[1]\n1,2,3\n")
    assert "no column named x or x[i,...]" in message
    assert "a, b" in message


def test_header_only_gives_zero_rows() -> None:
    assert _from_csv("x\n").shape == (0,)
    header = ",".join(f'"x[{i},{j}]"' for i in range(2) for j in range(3))
    assert _from_csv(header + "\n").shape == (0, 2, 3)


def test_windows_line_endings_and_byte_order_mark() -> None:
    data = "\ufeffx[0],x[1]\r\n1,2\r\n".encode()
    np.testing.assert_array_equal(read_input("x", "-", io.BytesIO(data)), [[1, 2]])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x[0],x[2]\n1,2\n", "x[1] is missing"),
        ('"x[0,0]","x[1,1]"\n1,2\n', "x[0,1] is missing"),
        ("x,x[0]\n1,2\n", "different numbers of indices"),
        ('x[0],"x[0,1]"\n1,2\n', "different numbers of indices"),
        ("x[0],x[0]\n1,2\n", "'x[0]' appears more than once"),
        ("", "no header line"),
        ("\n1\n", "no header line"),
    ],
)
def test_bad_headers(text: str, fragment: str) -> None:
    assert fragment in _csv_error(text)


# CSV: values


def test_integers_stay_int64() -> None:
    result = _from_csv(f"x\n{2**63 - 1}\n{-(2**63)}\n0\n")
    assert result.dtype == np.int64
    assert result.tolist() == [2**63 - 1, -(2**63), 0]


def test_any_float_makes_the_whole_array_float64() -> None:
    cells = ["1", "0.1", "nan", "inf", "-inf", "1e+16", "-0.0"]
    result = _from_csv("x\n" + "\n".join(cells) + "\n")
    assert result.dtype == np.float64
    expected = np.array([float(cell) for cell in cells])
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(np.signbit(result), np.signbit(expected))


def test_bools() -> None:
    result = _from_csv("x[0],x[1]\ntrue,false\nfalse,false\n")
    assert result.dtype == np.bool_
    np.testing.assert_array_equal(result, [[True, False], [False, False]])


def test_complex() -> None:
    cells = ["(1.5+2j)", "3", "-2j", "(nan+infj)"]
    result = _from_csv("x\n" + "\n".join(cells) + "\n")
    assert result.dtype == np.complex128
    expected = np.array([complex(cell) for cell in cells])
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x,y\n1,2\n3\n", "line 3 has 1 fields, the header has 2"),
        ("x,y\n1,2\n3,4,5\n", "line 3 has 3 fields, the header has 2"),
        ("x[0],x[1]\n1,2\n3,\n", "line 3, column 'x[1]': empty cell"),
        ("x\n1\n\n2\n", "line 3 is empty"),
        ("x[0],x[1]\n1,2\n3,4\nabc,5\n", "line 4, column 'x[0]': 'abc' is not a number"),
        ("x\ntrue\n1\n", "line 2, column 'x': 'true' mixed with numbers"),
        (f"x\n1\n{2**63}\n", f"line 3, column 'x': {2**63} does not fit in int64"),
        ('x\n"1\n', "malformed CSV"),
    ],
)
def test_bad_cells(text: str, fragment: str) -> None:
    assert fragment in _csv_error(text)


# What Python's int, float and complex read beyond ASCII is not a number in a CSV cell.
BEYOND_ASCII = "(digits are the ASCII 0-9, signs and points ASCII too)"


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("1_000", "(write it without '_')"),
        ("1_000.5", "(write it without '_')"),
        ("1e1_0", "(write it without '_')"),
        ("(1_0+2j)", "(write it without '_')"),
        ("１２", BEYOND_ASCII),  # full-width
        ("٣", BEYOND_ASCII),  # Arabic-Indic
        ("۳.5", BEYOND_ASCII),  # extended Arabic-Indic
        ("१e3", BEYOND_ASCII),  # Devanagari
        ("\u20037", BEYOND_ASCII),  # an em space before the 7
        ("\u22127", ""),  # a minus sign, not '-': not a number to Python either
        ("ｔｒｕｅ", ""),
    ],
)
def test_numbers_beyond_ascii_are_refused_where_they_are(cell: str, reason: str) -> None:
    try:
        complex(cell)
        python_reads_it = True
    except ValueError:
        python_reads_it = False
    assert python_reads_it == bool(reason)
    message = _csv_error(f"x,y\n1,2\n3,{cell}\n", "y")
    assert message == f"--input y=-: line 3, column 'y': {cell!r} is not a number" + (
        f" {reason}" if reason else "")


@pytest.mark.parametrize("cell", ["1e400", "-1e400", "1.8e308", "(1e400+1j)", "1-1e999j",
                                  " 9" + "9" * 400 + ".0"])
def test_a_literal_beyond_float64_is_an_error_not_inf(cell: str) -> None:
    assert np.isinf(complex(cell)) or np.isinf(float(cell))  # what Python makes of it
    message = _csv_error(f"x\n0.5\n{cell}\n")
    assert message == (f"--input x=-: line 3, column 'x': {cell.strip()} is beyond the range"
                       " of float64 (it would become infinite; write inf if that is meant)")


def test_ascii_numbers_in_python_syntax_are_read() -> None:
    """The ASCII part of Python's syntax: signs, points, exponents, inf/infinity/nan in any
    case, spaces around; the values are Python's own."""
    cells = ["+1", " -2 ", "3.", ".5", "1E3", "-1.5e-3", "\t4\t", "inf", "-Infinity",
             "+NaN", "1.7976931348623157e308", "1e-400"]
    result = _from_csv("x\n" + "\n".join(cells) + "\n")
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, np.array([float(cell) for cell in cells]))
    integers = _from_csv("x\n+7\n -8\n 0009 \n")
    assert integers.dtype == np.int64 and integers.tolist() == [7, -8, 9]
    complexes = _from_csv("x\n1+2J\n(-infj)\n-1e3-.5j\n")
    np.testing.assert_array_equal(complexes, [1 + 2j, complex("-infj"), -1e3 - 0.5j])


def test_cells_of_other_columns_are_not_read() -> None:
    np.testing.assert_array_equal(_from_csv("y,x\n1,2\nabc,3\n"), [2, 3])


def test_a_quoted_cell_may_span_lines() -> None:
    assert "line 4, column 'x': '1\\n2' is not a number" in _csv_error('x\n0\n"1\n2"\n')


def test_binary_garbage_on_stdin() -> None:
    assert "not UTF-8 text" in _error("x", "-", b"\xff\xfe\x00garbage")
