"""The rows of the sub-expressions swept out of the loop (`ir.Swept`), made when read.

The interpreter reads them (a NumPy call per sub-expression for all steps beats one per
step); a compiled kernel computes the same sub-expressions inside its loop, as fast, and
reads none, so a run on it pays nothing for them: W7's `cos((t + 1) * 0.001)` over 10^6
steps took 57 ms to sweep beside a 14 ms loop. A sweep that fails (a fault the loop
would meet at its step) or gives another dtype than the loop's is None: the loop then
computes that sub-expression itself.

Rows are made each time they are read, and held by whoever reads them (the closures or
the kernel an engine made of the program, which it keeps for the blocks of a run), not
by the program: a program kept between runs (`recur.compile.cache`) holds no rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class Sweeps(Sequence[Any]):
    """`Program.swept`: slot -> rows (time first), or None where the loop must compute it."""

    def __init__(self, makers: Sequence[Callable[[], Any]]) -> None:
        self._makers = tuple(makers)

    def __getitem__(self, slot: int) -> Any:  # type: ignore[override]  # no slices
        return self._makers[slot]()

    def __len__(self) -> int:
        return len(self._makers)
