"""Arrays in and out: `--input` files and the written result."""

from __future__ import annotations

from recur.io.inputs import read_input
from recur.io.outputs import (
    OutputArray,
    atomic_write,
    check_replaceable,
    resolve_format,
    write_csv,
    write_npy,
    write_npz,
    write_outputs,
)

__all__ = [
    "OutputArray",
    "atomic_write",
    "check_replaceable",
    "read_input",
    "resolve_format",
    "write_csv",
    "write_npy",
    "write_npz",
    "write_outputs",
]
