"""`recur diff A B`: compare two results (.npy, .npz, CSV) array by array, within tolerance.

An element of A agrees with the one of B where `|a - b| <= atol + rtol * |b|` (both
finite), where they are equal (infinities of the same sign), or where both are NaN:
`numpy.testing.assert_allclose(A, B, rtol, atol)`, whose defaults (rtol=1e-7, atol=0)
are ours. B is the reference, as `desired` is there. Integers against integers are
compared exactly (no float64 rounding past 2**53); an integer array against a float
one compares values; bool arrays compare only with bool arrays, and exactly.

Arrays are paired by name. An .npy holds one unnamed array: it takes the name of the
other side's only array, else the file's stem. A CSV file has one line per step, so a
final state (`--last`, `keep: last`) written as CSV has a leading axis of length 1 that
the .npy or .npz of the same result lacks: against a non-CSV array, that axis is dropped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import click
import numpy as np

from recur.diagnostics import UsageError
from recur.io.inputs import read_all

DEFAULT_RTOL = 1e-7  # numpy.testing.assert_allclose's
DEFAULT_ATOL = 0.0
EXIT_DIFFERENT = 1


@dataclass(frozen=True, slots=True)
class Side:
    """One file's arrays: `label` names it in messages, `fmt` is how it was read."""

    label: str
    fmt: str
    arrays: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """How two arrays of the same shape differ: counts, largest errors, first index.

    `max_abs` and `max_rel` are over the differing elements that are not NaN on one side
    only (None if there are none, or for bool arrays); `first` is a C-order index.
    """

    count: int
    size: int
    nan_one_side: int
    max_abs: int | float | None
    max_rel: float | None
    first: tuple[int, ...]
    first_a: object
    first_b: object


