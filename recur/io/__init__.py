"""Arrays in and out: `--input` files and the written result, in the formats of
`recur.io.formats`."""

from __future__ import annotations

from recur.io.inputs import read_input
from recur.io.outputs import (
    atomic_write,
    cannot_write,
    check_replaceable,
    resolve_format,
    write_outputs,
)
from recur.io.writers import OutputArray, write_csv, write_npy, write_npz

__all__ = [
    "OutputArray",
    "atomic_write",
    "cannot_write",
    "check_replaceable",
    "read_input",
    "resolve_format",
    "write_csv",
    "write_npy",
    "write_npz",
    "write_outputs",
]
