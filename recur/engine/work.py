"""What a program's loop does per step, counted for the engines' cost models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from recur.compile import ir
from recur.lang.functions import FUNCTIONS

# The kinds of work per lane and step that the cost models price.
KINDS = ("arithmetic", "tap", "function", "multiply-add")
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


# The program counted last, and its work: `auto` asks for each engine's estimate.
_LAST: list[tuple[ir.Program | None, Work]] = [(None, Work(0, {}))]


def work(program: ir.Program) -> Work:
    """Count the loop's work (once for the program counted last)."""
    counted, done = _LAST[0]
    if counted is not program:
        done = _count(program)
        _LAST[0] = (program, done)
    return done


def _count(program: ir.Program) -> Work:
    """Count the loop's work. Sub-expressions moved out of the loop run once, before it,
    so they are not counted. A matrix product counts a multiply-add per element of the
    widest state (`W @ h`: h's length). A function is a libm call (`function`) where it
    is not exact; the exact ones (sqrt, abs, floor, min, where ...) count as arithmetic.
    A random call counts as a function, and as `DRAW_CALLS` array operations."""
    counts = dict.fromkeys(KINDS, 0)
    calls, lanes = 0, program.lanes
    for root in program.roots():
        for node in _counted(root):
            if isinstance(node, ir.Tap | ir.SequenceRead):
                counts["tap"] += 1
                continue
            calls += 1
            if isinstance(node, ir.Binary) and node.op == "@":
                counts["multiply-add"] += lanes
            elif isinstance(node, ir.Call) and not FUNCTIONS[node.func].exact:
                counts["function"] += 1
            elif isinstance(node, ir.Draw):
                calls += DRAW_CALLS - 1
                counts["function"] += 1
            else:
                counts["arithmetic"] += 1
    return Work(calls, counts)


def _counted(node: ir.Node) -> list[ir.Node]:
    """The nodes that cost something in the loop: operations and reads."""
    if isinstance(node, ir.Hoisted | ir.Swept | ir.Literal | ir.Param | ir.Time | ir.Steps
                  | ir.TimeIndex):
        return []
    if isinstance(node, ir.Tap | ir.SequenceRead):
        return [node]
    return [node, *(part for child in ir.children(node) for part in _counted(child))]
