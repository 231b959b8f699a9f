"""What a program's loop does per step, counted for the engines' cost models."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy

from recur.compile import ir
from recur.lang.functions import FUNCTIONS
from recur.lang.keep import of as of_keep

# The kinds of work per lane and step that the cost models price.
KINDS = ("arithmetic", "tap", "function", "own function", "draw", "multiply-add")
# The array operations of one random call in the interpreter (`recur.lang.philox`: ten
# rounds of two 64x64-bit products from 32-bit halves); compiled, it costs about a
# libm call.
DRAW_CALLS = 400


@dataclass(frozen=True, slots=True)
class Work:
    """`calls`: the array operations of a step (the interpreter's NumPy calls); `per_lane`:
    the work of each of `KINDS` per lane and step."""

    calls: int
    per_lane: dict[str, int]

    def per_element(self, costs: Mapping[str, float]) -> float:
        """Seconds per lane and step, each kind of work priced by `costs`."""
        return sum(count * costs[kind] for kind, count in self.per_lane.items())


def work(program: ir.Program, swept_in_loop: bool = False,
         own: Collection[tuple[str, str]] = ()) -> Work:
    """Count the loop's work. Sub-expressions moved out of the loop run once, before it,
    so they are not counted; with `swept_in_loop`, those swept for every step are (a
    compiled kernel computes them in its loop: `recur.compile.sweeps`). A matrix product
    counts a multiply-add per element of the widest state (`W @ h`: h's length). A
    function is a libm call (`function`) where it is not exact; the exact ones (sqrt,
    abs, floor, min, where ...) count as arithmetic, and those in `own` (name, dtype),
    which an engine computes itself (vectorised), as an `own function`. A random call
    counts as a `draw`, and as `DRAW_CALLS` array operations."""
    counts = dict.fromkeys(KINDS, 0)
    calls, lanes = 0, program.lanes
    for root in program.roots():
        for node in _counted(root, swept_in_loop):
            if isinstance(node, ir.Tap | ir.SequenceRead):
                counts["tap"] += 1
                continue
            calls += 1
            if isinstance(node, ir.Binary) and node.op == "@":
                counts["multiply-add"] += lanes
            elif isinstance(node, ir.Call) and not FUNCTIONS[node.func].exact:
                seen = node.type.dtype if node.type is not None else None
                counts["own function" if (node.func, seen) in own else "function"] += 1
            elif isinstance(node, ir.Draw):
                calls += DRAW_CALLS - 1
                counts["draw"] += 1
            else:
                counts["arithmetic"] += 1
    return Work(calls, counts)


def _counted(node: ir.Node, swept_in_loop: bool) -> list[ir.Node]:
    """The nodes that cost something in the loop: operations and reads."""
    if isinstance(node, ir.Swept) and swept_in_loop:
        return _counted(node.source, swept_in_loop)
    if isinstance(node, ir.Hoisted | ir.Swept | ir.Literal | ir.Param | ir.Time | ir.Steps
                  | ir.TimeIndex):
        return []
    if isinstance(node, ir.Tap | ir.SequenceRead):
        return [node]
    return [node, *(part for child in ir.children(node)
                    for part in _counted(child, swept_in_loop))]


# A byte of a kept row, stored: fresh memory touched, or a ring past the caches (W5
# writes 8 a lane and step); both engines' cost models price it alike.
WRITTEN_BYTE = 0.1e-9


def row_bytes(output: ir.Output) -> float:
    """Bytes a step adds to an output's kept rows: its state's, one step in K of them
    for `every K`."""
    keep = of_keep(output.keep)
    whole = output.lanes * numpy.dtype(output.dtype).itemsize
    return whole / keep.n if keep.mode == "every" else whole


def written_bytes(program: ir.Program, rings: bool = True) -> float:
    """Bytes the loop stores per lane and step: the rows it keeps (all, one step in K,
    and with `rings` the last N, written into a ring again and again); a state kept
    `last` stays in registers or a small ring."""
    kept = [o for o in program.outputs if of_keep(o.keep).mode in ("all", "every")
            or (rings and of_keep(o.keep).mode == "tail")]
    return sum(row_bytes(output) for output in kept) / max(program.lanes, 1)
