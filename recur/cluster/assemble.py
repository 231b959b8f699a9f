"""The whole run's outputs, put together from the chunks' pieces in lane order.

Pieces come back in any order (as workers finish); each is copied into its region of
the lanes at once, so the client holds the result and the pieces in flight, no more.
The pieces of tasks that wrote a store (`stored`) hold no arrays: only how they ended.
"""

from __future__ import annotations

from typing import Any

import numpy

from recur.cluster.split import Lanes
from recur.cluster.task import Piece
from recur.compile import ir
from recur.engine.plan import Outcome


class Assembly:
    """The kept outputs of a run split into chunks of lanes, filled piece by piece."""

    def __init__(self, program: ir.Program, lanes: Lanes) -> None:
        self.program, self.lanes = program, lanes
        self.arrays: dict[str, Any] = {}
        self.ended: tuple[int, str] | None = None  # steps run and why, as every chunk's
        self.resume: dict[str, Any] | None = None  # a store's carried states, every chunk's
        self.done = 0  # lanes in

    def add(self, piece: Piece) -> None:
        """Copy a piece into its lanes: the lane axis is the first of a state, after
        time for an output kept whole. An output without lanes is the same in every
        chunk: the first piece gives it."""
        ended = (piece.steps_run, piece.stopped_by)
        if self.ended is None:
            self.ended, self.resume = ended, piece.resume
            self.arrays = {name: self._whole(name, array) for name, array in piece.arrays.items()}
        # `until` reads no lane (`split.lanes_of`): all stop alike, after as many blocks.
        assert ended == self.ended and piece.resume == self.resume
        for name, array in piece.arrays.items():
            axis = self._lane_axis(name)
            if axis is not None:
                region = (slice(None),) * axis + (slice(piece.start, piece.stop),)
                self.arrays[name][region] = array
        self.done += piece.stop - piece.start

    def outcome(self) -> Outcome:
        assert self.ended is not None and self.done == self.lanes.count
        return Outcome(self.arrays, *self.ended)

    def _lane_axis(self, name: str) -> int | None:
        output = self.program.output(name)
        if not self.lanes.carries(output.shape):
            return None
        return 1 if output.keep == "all" else 0

    def _whole(self, name: str, array: Any) -> Any:
        axis = self._lane_axis(name)
        if axis is None:
            return array
        shape = list(array.shape)
        shape[axis] = self.lanes.count
        return numpy.empty(shape, dtype=array.dtype)
