"""A run in blocks of steps, each block's kept rows handed on as it ends: how a run whose
kept outputs exceed memory writes them to a store as it goes (`recur.io.zarr_store`), and
how a store's run is continued (`resume`).

Outputs kept whole (`all`) run in a ring of one block's states (`keep: last B` to the
engines), `every K` ones keep a block's rows in a ring of their own; after each block
their rows go to the sink with what a continuation needs: each output's last states
(those its taps read, and all that `last N` keeps). Every block runs the steps
`[start, stop)` of the same program, so `t`, the sequences and the random draws are
those of a run in one go, bit for bit; so is a continuation, which starts from the
carried states at the step where its store ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from recur.compile.ir import Output, Program
from recur.engine.plan import allocate
from recur.engine.work import row_bytes
from recur.lang.keep import of

if TYPE_CHECKING:
    from recur.engine.protocol import Engine, Progress

BLOCK_BYTES = 16 * 2**20  # the kept rows of one block, all streamed outputs together


@dataclass(frozen=True, slots=True)
class Block:
    """What a block of steps leaves: its streamed rows, and the state at its end."""

    start: int  # its first step
    stop: int  # the steps run when it ended (all of the run's, counted from 0)
    stopped_by: str  # "steps" (this block's steps or the run's) or "until"
    rows: dict[str, Any]  # host rows of the outputs kept `all` or `every K`, in step order
    carried: dict[str, Any]  # each output's last states (`carried_rows`), oldest first
    finals: dict[str, Any]  # the outputs kept `last` or `last N`, as `collect` gives them


Sink = Callable[[Block], None]


def streams(output: Output) -> bool:
    """Whether an output's rows are written block after block (`all`, `every K`)."""
    return of(output.keep).mode in ("all", "every")


def carried_rows(output: Output) -> int:
    """The states a continuation needs of an output: what its taps read, the final state
    of `keep: last`, the N of `keep: last N`."""
    keep = of(output.keep)
    return max(output.depth, keep.n if keep.mode == "tail" else int(keep.mode == "last"))


def block_steps(program: Program, target: int | None = None) -> int:
    """Steps per block: about `target` bytes of streamed rows, and a multiple of every
    K, so that each block gives each streamed output the same number of rows."""
    per_step = sum(row_bytes(o) for o in program.outputs if streams(o))
    every = math.lcm(*(of(o.keep).n for o in program.outputs if of(o.keep).mode == "every"))
    steps = max(1, int((target or BLOCK_BYTES) // max(per_step, 1)))
    return max(every, steps - steps % every)


def streamed(program: Program, block: int) -> Program:
    """The program the engines run a block of: what is kept whole held in a ring of a
    block's states."""
    return replace(program, outputs=tuple(
        replace(o, keep=f"last {block}") if o.keep == "all" else o for o in program.outputs))


def resumed(program: Program, start: int, carried: Mapping[str, Any]) -> Program:
    """`program` continued from step `start`, each output's carried states (on the
    program's device) before it."""
    return replace(program, start=start, outputs=tuple(
        replace(o, initial=carried[o.name] if len(carried[o.name]) else o.initial)
        for o in program.outputs))


def run_blocks(engine: Engine, program: Program, backend: Any, block: int, sink: Sink,
               progress: Progress | None = None) -> tuple[int, str]:
    """Run `program` (from its `start`) a block of `block` steps at a time on `engine`,
    handing each block to `sink`: the steps run and what stopped them. `program` is the
    one the user's keeps describe; the engines run `streamed(program, block)`."""
    running = streamed(program, block)
    buffers = allocate(running, backend, block)
    to_host = backend.to_host
    steps_run, stopped_by = program.start, "steps"
    for first in range(program.start, max(program.steps, program.start + 1), block):
        stop = min(first + block, program.steps)
        steps_run, stopped_by = engine.run(replace(running, start=first, stop=stop), buffers,
                                           progress)
        histories = buffers.histories
        sink(Block(
            first, steps_run, stopped_by,
            {o.name: to_host(histories[o.name].window(first, steps_run))
             for o in program.outputs if streams(o)},
            {o.name: to_host(histories[o.name].carried(steps_run, carried_rows(o)))
             for o in program.outputs},
            finals(program, buffers, steps_run),
        ))
        if stopped_by == "until" or stop >= program.steps:
            break
    return steps_run, stopped_by


def finals(program: Program, buffers: Any, steps: int) -> dict[str, Any]:
    """The outputs kept `last` or `last N` after `steps` steps, on the host."""
    arrays = {}
    for output in program.outputs:
        history, mode = buffers.histories[output.name], of(output.keep).mode
        if mode == "tail":
            arrays[output.name] = buffers.backend.to_host(history.window(0, steps))
        elif mode == "last" and history.last(steps) is not None:  # a copy: the ring goes on
            arrays[output.name] = buffers.backend.to_host(history.last(steps).copy())
    return arrays
