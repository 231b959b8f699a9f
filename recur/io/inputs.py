"""Reading `--input NAME=PATH` arrays from .npy, .npz and CSV files or standard input.

Whatever the format, the array comes back in one of the dtypes recur computes with,
and every problem is a `UsageError` that names the option, so a bad file never ends
in a traceback.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np

from recur.diagnostics import UsageError

_INT64_MAX = np.iinfo(np.int64).max

# (kind, itemsize) -> the dtype recur uses for it; anything else is refused.
_TARGET_DTYPES = {
    ("b", 1): np.dtype(np.bool_),
    ("i", 1): np.dtype(np.int64),
    ("i", 2): np.dtype(np.int64),
    ("i", 4): np.dtype(np.int32),
    ("i", 8): np.dtype(np.int64),
    ("u", 1): np.dtype(np.int64),
    ("u", 2): np.dtype(np.int64),
    ("u", 4): np.dtype(np.int64),
    ("u", 8): np.dtype(np.int64),
    ("f", 2): np.dtype(np.float32),
    ("f", 4): np.dtype(np.float32),
    ("f", 8): np.dtype(np.float64),
    ("c", 8): np.dtype(np.complex128),
    ("c", 16): np.dtype(np.complex128),
}

# A CSV header cell: `x`, `x[3]` or `x[1, 2]`.
_COLUMN_TITLE = re.compile(r"(?P<base>[A-Za-z_]\w*)(?:\[(?P<index>\s*\d+\s*(?:,\s*\d+\s*)*)\])?")


class _Problem(Exception):
    """What is wrong with the input; `read_input` prefixes it with the option."""


def read_input(name: str, path: str, stdin: BinaryIO | None = None) -> np.ndarray:
    """Load the array for `--input NAME=PATH`; PATH `-` is standard input, format sniffed."""
    try:
        if path == "-":
            array = _read_stdin(name, stdin if stdin is not None else sys.stdin.buffer)
        else:
            array = _read_file(name, path)
        return _normalise(array)
    except _Problem as problem:
        raise UsageError(f"--input {name}={path}: {problem}") from None


def _read_stdin(name: str, stdin: BinaryIO) -> np.ndarray:
    try:
        data = stdin.read()
    except OSError as exc:
        raise _Problem(f"cannot read standard input: {exc.strerror or exc}") from None
    return _LOADERS[_sniff(data)](io.BytesIO(data), name)


def _sniff(data: bytes) -> str:
    """The format of standard input, from its first bytes."""
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if data.startswith(b"PK\x03\x04"):
        return "npz"
    return "csv"


def _read_file(name: str, path: str) -> np.ndarray:
    suffix = os.path.splitext(path)[1].lower()
    if suffix[1:] not in _LOADERS:
        described = f"suffix {suffix!r}" if suffix else "no suffix"
        raise _Problem(f"cannot tell the format from {described}: use .npy, .npz or .csv")
    try:
        with open(path, "rb") as stream:
            return _LOADERS[suffix[1:]](stream, name)
    except OSError as exc:
        raise _Problem(f"cannot read: {exc.strerror or exc}") from None


def _load_npy(stream: BinaryIO, _name: str) -> np.ndarray:
    """The one unnamed array of a .npy file; never unpickles, and says why it refuses to."""
    try:
        if _npy_dtype(stream).hasobject:
            raise _Problem("the .npy file holds Python objects (dtype object): not loaded")
        stream.seek(0)
        return np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        reason = str(exc).rstrip(".")
        raise _Problem(f"not a valid .npy file, truncated or corrupt ({reason})") from None


def _npy_dtype(stream: BinaryIO) -> np.dtype:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)[2]
    return np.lib.format.read_array_header_2_0(stream)[2]


def _load_npz(stream: BinaryIO, name: str) -> np.ndarray:
    """The array NAME of an .npz archive, or its only array whatever it is called."""
    try:
        with zipfile.ZipFile(stream) as archive:
            members = {
                member.removesuffix(".npy"): member
                for member in archive.namelist()
                if not member.endswith("/")
            }
            member = _npz_member(members, name)
            with archive.open(member) as array_stream:
                return _load_npy(array_stream, name)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _Problem(f"not a valid .npz file, truncated or corrupt ({exc})") from None


def _npz_member(members: dict[str, str], name: str) -> str:
    if name in members:
        return members[name]
    if len(members) == 1:
        return next(iter(members.values()))
    if not members:
        raise _Problem("the .npz file holds no arrays")
    raise _Problem(f"no array {name!r} in the .npz file; it holds {', '.join(members)}")


def _load_csv(stream: BinaryIO, name: str) -> np.ndarray:
    """Columns NAME or NAME[i,...] of a CSV file with a header line, as (rows, *shape)."""
    try:
        text = stream.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Problem("not a .npy or .npz file, and not UTF-8 text for CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [title.strip() for title in next(reader, [])]
        if not header:
            raise _Problem("the CSV file has no header line")
        positions, shape = _select_columns(header, name)
        numbered = ((reader.line_num, row) for row in reader)
        columns, lines = _read_rows(numbered, len(header), positions)
    except csv.Error as exc:
        raise _Problem(f"line {reader.line_num}: malformed CSV ({exc})") from None
    titles = [header[position] for position in positions]
    return _convert(columns, titles, lines).T.reshape(len(lines), *shape)


def _select_columns(header: list[str], name: str) -> tuple[list[int], tuple[int, ...]]:
    """The header positions of NAME's columns, in C order, and the shape they fill."""
    parsed = [_parse_title(title) for title in header]
    bases = list(dict.fromkeys(base for base, _ in parsed))
    if name not in bases and len(bases) != 1:
        raise _Problem(
            f"no column named {name} or {name}[i,...]; the header names {', '.join(bases)}"
        )
    chosen = name if name in bases else bases[0]
    indexed = {}
    for position, (base, index) in enumerate(parsed):
        if base != chosen:
            continue
        if index in indexed:
            raise _Problem(f"column {header[position]!r} appears more than once")
        indexed[index] = position
    shape = _grid_shape(chosen, list(indexed))
    return [indexed[index] for index in sorted(indexed)], shape


