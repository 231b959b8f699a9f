"""Writing results as CSV, .npy or .npz, to standard output or to a file.

A file is written whole or not at all: the result goes to a temporary file in the
same folder, which replaces the target only once it is complete and on disk; one that a
writer killed outright left is removed by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import itertools
import math
import os
import re
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO, cast

import numpy as np

from recur.diagnostics import UsageError

FORMATS = ("npy", "npz", "csv")


@dataclass(frozen=True, slots=True, eq=False)
class OutputArray:
    """One output to write; `per_step`: the leading axis is the step axis (`keep: all`)."""

    name: str
    array: np.ndarray
    per_step: bool


def resolve_format(path: str | None, fmt: str | None) -> str:
    """The format to write: `--format` wins, else the suffix of `-o`, else CSV on stdout."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}: use npy, npz or csv")
        return fmt
    if path is None or path == "-":
        return "csv"
    suffix = os.path.splitext(path)[1].lower()[1:]
    if suffix not in FORMATS:
        raise UsageError(
            f"cannot tell the format of {path!r}: use --format or a .npy, .npz or .csv suffix"
        )
    return suffix


def write_csv(stream: TextIO, outputs: Sequence[OutputArray]) -> None:
    """RFC 4180 CSV: a header line, then one line per step (or one line for final states).

    Written a block of about `CSV_BLOCK_CELLS` cells at a time (rows, or pieces of one
    wide row): as Python text a cell takes some 130 bytes, 17 times a float64, so the
    whole table at once would need far more memory than the run that made it.
    """
    _check_csv(outputs)
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


