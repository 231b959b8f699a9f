"""The format registry: every format written and read back, chosen by suffix, by name and
by its first bytes; an unknown suffix refused; a new format is one entry."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np
import pytest

from recur.diagnostics import UsageError
from recur.io import formats
from recur.io.inputs import read_all, read_input
from recur.io.outputs import resolve_format, write_outputs
from recur.io.writers import OutputArray

FORMATS = list(formats.FORMATS.values())
IDS = [fmt.name for fmt in FORMATS]


def _states() -> np.ndarray:
    """Four steps of a state of two lanes, with values a careless writer would round."""
    return np.array([[0.1, -2.5], [1 / 3, 1e-300], [np.inf, -0.0], [np.nan, 2.0**60]])


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_every_format_reads_back_what_it_wrote(fmt: formats.Format, tmp_path: Path) -> None:
    states = _states()
    path = tmp_path / f"out{fmt.suffixes[0]}"
    write_outputs([OutputArray("x", states, per_step=True)], str(path), None)
    name, arrays = read_all(str(path))
    assert name == fmt.name
    (array,) = arrays.values()
    np.testing.assert_array_equal(array, states)
    assert array.dtype == states.dtype
    read = read_input("x", str(path))
    np.testing.assert_array_equal(read, states)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_every_format_is_known_on_standard_input_by_its_first_bytes(fmt: formats.Format) -> None:
    stdout = io.BytesIO()
    write_outputs([OutputArray("x", np.arange(5), per_step=True)], None, fmt.name, stdout)
    name, arrays = read_all("-", io.BytesIO(stdout.getvalue()))
    assert name == fmt.name
    assert [a.tolist() for a in arrays.values()] == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_the_suffix_and_the_name_choose_the_format(fmt: formats.Format) -> None:
    for suffix in fmt.suffixes:
        assert resolve_format(f"run{suffix.upper()}", None) is fmt
    assert resolve_format("run.other", fmt.name) is fmt


def test_an_unknown_suffix_is_refused_for_reading_and_writing(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x\n1\n")
    with pytest.raises(UsageError) as read:
        read_input("x", str(data))
    assert str(read.value) == (f"--input x={data}: cannot tell the format from suffix '.txt': "
                               "use .npy, .npz or .csv")
    with pytest.raises(UsageError) as written:
        write_outputs([OutputArray("x", np.zeros(2), per_step=True)], str(data), None)
    assert str(written.value) == (f"cannot tell the format of '{data}': use --format or a "
                                  ".npy, .npz or .csv suffix")
    assert data.read_text() == "x\n1\n"


# A format that is only an entry here: one number per line after a marker line.
MARK = b"#lines\n"


def _write_lines(stream: BinaryIO, outputs: Sequence[OutputArray]) -> None:
    (output,) = outputs
    stream.write(MARK + b"".join(b"%r\n" % value for value in output.array.tolist()))


def _read_lines(stream: IO[bytes], name: str | None) -> dict[str, np.ndarray]:
    lines = stream.read().removeprefix(MARK).split()
    return {name or "": np.array([float(line) for line in lines])}


def test_a_new_format_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = formats.Format("lines", (".lines",), (MARK,), False, _read_lines, _write_lines)
    monkeypatch.setitem(formats.FORMATS, "lines", lines)
    path = tmp_path / "x.lines"
    values = [0.5, -1.25, 3.0]
    write_outputs([OutputArray("x", np.array(values), per_step=True)], str(path), None)
    assert path.read_bytes() == MARK + b"0.5\n-1.25\n3.0\n"
    assert read_input("x", str(path)).tolist() == values
    assert read_all("-", io.BytesIO(path.read_bytes()))[0] == "lines"
    with pytest.raises(UsageError, match=r"use \.npy, \.npz, \.csv or \.lines$"):
        read_input("x", str(tmp_path / "x.txt"))
