"""The per-step state that compiled closures read, and the integer fault they raise.

It lives in the engine (not the language) because the engine owns the time loop:
closures only read `t` and report faults through the frame.
"""

from __future__ import annotations

from typing import Any


class Fault(Exception):
    """An integer fault at `node` in the lanes of `mask` (None: a Python number)."""

    def __init__(self, kind: str, mask: Any, node: Any) -> None:
        super().__init__(kind)
        self.kind = kind
        self.mask = mask
        self.node = node


class KernelFault(Exception):
    """A compiled kernel stopped at a fault at step `t`; the interpreter must replay the
    run to report it (it knows the output, the lane and the words for it)."""

    def __init__(self, t: int) -> None:
        super().__init__(t)
        self.t = t


class Frame:
    """The per-step state closures read: the step number and pending select faults."""

    __slots__ = ("faults", "t")

    def __init__(self) -> None:
        self.t = 0
        self.faults: list[list[Fault]] = []

    def fault(self, kind: str, mask: Any, node: Any) -> None:
        """Raise, unless inside a select branch, whose lanes may not be picked."""
        if self.faults:
            self.faults[-1].append(Fault(kind, mask, node))
        else:
            raise Fault(kind, mask, node)


