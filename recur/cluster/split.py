"""Which programs split into chunks of lanes, a chunk's own program, and chunk sizes.

Lanes are the first axis of the outputs' states. In an element-wise step a value of
the state's rank whose first axis is the lane count lines up with the state lane by
lane (broadcasting aligns trailing axes), so rows a..b of it are what lanes a..b read:
a chunk's program is the whole one with those values cut to its rows, the types of
its nodes cut alike, and `first_lane` set, so that its draws number their elements as
the whole sweep does. Anything else that touches the lanes (a reduction, `@`,
indexing, `until` over the states) mixes them, and is refused with its place.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy

from recur.compile import ir
from recur.diagnostics import UsageError, option
from recur.lang.functions import FUNCTIONS

# Seconds a chunk should run at least, to repay a task's overhead (a few milliseconds
# of scheduling, the chunk's arrays over the network) many times over.
TASK_SECONDS = 1.0
# Chunks per worker thread: at least 2, so that a slow or lost worker leaves little to
# redo at the end; at most 16, so that the scheduler keeps few tasks per worker.
MIN_PER_WORKER, MAX_PER_WORKER = 2, 16
# Tasks per second of the run's computing time (S / W): the scheduler spends 0.2 to 1 ms
# on a task (Dask's documentation), so at 500 it is busy half the time at most, however
# many workers there are (3,200 workers of 1 s tasks would ask 3,200 a second).
SCHEDULER_RATE = 500
CHUNK_BYTES = 256 << 20  # the most a chunk's result may hold (it passes through a worker)

# Nodes that work lane by lane whatever their values (a call: if its function does).
_LANE_BY_LANE = (ir.Unary, ir.Compare, ir.Select, ir.Draw, ir.Literal, ir.Param, ir.Time,
                 ir.Steps, ir.TimeIndex, ir.Tap, ir.SequenceRead, ir.Hoisted, ir.Swept)


@dataclass(frozen=True, slots=True)
class Lanes:
    """The lanes of a program: `count` of them, the first axis of states of `shape`."""

    count: int
    shape: tuple[int, ...]  # () where no output has lanes: one lane, nothing to split

    def carries(self, seen: ir.Type | tuple[int, ...] | None) -> bool:
        """Whether a value of this type (or shape) has the lanes as its first axis."""
        shape = seen.shape if isinstance(seen, ir.Type) else seen
        return (shape is not None and self.count > 1 and len(shape) == len(self.shape)
                and shape[0] == self.count)


def lanes_of(program: ir.Program) -> Lanes:
    """The program's lanes, or why they cannot run apart.

    Raises:
        UsageError: states of several shapes, or a node that mixes lanes (its place).
    """
    shapes = sorted({o.shape for o in program.outputs if o.shape})
    if len(shapes) > 1:
        listed = ", ".join(str(shape) for shape in shapes)
        raise UsageError(f"{option('scheduler')} cannot split this spec: its outputs' states "
                         f"have different shapes ({listed}); it splits the first axis of "
                         "one shape of lanes", notes=(_ALONE,))
    lanes = Lanes(shapes[0][0], shapes[0]) if shapes else Lanes(1, ())
    for root in program.roots():
        for node in ir.walk(root):
            if _mixes(node, lanes):
                raise _refusal(node, root is program.until)
    return lanes


_ALONE = "each chunk of lanes runs on its own: run this spec without it"


def _mixes(node: ir.Node, lanes: Lanes) -> bool:
    if _elementwise(node):
        return False
    return any(lanes.carries(part.type) for part in (node, *ir.children(node)))


def _elementwise(node: ir.Node) -> bool:
    if isinstance(node, ir.Binary):
        return node.op != "@"
    if isinstance(node, ir.Call):
        return FUNCTIONS[node.func].kind == "elementwise" and node.axis is None
    return isinstance(node, _LANE_BY_LANE)


def _refusal(node: ir.Node, in_until: bool) -> UsageError:
    if isinstance(node, ir.Call):
        what = f"{node.func}() across lanes"
    elif isinstance(node, ir.Binary):
        what = "a matrix product across lanes"
    else:
        what = f"{type(node).__name__.lower()} of the lanes"
    why = ("'until' reads the lanes, and stops them all at once" if in_until
           else f"its step mixes lanes ({what})")
    return UsageError(f"{option('scheduler')} cannot split this spec: {why}", node.span,
                      (_ALONE,))


def bounds(count: int, size: int) -> list[tuple[int, int]]:
    """The chunks [start, stop) of `count` lanes, `size` each (the last may be smaller)."""
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def default_size(program: ir.Program, lanes: Lanes, seconds: float, workers: int) -> int:
    """Lanes per chunk, from the engine's estimate of `seconds` for the whole run on one
    core and the cluster's worker threads: chunks of `TASK_SECONDS` or more, at least
    `MIN_PER_WORKER` per worker; at most `MAX_PER_WORKER` per worker and
    `SCHEDULER_RATE` per second of the run; none holding over `CHUNK_BYTES` of results."""
    chunks = max(MIN_PER_WORKER * workers, seconds / TASK_SECONDS)
    chunks = min(chunks, MAX_PER_WORKER * workers, seconds * SCHEDULER_RATE / workers)
    chunks = max(chunks, kept_bytes(program) / CHUNK_BYTES, 1)
    return max(1, math.ceil(lanes.count / math.ceil(chunks)))


def kept_bytes(program: ir.Program) -> int:
    """What a run's kept outputs hold, in bytes."""
    return sum((program.steps if o.keep == "all" else 1) * o.lanes
               * numpy.dtype(o.dtype).itemsize for o in program.outputs if o.keep != "none")


