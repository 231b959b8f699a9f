"""Reading `--input NAME=PATH` arrays from .npy, .npz and CSV files or standard input.

Whatever the format, the array comes back in one of the dtypes recur computes with,
and every problem is a `UsageError` that names the option, so a bad file never ends
in a traceback.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol, cast

import numpy as np

from recur.diagnostics import UsageError

_INT64_MAX = np.iinfo(np.int64).max
# The largest array an input may hold, as for arrays a spec makes (`zeros`, `arange`, ...):
# a file's header is checked against it before anything is allocated.
MAX_INPUT_ELEMENTS = 1_000_000_000
EXIT_NO_MEMORY = 1  # as a run that does not fit in memory

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


class Digest(Protocol):
    """A `hashlib` hash, fed the bytes an input is read from."""

    def update(self, data: bytes, /) -> None: ...


class _Problem(Exception):
    """What is wrong with the input; `read_input` prefixes it with the option."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def read_input(name: str, path: str, stdin: IO[bytes] | None = None,
               digest: Digest | None = None) -> np.ndarray:
    """Load the array for `--input NAME=PATH`; PATH `-` is standard input, format sniffed.

    `digest` is fed every byte of the file or of standard input, in order, as it is read
    (once: standard input cannot be read again, and a file may change in between).
    """
    try:
        if path == "-":
            array = _read_stdin(name, _standard_input(stdin, "standard input"), digest)
        else:
            array = _read_file(name, path, digest)
        return _normalise(array)
    except MemoryError:
        problem = _Problem("the array does not fit in the memory available", EXIT_NO_MEMORY)
    except _Problem as raised:
        problem = raised
    error = UsageError(f"--input {name}={path}: {problem}")
    if problem.exit_code is not None:
        error.exit_code = problem.exit_code
    raise error