def _parse_title(title: str) -> tuple[str, tuple[int, ...]]:
    """(base name, index); a plain column has the index (), any other title is its own name."""
    match = _COLUMN_TITLE.fullmatch(title)
    if match is None:
        return title, ()
    index = match["index"]
    return match["base"], () if index is None else tuple(map(int, index.split(",")))


def _grid_shape(base: str, indices: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The state shape that the indices cover, which they must cover exactly."""
    if len({len(index) for index in indices}) > 1:
        raise _Problem(f"the columns of {base!r} have different numbers of indices")
    rank = len(indices[0])
    shape = tuple(max(index[axis] for index in indices) + 1 for axis in range(rank))
    for index in np.ndindex(shape):
        if index not in indices:
            cell = ",".join(map(str, index))
            raise _Problem(
                f"the columns of {base!r} do not fill a grid of shape {shape}: "
                f"{base}[{cell}] is missing"
            )
    return shape


def _read_rows(
    numbered: Iterator[tuple[int, list[str]]], width: int, positions: list[int]
) -> tuple[list[list[str]], list[int]]:
    """The cells of the chosen columns, column by column, and each row's line number."""
    columns: list[list[str]] = [[] for _ in positions]
    lines = []
    for line, row in numbered:
        if not row:
            raise _Problem(f"line {line} is empty")
        if len(row) != width:
            raise _Problem(f"line {line} has {len(row)} fields, the header has {width}")
        for column, position in zip(columns, positions, strict=True):
            column.append(row[position])
        lines.append(line)
    return columns, lines


def _parse_bool(cell: str) -> bool:
    word = cell.strip().lower()
    if word not in ("true", "false"):
        raise ValueError(cell)
    return word == "true"


# The narrowest kind that parses every cell wins: bool, then int64, float64, complex128.
_CELL_KINDS: tuple[tuple[np.dtype, Callable[[str], object]], ...] = (
    (np.dtype(np.bool_), _parse_bool),
    (np.dtype(np.int64), int),
    (np.dtype(np.float64), float),
    (np.dtype(np.complex128), complex),
)


def _convert(columns: list[list[str]], titles: list[str], lines: list[int]) -> np.ndarray:
    """The cells as one array of shape (columns, rows)."""
    if not lines:
        return np.empty((len(columns), 0), dtype=np.float64)
    for dtype, parse in _CELL_KINDS:
        try:
            values = [list(map(parse, column)) for column in columns]
        except ValueError:
            continue
        try:
            return np.array(values, dtype=dtype)
        except OverflowError:
            raise _too_big(columns, titles, lines) from None
    raise _bad_cell(columns, titles, lines)


def _cells(
    columns: list[list[str]], titles: list[str], lines: list[int]
) -> Iterator[tuple[str, str]]:
    """(where, cell) for every cell, row by row, to point at the first bad one."""
    for row, line in enumerate(lines):
        for column, title in zip(columns, titles, strict=True):
            yield f"line {line}, column {title!r}", column[row]


def _too_big(columns: list[list[str]], titles: list[str], lines: list[int]) -> _Problem:
    where, cell = next(
        (where, cell)
        for where, cell in _cells(columns, titles, lines)
        if not -_INT64_MAX - 1 <= int(cell) <= _INT64_MAX
    )
    return _Problem(f"{where}: {cell.strip()} does not fit in int64")


def _bad_cell(columns: list[list[str]], titles: list[str], lines: list[int]) -> _Problem:
    for where, cell in _cells(columns, titles, lines):
        if not cell.strip():
            return _Problem(f"{where}: empty cell")
        if not (_parses(complex, cell) or _parses(_parse_bool, cell)):
            return _Problem(f"{where}: {cell!r} is not a number")
    cells = _cells(columns, titles, lines)
    where, cell = next((where, cell) for where, cell in cells if _parses(_parse_bool, cell))
    return _Problem(f"{where}: {cell!r} mixed with numbers")


def _parses(parse: Callable[[str], object], cell: str) -> bool:
    try:
        parse(cell)
    except ValueError:
        return False
    return True


def _normalise(array: np.ndarray) -> np.ndarray:
    """The array in one of recur's dtypes: narrow ints widen, float16 becomes float32."""
    dtype = array.dtype
    target = _TARGET_DTYPES.get((dtype.kind, dtype.itemsize))
    if target is None:
        raise _Problem(
            f"unsupported dtype {dtype}: recur reads bool, integer, float and complex arrays"
        )
    if dtype.kind == "u" and dtype.itemsize == 8 and array.size and array.max() > _INT64_MAX:
        raise _Problem(f"uint64 values above {_INT64_MAX} do not fit in int64")
    return array.astype(target, copy=False)


_LOADERS: dict[str, Callable[[BinaryIO, str], np.ndarray]] = {
    "npy": _load_npy,
    "npz": _load_npz,
    "csv": _load_csv,
}
