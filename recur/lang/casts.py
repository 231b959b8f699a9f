"""Casts between dtypes: NumPy's `astype`, except where NumPy would give garbage.

A float becomes an integer by truncation toward zero, as `astype` does; but a NaN,
an infinity or a value beyond the integer's range has no integer, and an integer too
wide for a narrower dtype would wrap. NumPy (and C, where this is undefined) returns
whatever the hardware gives; recur reports these lanes as faults, as it does integer
overflow. A complex value is not cast to a real dtype at all: NumPy silently drops the
imaginary part, which is rarely what was meant.
"""

from __future__ import annotations

from typing import Any

import numpy

# The dtypes an output may have (spec.py), and so the casts.
DTYPES = ("float64", "float32", "int32", "int64", "bool", "complex128")
CAST_REFUSED_NOTE = "take real(z), imag(z) or abs(z) first, whichever is meant"


class CastRefused(TypeError):
    """A cast that recur refuses whatever the values: complex to a real dtype."""


def _non_finite(dtype: str) -> str:
    return f"{dtype}() of NaN or infinity"


def _out_of_range(dtype: str) -> str:
    return f"integer overflow: {dtype}() of a value outside {dtype}"


def cast(xp: Any, dtype: str, value: Any) -> tuple[Any, tuple[tuple[str, Any], ...]]:
    """`value` as `dtype`, and (fault kind, mask of lanes) for each way it may be wrong."""
    array = xp.asarray(value)
    source, target = array.dtype, numpy.dtype(dtype)
    if source.kind == "c" and target.kind in "iuf":
        raise CastRefused(f"{dtype}() of a {source} value would drop its imaginary part")
    faults: tuple[tuple[str, Any], ...] = ()
    if target.kind in "iu" and source.kind == "f":
        array, faults = _truncated(xp, array, dtype)
    elif target.kind in "iu" and source.kind in "iu" and not numpy.can_cast(source, target):
        info = numpy.iinfo(target)
        bad = array > info.max if source.kind == "u" else (array < info.min) | (array > info.max)
        faults = ((_out_of_range(dtype), bad),)
    return array.astype(target), faults


def truncation_limit(dtype: str) -> float:
    """2**(bits-1): a whole float w fits integer `dtype` where -limit <= w < limit. The
    limit is exact in every float dtype, so that the test is exact (here and in C)."""
    return -float(numpy.iinfo(dtype).min)


def _truncated(xp: Any, array: Any, dtype: str) -> tuple[Any, tuple[tuple[str, Any], ...]]:
    """Whole floats toward zero, zero where no integer of `dtype` holds the value."""
    limit = truncation_limit(dtype)
    whole = xp.trunc(array)
    finite = xp.isfinite(array)
    inside = (whole >= -limit) & (whole < limit)
    faults = ((_non_finite(dtype), ~finite), (_out_of_range(dtype), finite & ~inside))
    return xp.where(inside, whole, 0), faults
