"""The per-step state that closures read: the step number, and the faults of select
branches, which count only in the lanes the select picks."""

from __future__ import annotations

from typing import Any

from recur.diagnostics import Fault


class Frame:
    """The per-step state closures read: the step number and pending select faults."""

    __slots__ = ("faults", "t")

    def __init__(self) -> None:
        self.t = 0
        self.faults: list[list[Fault]] = []

    def fault(self, kind: str, mask: Any, node: Any) -> None:
        """Raise, unless inside a select branch, whose lanes may not be picked."""
        if self.faults:
            self.faults[-1].append(Fault.of(kind, mask, node))
        else:
            raise Fault.of(kind, mask, node)


