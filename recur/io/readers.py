"""The readers of the input formats: every array of a .npy, .npz or CSV stream by name.

A reader checks what it reads and says what is wrong in a `ReadProblem`, which the
caller (`recur.io.inputs`) prefixes with the option or the file; it never returns an
array it has not checked (an .npy header that declares more data than the file holds,
a CSV cell that is not a number). Widening to recur's dtypes is the caller's.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

INT64_MAX = np.iinfo(np.int64).max
# The largest array an input may hold, as for arrays a spec makes (`zeros`, `arange`, ...):
# a file's header is checked against it before anything is allocated.
MAX_INPUT_ELEMENTS = 1_000_000_000

# A CSV header cell: `x`, `x[3]` or `x[1, 2]`.
_COLUMN_TITLE = re.compile(r"(?P<base>[A-Za-z_]\w*)(?:\[(?P<index>\s*\d+\s*(?:,\s*\d+\s*)*)\])?")


class ReadProblem(Exception):
    """What is wrong with the input; `exit_code` set where it is not a usage error."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def read_npy(stream: IO[bytes], _name: str | None) -> dict[str, np.ndarray]:
    """The one array of a .npy file, which has no name: under ''."""
    return {"": _load_npy(stream)}


def read_npz(stream: IO[bytes], name: str | None) -> dict[str, np.ndarray]:
    """Every member of an .npz archive, in the archive's order (none is fine); with
    `name`, only the array NAME, or the only one whatever it is called."""
    try:
        with zipfile.ZipFile(stream) as archive:
            members = {
                member.removesuffix(".npy"): member
                for member in archive.namelist()
                if not member.endswith("/")
            }
            chosen = list(members) if name is None else [_npz_member(members, name)]
            return {key: _npz_array(archive, key, members[key], named=name is None)
                    for key in chosen}
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ReadProblem(f"not a valid .npz file, truncated or corrupt ({exc})") from None


def _npz_array(archive: zipfile.ZipFile, key: str, member: str, named: bool) -> np.ndarray:
    """One member's array; `named`: its problems name it (the archive has others)."""
    size = archive.getinfo(member).file_size
    with archive.open(member) as array_stream:
        try:
            return _load_npy(array_stream, size)
        except ReadProblem as problem:
            if not named:
                raise
            raise ReadProblem(f"array {key!r}: {problem}", problem.exit_code) from None


def read_csv(stream: IO[bytes], name: str | None) -> dict[str, np.ndarray]:
    """Every column group of a CSV file with a header line, in header order, each as
    (rows, *shape): `x`, or `x[i,...]` for each element; with `name`, only the columns
    NAME (or the only group whatever it is called), under NAME."""
    reader = _csv_reader(stream)
    try:
        header = _csv_header(reader)
        groups = _column_groups(header, name)
        positions = sorted(p for chosen, _ in groups.values() for p in chosen)
        numbered = ((reader.line_num, row) for row in reader)
        columns, lines = _read_rows(numbered, len(header), positions)
    except csv.Error as exc:
        raise ReadProblem(f"line {reader.line_num}: malformed CSV ({exc})") from None
    column_of = {position: column for column, position in zip(columns, positions, strict=True)}
    arrays = {}
    for base, (chosen, shape) in groups.items():
        cells = [column_of[position] for position in chosen]
        titles = [header[position] for position in chosen]
        arrays[base] = _convert(cells, titles, lines).T.reshape(len(lines), *shape)
    return arrays


def _column_groups(header: list[str], name: str | None
                   ) -> dict[str, tuple[list[int], tuple[int, ...]]]:
    """The header positions and the shape of each array to read, by its name."""
    if name is not None:
        return {name: _select_columns(header, name)}
    if "" in header:
        raise ReadProblem(f"column {header.index('') + 1} of the header has no title")
    bases = dict.fromkeys(_parse_title(title)[0] for title in header)
    return {base: _select_columns(header, base) for base in bases}


def _load_npy(stream: IO[bytes], size: int | None = None) -> np.ndarray:
    """The one unnamed array of a .npy file; never unpickles, and says why it refuses to.

    The header is checked before any data is read: an array over `MAX_INPUT_ELEMENTS`, or
    more data than the file holds (`size` bytes, else found by seeking), is refused
    before NumPy allocates it.
    """
    try:
        start = stream.tell()
        shape, dtype = _npy_header(stream)
        if dtype.hasobject:
            raise ReadProblem("the .npy file holds Python objects (dtype object): not loaded")
        _check_declared_size(stream, shape, dtype, None if size is None else start + size)
        stream.seek(start)
        return np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, EOFError, OverflowError) as exc:
        reason = str(exc).rstrip(".")
        raise ReadProblem(f"not a valid .npy file, truncated or corrupt ({reason})") from None


