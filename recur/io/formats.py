"""The one registry of array file formats: for each, how it is named and recognised, and
its reader and writer.

`--format`, `-o PATH`, `--input NAME=PATH` and `recur diff` all look a format up here,
so adding one is one `Format` entry in `FORMATS` plus its reader and writer
(docs/architecture.md). This module only describes formats: choosing one for a path or
standard input, and the messages when none fits, are `recur.io.inputs` and
`recur.io.outputs`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO

import numpy as np

from recur.io import readers, writers
from recur.io.writers import OutputArray

# (stream, name) -> arrays by name: every array for None, else the one `--input NAME` reads.
Reader = Callable[[IO[bytes], "str | None"], dict[str, np.ndarray]]
Writer = Callable[[BinaryIO, Sequence[OutputArray]], None]


def _holds_any(_outputs: Sequence[OutputArray]) -> None:
    """The check of a format that holds any outputs."""


@dataclass(frozen=True, slots=True)
class Format:
    """An array file format.

    `magic`: the first bytes that mark it on standard input, which has no suffix; the
    format with none (`DEFAULT`) is what is left. `binary`: not written to a terminal.
    `check`: refuses outputs the format cannot hold, before the run makes them.
    """

    name: str  # as `--format` takes it, and as `read_all` reports it
    suffixes: tuple[str, ...]  # lower case, with the dot
    magic: tuple[bytes, ...]
    binary: bool
    read: Reader
    write: Writer
    check: Callable[[Sequence[OutputArray]], None] = _holds_any


FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        Format("npy", (".npy",), (b"\x93NUMPY",), True, readers.read_npy, writers.write_npy,
               writers.check_npy),
        # An archive starts with a member, or, when empty, with its end record.
        Format("npz", (".npz",), (b"PK\x03\x04", b"PK\x05\x06"), True, readers.read_npz,
               writers.write_npz),
        Format("csv", (".csv",), (), False, readers.read_csv, writers.write_csv_bytes,
               writers.check_csv),
    )
}
DEFAULT = FORMATS["csv"]  # standard output's, and standard input's when no magic matches


def by_suffix(path: str) -> Format | None:
    """The format PATH's suffix names, if any."""
    suffix = os.path.splitext(path)[1].lower()
    return next((fmt for fmt in FORMATS.values() if suffix in fmt.suffixes), None)


def sniff(data: bytes) -> Format:
    """The format of bytes with no name (standard input), from their first bytes."""
    return next((fmt for fmt in FORMATS.values() if fmt.magic and data.startswith(fmt.magic)),
                DEFAULT)


def listed(words: Sequence[str]) -> str:
    """`a, b or c`: the formats (names or suffixes) for a message."""
    return f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else "".join(words)


def suffixes() -> list[str]:
    """Every format's suffixes, for a message."""
    return [suffix for fmt in FORMATS.values() for suffix in fmt.suffixes]
