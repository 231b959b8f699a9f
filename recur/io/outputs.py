"""Writing results in a format of `recur.io.formats`, to standard output or to a file.

A file is written whole or not at all: the result goes to a temporary file in the
same folder, which replaces the target only once it is complete and on disk; one that a
writer killed outright left is removed by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TextIO, cast

from recur.diagnostics import UsageError
from recur.io import formats
from recur.io.writers import OutputArray, WholeWrites, write_whole


def resolve_format(path: str | None, fmt: str | None) -> formats.Format:
    """The format to write: `--format` wins, else the suffix of `-o`, else CSV on stdout."""
    if fmt is not None:
        if fmt not in formats.FORMATS:
            raise UsageError(
                f"unknown format {fmt!r}: use {formats.listed(list(formats.FORMATS))}")
        return formats.FORMATS[fmt]
    if path is None or path == "-":
        return formats.DEFAULT
    found = formats.by_suffix(path)
    if found is None:
        raise UsageError(f"cannot tell the format of {path!r}: use --format or a "
                         f"{formats.listed(formats.suffixes())} suffix")
    return found


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
    chosen = resolve_format(path, fmt)
    chosen.check(outputs)
    if path is None or path == "-":
        if stdout is None and sys.stdout is None:  # started with standard output closed
            raise UsageError("cannot write to standard output: it is closed",
                             notes=("write to a file with -o PATH",))
        _write_stdout(outputs, chosen, stdout if stdout is not None else sys.stdout.buffer)
    else:
        atomic_write(path, lambda stream: chosen.write(stream, outputs), force=force)


def _write_stdout(outputs: Sequence[OutputArray], fmt: formats.Format, stdout: BinaryIO) -> None:
    if fmt.binary and stdout.isatty():
        raise UsageError(
            f"refusing to write binary .{fmt.name} to a terminal",
            notes=(f"use -o FILE, pipe it, or --format {formats.DEFAULT.name}",),
        )
    try:
        fmt.write(cast(BinaryIO, WholeWrites(stdout)), outputs)
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
        raise cannot_write(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
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
            raise cannot_write(path, exc) from None
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
        raise cannot_write(path, exc) from None


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
        written = write_whole(self._stream, data)
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


def cannot_write(path: str, exc: OSError) -> UsageError:
    """The error for a file that could not be written (`-o`, `--meta`, a figure)."""
    return UsageError(f"cannot write {path!r}: {exc.strerror or exc}")


def _umask() -> int:
    """The process umask, which can only be read by setting it."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