def _check_csv(outputs: Sequence[OutputArray]) -> None:
    kept_all = [output.name for output in outputs if output.per_step]
    kept_last = [output.name for output in outputs if not output.per_step]
    if kept_all and kept_last:
        raise UsageError(
            f"cannot mix outputs kept 'all' ({', '.join(kept_all)}) "
            f"and 'last' ({', '.join(kept_last)}) in one CSV",
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


def write_npy(stream: BinaryIO, outputs: Sequence[OutputArray]) -> None:
    """The single output as a .npy array."""
    _check_npy(outputs)
    np.lib.format.write_array(_WholeWrites(stream), np.asarray(outputs[0].array),
                              allow_pickle=False)


class _WholeWrites:
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
        return _write_whole(self._stream, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _write_whole(stream: BinaryIO, data: Any) -> int:
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        written = stream.write(view[done:])
        if not written:  # a stream that would block, or takes nothing: never spin
            raise BlockingIOError(errno.EAGAIN, "the output takes no more bytes")
        done += written
    return done


def _check_npy(outputs: Sequence[OutputArray]) -> None:
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


def write_outputs(
    outputs: Sequence[OutputArray],
    path: str | None,
    fmt: str | None,
    stdout: BinaryIO | None = None,
    *,
    force: bool = False,
) -> None:
    """Write the outputs to `-o PATH` (None or `-`: standard output) in the chosen format;
    `force`: replace a file the user cannot write (see `atomic_write`)."""
    fmt = resolve_format(path, fmt)
    if fmt == "csv":
        _check_csv(outputs)
    elif fmt == "npy":
        _check_npy(outputs)
    if path is None or path == "-":
        if stdout is None and sys.stdout is None:  # started with standard output closed
            raise UsageError("cannot write to standard output: it is closed",
                             notes=("write to a file with -o PATH",))
        _write_stdout(outputs, fmt, stdout if stdout is not None else sys.stdout.buffer)
    else:
        _write_file(outputs, fmt, path, force)


def _write_stream(stream: BinaryIO, fmt: str, outputs: Sequence[OutputArray]) -> None:
    if fmt != "csv":
        _BINARY_WRITERS[fmt](stream, outputs)
        return
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        write_csv(text, outputs)
    finally:
        text.detach()  # flushes, and leaves `stream` open


_BINARY_WRITERS = {"npy": write_npy, "npz": write_npz}


def _write_stdout(outputs: Sequence[OutputArray], fmt: str, stdout: BinaryIO) -> None:
    if fmt != "csv" and stdout.isatty():
        raise UsageError(
            f"refusing to write binary .{fmt} to a terminal",
            notes=("use -o FILE, pipe it, or --format csv",),
        )
    try:
        _write_stream(cast(BinaryIO, _WholeWrites(stdout)), fmt, outputs)
        stdout.flush()
    except BrokenPipeError:
        raise  # the reader is gone (`| head -1`): the CLI ends quietly
    except OSError as exc:
        discard_output(stdout)
        raise UsageError(f"cannot write to standard output: {exc.strerror or exc}") from None


def discard_output(stdout: BinaryIO | TextIO) -> None:
    """Point a failed standard output at /dev/null, so that the bytes still buffered do
    not fail again, with a traceback, when the interpreter flushes it at exit."""
    try:
        fd = stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def _write_file(outputs: Sequence[OutputArray], fmt: str, path: str, force: bool) -> None:
    atomic_write(path, lambda stream: _write_stream(stream, fmt, outputs), force=force)


def atomic_write(path: str, write: Callable[[BinaryIO], None], *, force: bool = False) -> None:
    """Write to a temporary file beside `path`, then rename it onto `path`.

    Whatever fails (an error, a full disk, Ctrl-C), `path` keeps its old content and
    no temporary file is left behind. A symbolic link is followed: the file it points
    to is replaced, not the link. A path that is not a regular file (`/dev/null`, a
    named pipe, `/dev/stdout`) is written to directly: renaming over it would replace
    the device or the pipe with a file. A file that is replaced keeps its permissions;
    one the user cannot write is refused unless `force` (`check_replaceable`).
    """
    if os.path.isdir(path):
        raise _cannot_write(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    if _is_special(path):  # through a link too: /dev/stdout names a pipe as 'pipe:[N]'
        _write_through(path, write)
        return
    target = os.path.realpath(path) if os.path.islink(path) else path
    check_replaceable(path, force)
    mode = _kept_mode(target)
    folder, base = os.path.split(target)
    folder = folder or "."
    _remove_stale_temporaries(folder, base)
    prefix = f".{base}.{os.urandom(4).hex()}."  # no other writer's temporary file has it
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
        with contextlib.suppress(OSError):  # a file system without locks: age alone guards it
            fcntl.flock(handle, fcntl.LOCK_EX)  # held while written: the file is live
        with open(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask() if mode is None else mode)
        os.replace(temporary, target)
    except BaseException as exc:
        _remove_temporary(folder, prefix)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise


def check_replaceable(path: str, force: bool = False) -> None:
    """Refuse to replace a file the user cannot write, as `cp` does, unless `force`.

    A read-only file is one its owner meant to keep. Whom permissions do not bind (root)
    may write it, and it is replaced, as `cp` replaces it.
    """
    mode = _kept_mode(path)
    if force or mode is None or not os.path.isfile(path) or os.access(path, os.W_OK):
        return
    raise UsageError(f"cannot replace {path!r}: this user may not write it (mode {mode:04o})",
                     notes=("--force replaces it, keeping its mode",))


def _kept_mode(path: str) -> int | None:
    """The permissions of the file `path` names, which its replacement keeps; None when
    there is none. Set-id and sticky bits are not carried to the new content."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return None


def _remove_temporary(folder: str, prefix: str) -> None:
    """Remove the temporary file by its prefix: a Ctrl-C inside `mkstemp`, once the file
    is made but before its name is returned, leaves no name to remove it by."""
    for path in _files_named(folder, lambda name: name.startswith(prefix)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _files_named(folder: str, matches: Callable[[str], object]) -> list[str]:
    """The paths of the entries of `folder` whose names `matches`; none when it cannot
    be listed (a missing folder, where no temporary file was made)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, name) for name in names if matches(name)]


# When this process started, as near as its writer can tell: no temporary file it or a
# writer started after it made can be older.
_STARTED = time.time()


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Remove the temporary files of `base` that writers killed outright (SIGKILL, the
    OOM killer) left beside it: only names of `atomic_write`'s own pattern, older than
    this process, and not locked by a live writer (each holds a lock on its own)."""
    pattern = re.compile(rf"\.{re.escape(base)}\.[0-9a-f]{{8}}\.[a-z0-9_]{{8}}\.tmp")
    for path in _files_named(folder, pattern.fullmatch):
        _remove_if_stale(path)


def _remove_if_stale(path: str) -> None:
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        status = os.fstat(handle)
        if stat.S_ISREG(status.st_mode) and status.st_mtime < _STARTED:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer lives
            os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(handle)


def _is_special(path: str) -> bool:
    """Whether `path` exists and is something other than a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode)


def _write_through(path: str, write: Callable[[BinaryIO], None]) -> None:
    try:
        with open(path, "wb") as stream:
            write(_ForwardOnly(stream))  # type: ignore[arg-type]
    except BrokenPipeError:
        raise  # a named pipe or /dev/stdout whose reader left: as for standard output
    except OSError as exc:
        raise _cannot_write(path, exc) from None


class _ForwardOnly(io.RawIOBase):
    """A device or a pipe as a stream that only goes forward.

    `/dev/null` accepts seeks and always says it is at 0, which would make a zip
    archive's offsets nonsense; refusing to seek makes `zipfile` stream the archive.
    """

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = _write_whole(self._stream, data)
        self._written += written
        return written

    def tell(self) -> int:
        return self._written

    def seek(self, *_: object) -> int:
        raise io.UnsupportedOperation("seek")

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._stream.flush()


def _cannot_write(path: str, exc: OSError) -> UsageError:
    return UsageError(f"cannot write {path!r}: {exc.strerror or exc}")


def _umask() -> int:
    """The process umask, which can only be read by setting it."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
