"""How a gradient keeps the forward states its backward pass reads: whole, or as
snapshots from which each segment is run again just before the backward pass needs it.

One level of snapshots (Griewank's checkpointing with a single level, the "sqrt(T)"
schedule when the segments are sqrt(T) long): the forward run is made twice, once to
take the snapshots, once a segment at a time for the backward pass, and memory is one
segment's states plus the snapshots. Griewank's revolve would spend less memory for
the same recomputation with several levels; one level already puts a gradient over
10**8 steps of a scalar in tens of MB (docs/gradients.md has the measurements), and
keeps every segment one run of the same kernel.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy

from recur.compile import ir
from recur.engine.memory import format_bytes

# Forward states kept whole up to this many bytes held (or the memory there is, if
# less); beyond, in snapshots, with segments of about SEGMENT_BYTES held.
STORE_LIMIT = 256 * 2**20
SEGMENT_BYTES = 64 * 2**20
# The passes hold about this many bytes per byte of forward state, measured on a
# scalar over 10**8 steps (benchmarks/grad.py long): a segment's ring (2**k rows), its
# rows copied out, the reversed copy the backward loop reads, the adjoints.
HELD_PER_STATE_BYTE = 6


@dataclass(frozen=True, slots=True)
class Plan:
    """Where the forward states of a gradient live."""

    steps: int  # the forward steps (at most: `until` may stop sooner)
    segment: int  # forward steps run again at a time (all of them when stored)
    snapshots: int  # 0 when stored
    step_bytes: int  # what the passes hold per forward step
    snapshot_bytes: int  # one snapshot: the states a segment starts from

    @property
    def checkpointed(self) -> bool:
        return self.snapshots > 0

    @property
    def memory(self) -> int:
        return (min(self.segment, self.steps) * self.step_bytes
                + self.snapshots * self.snapshot_bytes)

    @property
    def forward_runs(self) -> int:
        """How many times each forward step runs."""
        return 2 if self.checkpointed else 1

    def windows(self, steps_run: int, backward_steps: int) -> list[tuple[int, int]]:
        """The backward steps run at a time: one window per forward segment (backward
        step u stands for forward step steps_run - 1 - u), the steps before the first
        forward step (the initial states' gradients) with the first segment."""
        if not self.checkpointed:
            return [(0, backward_steps)] if backward_steps else []
        bounds = {0, backward_steps}
        bounds.update(steps_run - k for k in range(self.segment, steps_run, self.segment)
                      if steps_run - k < backward_steps)
        ordered = sorted(bounds)
        return list(itertools.pairwise(ordered))

    def words(self) -> str:
        if not self.checkpointed:
            return (f"stored whole: {format_bytes(self.memory)} for {self.steps:,} steps, "
                    "each forward step run once")
        return (f"checkpointed: {self.snapshots:,} snapshots of "
                f"{format_bytes(self.snapshot_bytes)}, segments of {self.segment:,} steps "
                f"run again ({format_bytes(self.memory)} in all): each forward step runs "
                "twice")


def memory_plan(recording: ir.Program, checkpoints: int | None, room: int | None) -> Plan:
    """Stored where the states fit under `STORE_LIMIT` and `room`; else, or with
    `checkpoints` (snapshots wanted), checkpointed."""
    steps = recording.steps
    per_step = sum(o.lanes * _itemsize(o.dtype) for o in recording.outputs)
    step_bytes = max(HELD_PER_STATE_BYTE * per_step, 1)
    snapshot = sum(max(o.depth, 1) * o.lanes * _itemsize(o.dtype) for o in recording.outputs)
    limit = STORE_LIMIT if room is None else min(STORE_LIMIT, room)
    if checkpoints is None and steps * step_bytes <= limit:
        return Plan(steps, max(steps, 1), 0, step_bytes, snapshot)
    if checkpoints is None:
        segment = max(SEGMENT_BYTES // step_bytes, 1)
    else:
        segment = max(math.ceil(steps / checkpoints), 1)
    return Plan(steps, segment, max(math.ceil(steps / segment), 1), step_bytes, snapshot)


def _itemsize(dtype: str) -> int:
    return numpy.dtype(dtype).itemsize
