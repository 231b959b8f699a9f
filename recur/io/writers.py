"""The writers of the output formats: the outputs of a run as CSV, .npy or .npz bytes.

Each writer takes a binary stream; `recur.io.outputs` chooses the format and the
stream (a file written whole, or standard output). The checks refuse what a format
cannot hold before a long run rather than after it.
"""

from __future__ import annotations

import csv
import errno
import io
import itertools
import math
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import numpy as np

from recur.diagnostics import UsageError


@dataclass(frozen=True, slots=True, eq=False)
class OutputArray:
    """One output to write; `per_step`: the leading axis is the step axis (`keep: all`,
    `last N`, `every K`); `keep`: which steps it holds, as the spec says it (None: all
    or the last, as `per_step` says)."""

    name: str
    array: np.ndarray
    per_step: bool
    keep: str | None = None

    @property
    def kept(self) -> str:
        return self.keep or ("all" if self.per_step else "last")


def write_csv(stream: TextIO, outputs: Sequence[OutputArray]) -> None:
    """RFC 4180 CSV: a header line, then one line per step (or one line for final states).

    Written a block of about `CSV_BLOCK_CELLS` cells at a time (rows, or pieces of one
    wide row): as Python text a cell takes some 130 bytes, 17 times a float64, so the
    whole table at once would need far more memory than the run that made it.
    """
    check_csv(outputs)
    if not outputs:
        return
    _write_line(stream, (title for output in outputs for title in _titles(output)))
    tables = [_Table(output) for output in outputs]
    width = sum(table.width for table in tables)
    if width > CSV_BLOCK_CELLS:
        for row in range(tables[0].rows):
            _write_line(stream, (cell for table in tables for cell in table.row(row)))
        return
    writer = csv.writer(stream, lineterminator="\n")
    block = CSV_BLOCK_CELLS // max(width, 1)
    for start in range(0, tables[0].rows, block):
        columns = [column for table in tables for column in table.columns(start, block)]
        writer.writerows(zip(*columns, strict=True))


CSV_BLOCK_CELLS = 2**16


def _write_line(stream: TextIO, cells: Iterator[str]) -> None:
    """One CSV line, written a block of cells at a time: the same text as one `writerow`."""
    piece = csv.writer(stream, lineterminator="")
    separator = ""
    while block := list(itertools.islice(cells, CSV_BLOCK_CELLS)):
        stream.write(separator)
        piece.writerow(block)
        separator = ","
    stream.write("\n")


class _Table:
    """An output as CSV cells: one row per step (or one for final states), one column per
    element of the state in C order; formatted a block at a time."""

    def __init__(self, output: OutputArray) -> None:
        self.steps = output.array if output.per_step else output.array[np.newaxis]
        self.rows = len(self.steps)
        self.width = math.prod(_state_shape(output))
        self.text = _CELL_TEXT[self.steps.dtype.kind]

    def columns(self, start: int, count: int) -> list[list[str]]:
        """Rows `start` to `start + count` as text, a whole column at a time."""
        block = self.steps[start:start + count]
        table = block.reshape(len(block), self.width)
        return [list(map(self.text, column)) for column in table.T.tolist()]

    def row(self, row: int) -> Iterator[str]:
        values = self.steps[row].reshape(self.width)
        for start in range(0, self.width, CSV_BLOCK_CELLS):
            yield from map(self.text, values[start:start + CSV_BLOCK_CELLS].tolist())


def check_csv(outputs: Sequence[OutputArray]) -> None:
    """A CSV line is one step of every output: all must keep the same steps."""
    kinds: dict[str, list[str]] = {}
    for output in outputs:
        kinds.setdefault(output.kept, []).append(output.name)
    if len(kinds) > 1:
        groups = [f"'{kept}' ({', '.join(names)})" for kept, names in kinds.items()]
        raise UsageError(
            f"cannot mix outputs kept {', '.join(groups[:-1])} and {groups[-1]} in one CSV",
            notes=(
                "write them one at a time with --output NAME, keep only the final states "
                "with --last, or write an .npz file",
            ),
        )
    assert len({output.array.shape[0] for output in outputs if output.per_step}) <= 1


def _state_shape(output: OutputArray) -> tuple[int, ...]:
    return output.array.shape[1:] if output.per_step else output.array.shape


def _titles(output: OutputArray) -> Iterator[str]:
    """`x` for a scalar state, else `x[i,...]` for each element in C order."""
    shape = _state_shape(output)
    if not shape:
        yield output.name
        return
    size = math.prod(shape)  # a block at a time: np.ndindex takes 40 bytes an index
    for start in range(0, size, CSV_BLOCK_CELLS):
        indices = np.unravel_index(np.arange(start, min(start + CSV_BLOCK_CELLS, size)), shape)
        for index in zip(*(axis.tolist() for axis in indices), strict=True):
            yield f"{output.name}[{','.join(map(str, index))}]"


def _bool_text(value: object) -> str:
    return "true" if value else "false"


# Python's own repr of a float or complex reads back to the same float64 or complex128.
_CELL_TEXT: dict[str, Callable[[object], str]] = {
    "b": _bool_text,
    "i": str,
    "u": str,
    "f": repr,
    "c": repr,
}


def write_csv_bytes(stream: BinaryIO, outputs: Sequence[OutputArray]) -> None:
    """`write_csv` onto a binary stream, as UTF-8."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        write_csv(text, outputs)
    finally:
        text.detach()  # flushes, and leaves `stream` open


def write_npy(stream: BinaryIO, outputs: Sequence[OutputArray]) -> None:
    """The single output as a .npy array."""
    check_npy(outputs)
    np.lib.format.write_array(WholeWrites(stream), np.asarray(outputs[0].array),
                              allow_pickle=False)


class WholeWrites:
    """A stream whose `write` takes all of the bytes, or raises; else it stands for `stream`.

    A pipe whose reader leaves in the middle of a large write (`| head -c 10`) takes
    part of it without an error: the system call returns what went through, and an
    unbuffered standard output (PYTHONUNBUFFERED, `python -u`) passes that count on.
    NumPy, `zipfile` and `TextIOWrapper` ignore it, so the rest was lost and the run
    ended with status 0; writing the rest finds the pipe closed. Also, NumPy does not
    take this for a file, so it writes through `write` rather than `ndarray.tofile`,
    whose failures (a full disk, a closed pipe) are OSErrors without an errno ("1000
    requested and 24 written").
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: Any) -> int:
        return write_whole(self._stream, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def write_whole(stream: BinaryIO, data: Any) -> int:
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        written = stream.write(view[done:])
        if not written:  # a stream that would block, or takes nothing: never spin
            raise BlockingIOError(errno.EAGAIN, "the output takes no more bytes")
        done += written
    return done


def check_npy(outputs: Sequence[OutputArray]) -> None:
    if len(outputs) != 1:
        raise UsageError(".npy holds one array; choose one with --output NAME or write .npz")


def write_npz(stream: BinaryIO, outputs: Sequence[OutputArray]) -> None:
    """An .npz archive with one array per output, under its name (as `numpy.savez` does).

    Built here rather than with `numpy.savez`, whose own keyword arguments would swallow
    outputs named `file` or `allow_pickle`.
    """
    with zipfile.ZipFile(stream, "w", allowZip64=True) as archive:
        for output in outputs:
            with archive.open(f"{output.name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(output.array), allow_pickle=False)