def compare_arrays(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> Mismatch | None:
    """None where every element of `a` agrees with `b` (same shape), else how they differ."""
    kinds = {a.dtype.kind, b.dtype.kind}
    if "b" in kinds:
        differ = a != b
        if not differ.any():
            return None
        return _mismatch(a, b, differ, np.zeros_like(differ), None, None)
    if kinds <= {"i", "u"}:
        differ, abs_err, rel_err = _compare_ints(a, b, rtol, atol)
        nan_one_side = np.zeros_like(differ)
    else:
        differ, abs_err, rel_err = _compare_numbers(a, b, rtol, atol)
        nan_one_side = differ & (np.isnan(a) != np.isnan(b))
    if not differ.any():
        return None
    return _mismatch(a, b, differ, nan_one_side, abs_err, rel_err)


def _mismatch(
    a: np.ndarray,
    b: np.ndarray,
    differ: np.ndarray,
    nan_one_side: np.ndarray,
    abs_err: np.ndarray | None,
    rel_err: np.ndarray | None,
) -> Mismatch:
    flat = int(np.flatnonzero(differ)[0])
    first = tuple(int(i) for i in np.unravel_index(flat, a.shape))
    max_abs = max_rel = None
    measured = differ & ~nan_one_side
    if abs_err is not None and rel_err is not None and measured.any():
        largest = abs_err[measured].max()
        max_abs = int(largest) if abs_err.dtype.kind == "u" else float(largest)
        max_rel = float(rel_err[measured].max())
    return Mismatch(int(np.count_nonzero(differ)), int(a.size),
                    int(np.count_nonzero(nan_one_side)), max_abs, max_rel, first,
                    a.flat[flat].item(), b.flat[flat].item())


def _compare_ints(
    a: np.ndarray, b: np.ndarray, rtol: float, atol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact |a - b| as uint64 (offset binary: no overflow, no rounding), then the test."""
    offset = np.uint64(1 << 63)
    ua = a.astype(np.int64).astype(np.uint64) ^ offset
    ub = b.astype(np.int64).astype(np.uint64) ^ offset
    abs_err = np.where(ua >= ub, ua - ub, ub - ua)
    magnitude = np.abs(b.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = abs_err.astype(np.float64) / magnitude
        within = abs_err.astype(np.float64) <= atol + rtol * magnitude
    return (abs_err != 0) & ~within, abs_err, rel_err


def _compare_numbers(
    a: np.ndarray, b: np.ndarray, rtol: float, atol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy.isclose(a, b, rtol, atol, equal_nan=True), in float64 or complex128."""
    common = np.complex128 if "c" in (a.dtype.kind, b.dtype.kind) else np.float64
    x, y = a.astype(common), b.astype(common)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        abs_err = np.abs(x - y)
        magnitude = np.abs(y)
        finite = np.isfinite(x) & np.isfinite(y)
        within = finite & (abs_err <= atol + rtol * magnitude)
        agree = within | (x == y) | (np.isnan(x) & np.isnan(y))
        rel_err = np.where(np.isinf(abs_err), np.inf, abs_err / magnitude)
    return ~agree, abs_err, rel_err


def _name_npy(a: Side, b: Side) -> tuple[Side, Side]:
    """Name each side's unnamed .npy array: after the other side's only array if it has
    exactly one (two .npy files share the stem of A, or of B if A is standard input),
    else after its own file's stem."""
    def stem(side: Side) -> str:
        if side.label == "standard input":
            return "stdin"
        return os.path.splitext(os.path.basename(side.label))[0]

    def named(side: Side, other: Side) -> Side:
        if side.fmt != "npy":
            return side
        if other.fmt == "npy":
            name = stem(b if a.label == "standard input" else a)
        elif len(other.arrays) == 1:
            name = next(iter(other.arrays))
        else:
            name = stem(side)
        return Side(side.label, side.fmt, {name: side.arrays[""]})

    return named(a, b), named(b, a)


def _align(x: np.ndarray, x_fmt: str, y: np.ndarray, y_fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Drop the one-line step axis a CSV gives a final state, against a non-CSV array."""
    if x_fmt == "csv" and y_fmt != "csv" and x.shape == (1, *y.shape):
        return x[0], y
    if y_fmt == "csv" and x_fmt != "csv" and y.shape == (1, *x.shape):
        return x, y[0]
    return x, y


def _kinds_clash(x: np.ndarray, y: np.ndarray) -> bool:
    """A bool array against a number array; empty arrays hold no values to clash."""
    return (x.dtype.kind == "b") != (y.dtype.kind == "b") and bool(x.size or y.size)


def diff_sides(a: Side, b: Side, rtol: float, atol: float) -> tuple[bool, list[str]]:
    """(same?, the report's lines) for two files' arrays."""
    a, b = _name_npy(a, b)
    names = list(dict.fromkeys([*a.arrays, *b.arrays]))
    problems, elements = [], 0
    for name in names:
        if name not in b.arrays:
            problems.append(f"  {name}: only in {a.label}")
            continue
        if name not in a.arrays:
            problems.append(f"  {name}: only in {b.label}")
            continue
        x, y = _align(a.arrays[name], a.fmt, b.arrays[name], b.fmt)
        if x.shape != y.shape:
            problems.append(f"  {name}: shapes differ: {x.shape} vs {y.shape}")
        elif _kinds_clash(x, y):
            problems.append(f"  {name}: dtypes differ: {x.dtype} vs {y.dtype}")
        else:
            elements += x.size
            mismatch = compare_arrays(x, y, rtol, atol)
            if mismatch is not None:
                problems.append(f"  {name}: {_describe(name, mismatch)}")
    tolerance = f"rtol={rtol!r}, atol={atol!r}"
    if not problems:
        return True, [f"same: {_plural(len(names), 'array')}, "
                      f"{_plural(elements, 'element')} within {tolerance}"]
    verb = "differs" if len(problems) == 1 else "differ"
    head = f"different: {len(problems)} of {_plural(len(names), 'array')} {verb} ({tolerance})"
    return False, [head, *problems]


def _describe(name: str, mismatch: Mismatch) -> str:
    parts = [f"{mismatch.count} of {_plural(mismatch.size, 'element')} differ "
             f"({_percent(mismatch.count, mismatch.size)})"]
    if mismatch.nan_one_side:
        parts.append(f"{mismatch.nan_one_side} with NaN on one side only")
    if mismatch.max_abs is not None:
        parts.append(f"max abs error {mismatch.max_abs!r}")
        parts.append(f"max rel error {mismatch.max_rel!r}")
    where = f"{name}[{','.join(map(str, mismatch.first))}]" if mismatch.first else name
    parts.append(f"first at {where}: {_value(mismatch.first_a)} vs {_value(mismatch.first_b)}")
    return "; ".join(parts)


def _value(value: object) -> str:
    """As recur's CSV writes it: true/false, integers, floats and complex as repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _percent(count: int, size: int) -> str:
    share = 100 * count / size
    if count < size:
        share = min(share, 99.9)  # never round a partial difference up to 100%
    return f"{share:.3g}%"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _not_nan(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if math.isnan(value):
        raise click.BadParameter("nan is not a tolerance: give a number >= 0")
    return value


@click.command()
@click.argument("a", type=click.Path(allow_dash=True))
@click.argument("b", type=click.Path(allow_dash=True))
@click.option("--rtol", type=click.FloatRange(min=0.0), default=DEFAULT_RTOL, metavar="RTOL",
              show_default=True, callback=_not_nan,
              help="Relative tolerance, times |B|.")
@click.option("--atol", type=click.FloatRange(min=0.0), default=DEFAULT_ATOL, metavar="ATOL",
              show_default=True, callback=_not_nan,
              help="Absolute tolerance.")
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, rtol: float, atol: float) -> None:
    """Compare two results array by array, within a tolerance.

    A and B are .npy, .npz or CSV files or Zarr stores (format from the suffix), or -
    for standard input (one of them; format sniffed). Arrays are paired by name; an .npy's one
    array takes the other side's only name, else its file stem. Elements agree where
    |a - b| <= atol + rtol * |b| (B is the reference), where they are equal, or where
    both are NaN: numpy.testing.assert_allclose(A, B) and its defaults
    (numpy.allclose's looser ones are --rtol 1e-5 --atol 1e-8). Int and float arrays
    of equal values agree; ints against ints are compared exactly.

    Exit 0 with one line 'same: ...' when every array agrees. Else exit 1 with
    'different: ...' and a line per differing array: how many elements differ, the
    largest absolute and relative errors, and the first differing index with A's and
    B's values there; or both shapes; or the one file that has it. Exit 2 when a file
    cannot be read.

    \b
    Example:
      recur run specs/fibonacci.yaml -o fib.npy
      recur run specs/fibonacci.yaml -o fib.csv
      recur diff fib.npy fib.csv
      recur run specs/pi.yaml -o - -f npy | recur diff - expected.npz --rtol 1e-9
    """
    if a == "-" and b == "-":
        raise UsageError("only one of A and B can be standard input (-)")
    sides = [Side("standard input" if path == "-" else path, *read_all(path))
             for path in (a, b)]
    same, lines = diff_sides(sides[0], sides[1], rtol, atol)
    for line in lines:
        click.echo(line)
    if not same:
        ctx.exit(EXIT_DIFFERENT)
