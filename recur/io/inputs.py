"""Reading `--input NAME=PATH` arrays, and whole files for `recur diff`, from the formats
of `recur.io.formats` (by suffix) or standard input (format sniffed).

Whatever the format, the array comes back in one of the dtypes recur computes with,
and every problem is a `UsageError` that names the option, so a bad file never ends
in a traceback.
"""

from __future__ import annotations

import io
import os
import sys
from typing import IO, Any, Protocol, cast

import numpy as np

from recur.diagnostics import UsageError
from recur.io import formats
from recur.io.readers import INT64_MAX, ReadProblem
from recur.io.zarr_store import is_store, read_store

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


class Digest(Protocol):
    """A `hashlib` hash, fed the bytes an input is read from."""

    def update(self, data: bytes, /) -> None: ...


def read_input(name: str, path: str, stdin: IO[bytes] | None = None,
               digest: Digest | None = None) -> np.ndarray:
    """Load the array for `--input NAME=PATH`; PATH `-` is standard input, format sniffed.

    `digest` is fed every byte of the file or of standard input, in order, as it is read
    (once: standard input cannot be read again, and a file may change in between).
    """
    try:
        if path == "-":
            arrays = _read_stdin(name, _standard_input(stdin, "standard input"), digest)
        elif is_store(path):
            arrays = _read_store(path, name, digest)
        else:
            arrays = _read_file(name, path, digest)
        return _normalise(next(iter(arrays.values())))
    except MemoryError:
        problem = ReadProblem("the array does not fit in the memory available", EXIT_NO_MEMORY)
    except ReadProblem as raised:
        problem = raised
    raise _usage_error(f"--input {name}={path}", problem)


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
            fmt = formats.sniff(data)
            arrays = fmt.read(io.BytesIO(data), None)
        elif is_store(path):
            return "zarr", {name: _normalise_named(name, array, "zarr")
                            for name, array in _read_store(path, None, None).items()}
        else:
            fmt = _format_of(path)
            try:
                with open(path, "rb") as stream:
                    arrays = fmt.read(stream, None)
            except OSError as exc:
                raise ReadProblem(f"cannot read: {exc.strerror or exc}") from None
        return fmt.name, {name: _normalise_named(name, array, fmt.name)
                          for name, array in arrays.items()}
    except MemoryError:
        problem = ReadProblem("the arrays do not fit in the memory available", EXIT_NO_MEMORY)
    except ReadProblem as raised:
        problem = raised
    raise _usage_error("standard input" if path == "-" else path, problem)


def _usage_error(where: str, problem: ReadProblem) -> UsageError:
    error = UsageError(f"{where}: {problem}")
    if problem.exit_code is not None:
        error.exit_code = problem.exit_code
    return error


def _standard_input(stdin: IO[bytes] | None, called: str) -> IO[bytes]:
    """`stdin`, else the process's standard input, which is None when it was started
    with its descriptor 0 closed (`<&-`); `called`: what the message calls it."""
    if stdin is not None:
        return stdin
    if sys.stdin is None:
        raise ReadProblem(f"{called} is closed: there is nothing to read")
    return sys.stdin.buffer


def _read_all_stdin(stdin: IO[bytes]) -> bytes:
    try:
        return stdin.read()
    except OSError as exc:
        raise ReadProblem(f"cannot read: {exc.strerror or exc}") from None


def _format_of(path: str) -> formats.Format:
    fmt = formats.by_suffix(path)
    if fmt is None:
        suffix = os.path.splitext(path)[1].lower()
        described = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ReadProblem(f"cannot tell the format from {described}: "
                          f"use {formats.listed(formats.suffixes())}")
    return fmt


def _normalise_named(name: str, array: np.ndarray, fmt: str) -> np.ndarray:
    try:
        return _normalise(array)
    except ReadProblem as problem:
        if fmt == "npy":
            raise
        raise ReadProblem(f"array {name!r}: {problem}", problem.exit_code) from None


def _read_stdin(name: str, stdin: IO[bytes], digest: Digest | None) -> dict[str, np.ndarray]:
    try:
        data = stdin.read()
    except OSError as exc:
        raise ReadProblem(f"cannot read standard input: {exc.strerror or exc}") from None
    if digest is not None:
        digest.update(data)
    return formats.sniff(data).read(io.BytesIO(data), name)


def _read_store(path: str, name: str | None, digest: Digest | None) -> dict[str, np.ndarray]:
    """The arrays of a Zarr store (only `name`'s, if given); `digest` is fed their bytes."""
    if not os.path.isdir(path):
        raise ReadProblem("cannot read: no such store")
    arrays = read_store(path, name)
    if name is not None and name not in arrays:
        raise ReadProblem(f"the store has no array '{name}'")
    if digest is not None:
        for array in arrays.values():
            digest.update(np.ascontiguousarray(array).tobytes())
    return arrays


def _read_file(name: str, path: str, digest: Digest | None) -> dict[str, np.ndarray]:
    fmt = _format_of(path)
    try:
        with open(path, "rb") as stream:
            if digest is None:
                return fmt.read(stream, name)
            hashing = _HashingReader(stream, digest)
            arrays = fmt.read(cast(IO[bytes], hashing), name)
            hashing.finish()
            return arrays
    except OSError as exc:
        raise ReadProblem(f"cannot read: {exc.strerror or exc}") from None


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



def _normalise(array: np.ndarray) -> np.ndarray:
    """The array in one of recur's dtypes: narrow ints widen, float16 becomes float32."""
    dtype = array.dtype
    target = _TARGET_DTYPES.get((dtype.kind, dtype.itemsize))
    if target is None:
        raise ReadProblem(
            f"unsupported dtype {dtype}: recur reads bool, integer, float and complex arrays"
        )
    if dtype.kind == "u" and dtype.itemsize == 8 and array.size and array.max() > INT64_MAX:
        raise ReadProblem(f"uint64 values above {INT64_MAX} do not fit in int64")
    return array.astype(target, copy=False)