def chunk(program: ir.Program, lanes: Lanes, start: int, stop: int) -> ir.Program:
    """The program of lanes [start, stop): the values the loop reads cut to those rows
    (the others left out), the nodes' types alike, `first_lane` moved on by `start`."""
    cut = _Cut(lanes, start, stop)
    outputs = tuple(replace(o, step=cut.node(o.step), shape=cut.shape(o.shape),
                            initial=cut.initial(o))
                    for o in program.outputs)
    until = None if program.until is None else cut.node(program.until)
    return replace(
        program, outputs=outputs, until=until,
        params={name: cut.value(program.params[name], 0, seen)
                for name, seen in _reads(program, ir.Param, "name").items()},
        sequences={name: cut.value(program.sequences[name], 1, seen)
                   for name, seen in _reads(program, ir.SequenceRead, "sequence").items()},
        hoisted=cut.slots(program.hoisted, _reads(program, ir.Hoisted, "slot"), 0),
        swept=cut.slots(program.swept, _reads(program, ir.Swept, "slot"), 1),
        first_lane=program.first_lane + start,
    )


def _reads(program: ir.Program, kind: type[ir.Node], key: str) -> dict[Any, ir.Type | None]:
    """What the loop reads by nodes of `kind` (their `key`: a name, a slot), and the type
    each is read as."""
    return {getattr(node, key): node.type for root in program.roots()
            for node in _evaluated(root) if isinstance(node, kind)}


def _evaluated(node: ir.Node) -> Iterator[ir.Node]:
    """The nodes of a tree and of its swept sub-trees' sources, which a compiled kernel
    computes in its loop (`recur.compile.sweeps`)."""
    for part in ir.walk(node):
        yield part
        if isinstance(part, ir.Swept):
            yield from _evaluated(part.source)


class _Cut:
    """Cuts values, shapes and types to the rows of lanes [start, stop)."""

    def __init__(self, lanes: Lanes, start: int, stop: int) -> None:
        self.lanes, self.start, self.stop = lanes, start, stop

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.stop - self.start, *shape[1:]) if self.lanes.carries(shape) else shape

    def node(self, node: ir.Node) -> ir.Node:
        seen = node.type
        if seen is not None and self.lanes.carries(seen):
            seen = replace(seen, shape=self.shape(seen.shape))
        if isinstance(node, ir.Swept):  # its source too: a kernel computes it
            return replace(node, type=seen, source=self.node(node.source))
        return ir.map_children(node, self.node, type=seen)

    def value(self, value: Any, axis: int, seen: ir.Type | None) -> Any:
        """`value` cut on `axis` where it is read as a value with lanes (`seen`)."""
        if not self.lanes.carries(seen):
            return value
        return value[(slice(None),) * axis + (slice(self.start, self.stop),)]

    def initial(self, output: ir.Output) -> Any:
        if output.initial is None or not self.lanes.carries(output.shape):
            return output.initial
        return output.initial[:, self.start:self.stop]

    def slots(self, values: Sequence[Any], read: dict[Any, ir.Type | None],
              axis: int) -> tuple[Any, ...]:
        """The slots the loop reads, cut; None for the others (nothing reads them) and
        for a sweep that failed (`recur.compile.sweeps`)."""
        return tuple(self.value(value, axis, read[slot])
                     if slot in read and value is not None else None
                     for slot, value in enumerate(values))
