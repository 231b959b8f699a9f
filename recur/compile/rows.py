"""Sequences made only as far as a run reads them, where that gives the same rows.

A run of 10 steps over `arange(n + 1)` with n = 10**6 reads 10 rows; making the whole
sequence took most of the run's time. An `arange` of integers is cut exactly: its row i
is `start + i * step` in int64 however long it is, so any rows of it are an `arange`
from row i's value, without a loop. Every other sequence is made whole, and so is one
an initial reads (it sees the sequence whole).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recur.diagnostics import RecurError
from recur.lang import nodes as n
from recur.lang.functions import FUNCTIONS, MAX_ARRAY_ELEMENTS, arange_args, arange_count
from recur.spec import Spec

# Integers within this bound keep every row of their `arange` within int64.
_EXACT = 2**62


@dataclass(frozen=True, slots=True)
class Arange:
    """`arange(start, start + length * step, step)` of integers, not made yet: `len`
    is all `count_steps` asks of it."""

    start: int
    step: int
    length: int

    def __len__(self) -> int:
        return self.length

    def rows(self, first: int, stop: int, backend: Any) -> Any:
        """Rows [first, stop), as the whole sequence's: the same call, on fewer rows."""
        begin = self.start + first * self.step
        return FUNCTIONS["arange"].resolve(backend)(begin, begin + (stop - first) * self.step,
                                                    self.step)


def deferred(spec: Spec, name: str, node: n.Node,
             evaluate: Callable[[n.Node], Any]) -> Arange | None:
    """The sequence `name` as an `Arange` to cut, or None where it must be made whole:
    not an `arange` of integers, read by an initial, or an error to report (left to the
    whole evaluation, which reports it as ever). `evaluate` gives an argument's value."""
    if not (isinstance(node, n.Call) and node.func == "arange" and node.axis is None
            and name not in _read_by_initials(spec)):
        return None
    try:
        args = [evaluate(arg) for arg in node.args]
    except RecurError:  # the whole evaluation reports it
        return None
    if not args or len(args) > 3 or not all(type(a) is int and abs(a) < _EXACT for a in args):
        return None
    start, stop, step = arange_args(*args)
    if step == 0 or arange_count(start, stop, step) > MAX_ARRAY_ELEMENTS:
        return None  # an error, which the whole evaluation raises
    length = len(range(start, stop, step))
    if length != max(math.ceil((stop - start) / step), 0):
        return None  # NumPy counts by a float division, which rounds here
    return Arange(start, step, length)


def made(sequences: Mapping[str, Any], offsets: Mapping[str, tuple[int, int]], steps: int,
         reverse: bool, backend: Any) -> dict[str, Any]:
    """The sequences as arrays, time first (walked backwards under `reverse`): an
    `Arange` only as far as `steps` steps read it, with its offsets' span."""
    arrays = {}
    for name, value in sequences.items():
        if isinstance(value, Arange):
            low, high = offsets[name]
            # at least step 0's rows: the probe step reads them even when no step runs
            rows = min(len(value), max(steps, 1) + high - low)
            first = len(value) - rows if reverse else 0
            value = value.rows(first, first + rows, backend)
            arrays[name] = value[::-1] if reverse else value
        else:
            arrays[name] = value
    return arrays


def _read_by_initials(spec: Spec) -> frozenset[str]:
    """The names the outputs' initials read (kept with the spec)."""
    names = spec.derived.get("read by initials")
    if names is None:
        names = spec.derived["read by initials"] = frozenset(
            node.id for output in spec.outputs if output.initial is not None
            for node in n.walk(output.initial) if isinstance(node, n.Name))
    found: frozenset[str] = names
    return found