def _npy_header(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a .npy header declares.

    NumPy parses the header's text with Python's tokenizer and `literal_eval`, which
    fail on damaged bytes in more ways than ValueError (TokenError, SyntaxError, ...):
    any of them means the file is not a valid .npy file.
    """
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, EOFError, OverflowError):
        raise
    except Exception as exc:  # the header's text is damaged
        reason = f"{type(exc).__name__}: {exc}".rstrip(".")
        raise ValueError(f"cannot read its header ({reason})") from None
    return tuple(shape), dtype


def _check_declared_size(
    stream: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, end: int | None
) -> None:
    """Refuse a header that declares too many elements, or more bytes than follow it."""
    if any(not isinstance(dim, int) or dim < 0 for dim in shape):
        raise ReadProblem(f"not a valid .npy file: its header declares the shape {shape}")
    count = math.prod(shape)
    if count > MAX_INPUT_ELEMENTS:
        raise ReadProblem(
            f"the .npy header declares an array of shape {shape}, {count:,} elements; "
            f"the limit is {MAX_INPUT_ELEMENTS:,}"
        )
    data_start = stream.tell()
    if end is None:
        end = _stream_end(stream)
    needed = count * dtype.itemsize
    if end is not None and end - data_start < needed:
        raise ReadProblem(
            f"not a valid .npy file, truncated or corrupt (its header declares "
            f"{needed:,} bytes of data, it holds {max(end - data_start, 0):,})"
        )


def _stream_end(stream: IO[bytes]) -> int | None:
    """The stream's length, if it can seek; its position is left where it was."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return None
    return end


def _npz_member(members: dict[str, str], name: str) -> str:
    if name in members:
        return name
    if len(members) == 1:
        return next(iter(members))
    if not members:
        raise ReadProblem("the .npz file holds no arrays")
    raise ReadProblem(f"no array {name!r} in the .npz file; it holds {', '.join(members)}")


def _csv_reader(stream: IO[bytes]) -> Any:
    try:
        text = stream.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReadProblem("not a .npy or .npz file, and not UTF-8 text for CSV") from None
    return csv.reader(io.StringIO(text, newline=""), strict=True)


def _csv_header(reader: Any) -> list[str]:
    """The titles of the header line (a csv.Error here is caught by the caller)."""
    header = [title.strip() for title in next(reader, [])]
    if not header:
        raise ReadProblem("the CSV file has no header line")
    return header


def _select_columns(header: list[str], name: str) -> tuple[list[int], tuple[int, ...]]:
    """The header positions of NAME's columns, in C order, and the shape they fill."""
    parsed = [_parse_title(title) for title in header]
    bases = list(dict.fromkeys(base for base, _ in parsed))
    if name not in bases and len(bases) != 1:
        raise ReadProblem(
            f"no column named {name} or {name}[i,...]; the header names {', '.join(bases)}"
        )
    chosen = name if name in bases else bases[0]
    indexed = {}
    for position, (base, index) in enumerate(parsed):
        if base != chosen:
            continue
        if index in indexed:
            raise ReadProblem(f"column {header[position]!r} appears more than once")
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
    """The state shape that the indices cover, which they must cover exactly.

    The indices are distinct, so they fill the grid exactly when there are as many as
    it has cells; otherwise the first missing cell (in C order) is among the first
    `len(indices) + 1` cells, however large the indices in the header.
    """
    if len({len(index) for index in indices}) > 1:
        raise ReadProblem(f"the columns of {base!r} have different numbers of indices")
    rank = len(indices[0])
    shape = tuple(max(index[axis] for index in indices) + 1 for axis in range(rank))
    if math.prod(shape) == len(indices):
        return shape
    present = set(indices)
    missing = next(index for index in _c_order(shape) if index not in present)
    cell = ",".join(map(str, missing))
    raise ReadProblem(
        f"the columns of {base!r} do not fill a grid of shape {shape}: "
        f"{base}[{cell}] is missing"
    )


def _c_order(shape: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """The indices of a grid in C order, lazily (np.ndindex refuses huge shapes)."""
    index = [0] * len(shape)
    while True:
        yield tuple(index)
        axis = len(shape) - 1
        while axis >= 0:
            index[axis] += 1
            if index[axis] < shape[axis]:
                break
            index[axis] = 0
            axis -= 1
        if axis < 0:
            return


def _read_rows(
    numbered: Iterator[tuple[int, list[str]]], width: int, positions: list[int]
) -> tuple[list[list[str]], list[int]]:
    """The cells of the chosen columns, column by column, and each row's line number."""
    columns: list[list[str]] = [[] for _ in positions]
    lines = []
    for line, row in numbered:
        if not row:
            raise ReadProblem(f"line {line} is empty")
        if len(row) != width:
            raise ReadProblem(f"line {line} has {len(row)} fields, the header has {width}")
        for column, position in zip(columns, positions, strict=True):
            column.append(row[position])
        lines.append(line)
    return columns, lines


# What a cell may hold: printable ASCII and tabs, no '_'. Within it, Python's own syntax
# for int, float and complex, which beyond ASCII also reads '1_000', the digits of
# every script ('٣') and full-width ones ('１２'): a CSV file does not mean those.
_PLAIN_CELLS = re.compile(r"[\t\x20-\x5e\x60-\x7e]*")
_INTEGER_TEXT = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*")
# The finite numbers written in a float or complex cell (not inf or nan).
_FINITE_LITERAL = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _parse_bool(cell: str) -> bool:
    word = cell.strip().lower()
    if word not in ("true", "false"):
        raise ValueError(cell)
    return word == "true"


def _parse_int(cell: str) -> int:
    """`int(cell)`; an integer too long for `int` (over 4300 digits) is far out of int64."""
    try:
        return int(cell)
    except ValueError:
        if _INTEGER_TEXT.fullmatch(cell):
            return INT64_MAX + 1
        raise


# The narrowest kind that parses every cell wins: bool, then int64, float64, complex128.
# The cells are plain (`_PLAIN_CELLS`) by then.
_CELL_KINDS: tuple[tuple[np.dtype, Callable[[str], object]], ...] = (
    (np.dtype(np.bool_), _parse_bool),
    (np.dtype(np.int64), _parse_int),
    (np.dtype(np.float64), float),
    (np.dtype(np.complex128), complex),
)


def _convert(columns: list[list[str]], titles: list[str], lines: list[int]) -> np.ndarray:
    """The cells as one array of shape (columns, rows)."""
    if not lines:
        return np.empty((len(columns), 0), dtype=np.float64)
    if not all(_PLAIN_CELLS.fullmatch("".join(column)) for column in columns):
        raise _bad_cell(columns, titles, lines)
    for dtype, parse in _CELL_KINDS:
        try:
            values = [list(map(parse, column)) for column in columns]
        except ValueError:
            continue
        try:
            array = np.array(values, dtype=dtype)
        except OverflowError:
            raise _too_big(columns, titles, lines) from None
        if dtype.kind in "fc" and np.isinf(array).any():
            _check_finite_literals(columns, titles, lines)
        return array
    raise _bad_cell(columns, titles, lines)


def _cells(
    columns: list[list[str]], titles: list[str], lines: list[int]
) -> Iterator[tuple[str, str]]:
    """(where, cell) for every cell, row by row, to point at the first bad one."""
    for row, line in enumerate(lines):
        for column, title in zip(columns, titles, strict=True):
            yield f"line {line}, column {title!r}", column[row]


def _too_big(columns: list[list[str]], titles: list[str], lines: list[int]) -> ReadProblem:
    where, cell = next(
        (where, cell)
        for where, cell in _cells(columns, titles, lines)
        if not -INT64_MAX - 1 <= _parse_int(cell) <= INT64_MAX
    )
    text = cell.strip()
    shown = text if len(text) <= 40 else f"an integer of {len(text)} characters"
    return ReadProblem(f"{where}: {shown} does not fit in int64")


def _check_finite_literals(columns: list[list[str]], titles: list[str],
                           lines: list[int]) -> None:
    """Refuse a number written in a cell that rounds to inf: `1e400` is not `inf`
    (Python's `float` makes it so without a word)."""
    for where, cell in _cells(columns, titles, lines):
        if any(math.isinf(float(literal)) for literal in _FINITE_LITERAL.findall(cell)):
            raise ReadProblem(f"{where}: {cell.strip()} is beyond the range of float64 "
                           f"(it would become infinite; write inf if that is meant)")


def _bad_cell(columns: list[list[str]], titles: list[str], lines: list[int]) -> ReadProblem:
    for where, cell in _cells(columns, titles, lines):
        if not cell.strip():
            return ReadProblem(f"{where}: empty cell")
        if not (_PLAIN_CELLS.fullmatch(cell) and
                (_parses(complex, cell) or _parses(_parse_bool, cell))):
            return ReadProblem(f"{where}: {cell!r} is not a number{_not_plain(cell)}")
    cells = _cells(columns, titles, lines)
    where, cell = next((where, cell) for where, cell in cells if _parses(_parse_bool, cell))
    return ReadProblem(f"{where}: {cell!r} mixed with numbers")


def _not_plain(cell: str) -> str:
    """Why a cell Python would read as a number is not one here; '' for any other cell."""
    if not _parses(complex, cell):
        return ""
    if "_" in cell:
        return " (write it without '_')"
    return " (digits are the ASCII 0-9, signs and points ASCII too)"


def _parses(parse: Callable[[str], object], cell: str) -> bool:
    try:
        parse(cell)
    except ValueError:
        return False
    return True