def read_all(path: str, stdin: IO[bytes] | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """Every array of a .npy, .npz or CSV file, by name, and the format it was read as.

    PATH `-` is standard input, its format sniffed as for `--input NAME=-`. CSV columns
    are grouped by name as `read_input` groups them (`x`, `x[0]`, `"x[0,1]"`), each
    group typed on its own; an .npz gives each member under its name; an .npy's one
    array has no name and comes back under ''. Arrays are widened to recur's dtypes as
    `read_input` does, and every problem is a `UsageError` that begins with PATH.
    """
    try:
        if path == "-":
            data = _read_all_stdin(_standard_input(stdin, "it"))
            fmt = _sniff(data)
            arrays = _ALL_LOADERS[fmt](io.BytesIO(data))
        else:
            fmt = _format_of(path)
            try:
                with open(path, "rb") as stream:
                    arrays = _ALL_LOADERS[fmt](stream)
            except OSError as exc:
                raise _Problem(f"cannot read: {exc.strerror or exc}") from None
        return fmt, {name: _normalise_named(name, array, fmt) for name, array in arrays.items()}
    except MemoryError:
        problem = _Problem("the arrays do not fit in the memory available", EXIT_NO_MEMORY)
    except _Problem as raised:
        problem = raised
    where = "standard input" if path == "-" else path
    error = UsageError(f"{where}: {problem}")
    if problem.exit_code is not None:
        error.exit_code = problem.exit_code
    raise error


def _standard_input(stdin: IO[bytes] | None, called: str) -> IO[bytes]:
    """`stdin`, else the process's standard input, which is None when it was started
    with its descriptor 0 closed (`<&-`); `called`: what the message calls it."""
    if stdin is not None:
        return stdin
    if sys.stdin is None:
        raise _Problem(f"{called} is closed: there is nothing to read")
    return sys.stdin.buffer


def _read_all_stdin(stdin: IO[bytes]) -> bytes:
    try:
        return stdin.read()
    except OSError as exc:
        raise _Problem(f"cannot read: {exc.strerror or exc}") from None


def _format_of(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix[1:] not in _LOADERS:
        described = f"suffix {suffix!r}" if suffix else "no suffix"
        raise _Problem(f"cannot tell the format from {described}: use .npy, .npz or .csv")
    return suffix[1:]


def _normalise_named(name: str, array: np.ndarray, fmt: str) -> np.ndarray:
    try:
        return _normalise(array)
    except _Problem as problem:
        if fmt == "npy":
            raise
        raise _Problem(f"array {name!r}: {problem}", problem.exit_code) from None


def _load_npy_all(stream: IO[bytes]) -> dict[str, np.ndarray]:
    return {"": _load_npy(stream, "")}


def _load_npz_all(stream: IO[bytes]) -> dict[str, np.ndarray]:
    """Every member of an .npz archive, in the archive's order; none is fine."""
    arrays = {}
    try:
        with zipfile.ZipFile(stream) as archive:
            for member in archive.namelist():
                if member.endswith("/"):
                    continue
                name = member.removesuffix(".npy")
                size = archive.getinfo(member).file_size
                with archive.open(member) as array_stream:
                    try:
                        arrays[name] = _load_npy(array_stream, name, size)
                    except _Problem as problem:
                        raise _Problem(f"array {name!r}: {problem}", problem.exit_code) from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _Problem(f"not a valid .npz file, truncated or corrupt ({exc})") from None
    return arrays


def _csv_reader(stream: IO[bytes]) -> Any:
    try:
        text = stream.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Problem("not a .npy or .npz file, and not UTF-8 text for CSV") from None
    return csv.reader(io.StringIO(text, newline=""), strict=True)


def _csv_header(reader: Any) -> list[str]:
    """The titles of the header line (a csv.Error here is caught by the caller)."""
    header = [title.strip() for title in next(reader, [])]
    if not header:
        raise _Problem("the CSV file has no header line")
    return header


def _load_csv_all(stream: IO[bytes]) -> dict[str, np.ndarray]:
    """Every column group of a CSV file, in header order, each as (rows, *shape)."""
    reader = _csv_reader(stream)
    try:
        header = _csv_header(reader)
        if "" in header:
            raise _Problem(f"column {header.index('') + 1} of the header has no title")
        bases = dict.fromkeys(_parse_title(title)[0] for title in header)
        groups = {base: _select_columns(header, base) for base in bases}
        numbered = ((reader.line_num, row) for row in reader)
        columns, lines = _read_rows(numbered, len(header), list(range(len(header))))
    except csv.Error as exc:
        raise _Problem(f"line {reader.line_num}: malformed CSV ({exc})") from None
    arrays = {}
    for base, (positions, shape) in groups.items():
        chosen = [columns[position] for position in positions]
        titles = [header[position] for position in positions]
        arrays[base] = _convert(chosen, titles, lines).T.reshape(len(lines), *shape)
    return arrays


_ALL_LOADERS: dict[str, Callable[[IO[bytes]], dict[str, np.ndarray]]] = {
    "npy": _load_npy_all,
    "npz": _load_npz_all,
    "csv": _load_csv_all,
}


def _read_stdin(name: str, stdin: IO[bytes], digest: Digest | None) -> np.ndarray:
    try:
        data = stdin.read()
    except OSError as exc:
        raise _Problem(f"cannot read standard input: {exc.strerror or exc}") from None
    if digest is not None:
        digest.update(data)
    return _LOADERS[_sniff(data)](io.BytesIO(data), name)


def _sniff(data: bytes) -> str:
    """The format of standard input, from its first bytes."""
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a member first, or empty
        return "npz"
    return "csv"


def _read_file(name: str, path: str, digest: Digest | None) -> np.ndarray:
    fmt = _format_of(path)
    try:
        with open(path, "rb") as stream:
            if digest is None:
                return _LOADERS[fmt](stream, name)
            hashing = _HashingReader(stream, digest)
            array = _LOADERS[fmt](cast(IO[bytes], hashing), name)
            hashing.finish()
            return array
    except OSError as exc:
        raise _Problem(f"cannot read: {exc.strerror or exc}") from None


class _HashingReader(io.RawIOBase):
    """A file that feeds `digest` its bytes in file order as a loader reads them.

    Loaders seek (an .npy's header is read twice, a zip's directory first): bytes reach
    the digest once, when a read covers the next unhashed byte. `finish` reads what the
    loader skipped or read out of order (a zip's directory, a few hundred bytes).
    """

    def __init__(self, raw: IO[bytes], digest: Digest) -> None:
        super().__init__()
        self._raw, self._digest, self._hashed = raw, digest, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        start = self._raw.tell()
        data = self._raw.read(len(buffer))
        buffer[:len(data)] = data
        if start <= self._hashed < start + len(data):
            self._digest.update(data[self._hashed - start:])
            self._hashed = start + len(data)
        return len(data)

    def finish(self) -> None:
        self._raw.seek(self._hashed)
        while chunk := self._raw.read(1 << 20):
            self._digest.update(chunk)
        self._hashed = self._raw.tell()


def _load_npy(stream: IO[bytes], _name: str, size: int | None = None) -> np.ndarray:
    """The one unnamed array of a .npy file; never unpickles, and says why it refuses to.

    The header is checked before any data is read: an array over `MAX_INPUT_ELEMENTS`, or
    more data than the file holds (`size` bytes, else found by seeking), is refused
    before NumPy allocates it.
    """
    try:
        start = stream.tell()
        shape, dtype = _npy_header(stream)
        if dtype.hasobject:
            raise _Problem("the .npy file holds Python objects (dtype object): not loaded")
        _check_declared_size(stream, shape, dtype, None if size is None else start + size)
        stream.seek(start)
        return np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, EOFError, OverflowError) as exc:
        reason = str(exc).rstrip(".")
        raise _Problem(f"not a valid .npy file, truncated or corrupt ({reason})") from None


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
        raise _Problem(f"not a valid .npy file: its header declares the shape {shape}")
    count = math.prod(shape)
    if count > MAX_INPUT_ELEMENTS:
        raise _Problem(
            f"the .npy header declares an array of shape {shape}, {count:,} elements; "
            f"the limit is {MAX_INPUT_ELEMENTS:,}"
        )
    data_start = stream.tell()
    if end is None:
        end = _stream_end(stream)
    needed = count * dtype.itemsize
    if end is not None and end - data_start < needed:
        raise _Problem(
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


def _load_npz(stream: IO[bytes], name: str) -> np.ndarray:
    """The array NAME of an .npz archive, or its only array whatever it is called."""
    try:
        with zipfile.ZipFile(stream) as archive:
            members = {
                member.removesuffix(".npy"): member
                for member in archive.namelist()
                if not member.endswith("/")
            }
            member = _npz_member(members, name)
            size = archive.getinfo(member).file_size
            with archive.open(member) as array_stream:
                return _load_npy(array_stream, name, size)
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


def _load_csv(stream: IO[bytes], name: str) -> np.ndarray:
    """Columns NAME or NAME[i,...] of a CSV file with a header line, as (rows, *shape)."""
    reader = _csv_reader(stream)
    try:
        header = _csv_header(reader)
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
    """The state shape that the indices cover, which they must cover exactly.

    The indices are distinct, so they fill the grid exactly when there are as many as
    it has cells; otherwise the first missing cell (in C order) is among the first
    `len(indices) + 1` cells, however large the indices in the header.
    """
    if len({len(index) for index in indices}) > 1:
        raise _Problem(f"the columns of {base!r} have different numbers of indices")
    rank = len(indices[0])
    shape = tuple(max(index[axis] for index in indices) + 1 for axis in range(rank))
    if math.prod(shape) == len(indices):
        return shape
    present = set(indices)
    missing = next(index for index in _c_order(shape) if index not in present)
    cell = ",".join(map(str, missing))
    raise _Problem(
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
            raise _Problem(f"line {line} is empty")
        if len(row) != width:
            raise _Problem(f"line {line} has {len(row)} fields, the header has {width}")
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
            return _INT64_MAX + 1
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


def _too_big(columns: list[list[str]], titles: list[str], lines: list[int]) -> _Problem:
    where, cell = next(
        (where, cell)
        for where, cell in _cells(columns, titles, lines)
        if not -_INT64_MAX - 1 <= _parse_int(cell) <= _INT64_MAX
    )
    text = cell.strip()
    shown = text if len(text) <= 40 else f"an integer of {len(text)} characters"
    return _Problem(f"{where}: {shown} does not fit in int64")


def _check_finite_literals(columns: list[list[str]], titles: list[str],
                           lines: list[int]) -> None:
    """Refuse a number written in a cell that rounds to inf: `1e400` is not `inf`
    (Python's `float` makes it so without a word)."""
    for where, cell in _cells(columns, titles, lines):
        if any(math.isinf(float(literal)) for literal in _FINITE_LITERAL.findall(cell)):
            raise _Problem(f"{where}: {cell.strip()} is beyond the range of float64 "
                           f"(it would become infinite; write inf if that is meant)")


def _bad_cell(columns: list[list[str]], titles: list[str], lines: list[int]) -> _Problem:
    for where, cell in _cells(columns, titles, lines):
        if not cell.strip():
            return _Problem(f"{where}: empty cell")
        if not (_PLAIN_CELLS.fullmatch(cell) and
                (_parses(complex, cell) or _parses(_parse_bool, cell))):
            return _Problem(f"{where}: {cell!r} is not a number{_not_plain(cell)}")
    cells = _cells(columns, titles, lines)
    where, cell = next((where, cell) for where, cell in cells if _parses(_parse_bool, cell))
    return _Problem(f"{where}: {cell!r} mixed with numbers")


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


_LOADERS: dict[str, Callable[[IO[bytes], str], np.ndarray]] = {
    "npy": _load_npy,
    "npz": _load_npz,
    "csv": _load_csv,
}
