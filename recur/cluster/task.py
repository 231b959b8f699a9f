"""The task of one chunk of lanes: recur's own engine runs the chunk's program on a
worker, and the kept arrays go back to the client (or into a store: `stored`).

The engine is the one the whole run would take, named by the client, so that every
chunk computes with the same operations: the bits of a single-process run. The C
kernel is compiled once per worker process and machine (`recur.engine.c.native` keeps
it loaded, and cached on disk under the hash of its source, which is the same for
every chunk), so the chunks after a worker's first pay only for loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from recur.cluster.stored import Place, write_lanes
from recur.compile import ir
from recur.diagnostics import KernelFault
from recur.engine.backend import get_backend
from recur.engine.plan import run_on
from recur.engine.protocol import Engine
from recur.engine.registry import find


@dataclass(frozen=True, slots=True)
class Chunk:
    """Lanes [start, stop) of a run, and what runs them."""

    start: int
    stop: int
    program: ir.Program  # the chunk's own (`split.chunk`), `xp` None: a module is no data
    engine: str  # the whole run's engine by name ("interp", "compiled")
    place: Place | None = None  # the store the chunk writes its lanes to, if any


@dataclass(frozen=True, slots=True)
class Piece:
    """What a chunk kept, for lanes [start, stop), and how its run ended."""

    start: int
    stop: int
    arrays: dict[str, Any]  # none where the chunk wrote them to a store
    steps_run: int
    stopped_by: str
    resume: dict[str, Any] | None = None  # a store's carried states: slot and counts


def packed(start: int, stop: int, program: ir.Program, engine: str,
           place: Place | None = None) -> Chunk:
    """A chunk ready to travel to a worker."""
    return Chunk(start, stop, replace(program, xp=None), engine, place)


def run_chunk(chunk: Chunk) -> Piece:
    """Run a chunk on this worker. A fault in a kernel is replayed by the interpreter,
    which names the output, the step and the lane (in the whole sweep: the chunk's
    program knows its `first_lane`), as in a single-process run."""
    backend = get_backend("cpu")
    program = replace(chunk.program, xp=backend.xp)

    def run(engine: Engine) -> Piece:
        if chunk.place is None:
            outcome = run_on(engine, program, backend)
            return Piece(chunk.start, chunk.stop, outcome.arrays, outcome.steps_run,
                         outcome.stopped_by)
        steps_run, stopped_by, resume = write_lanes(engine, program, backend, chunk.place,
                                                    chunk.start, chunk.stop)
        return Piece(chunk.start, chunk.stop, {}, steps_run, stopped_by, resume)

    try:
        return run(find(chunk.engine, program.device))
    except KernelFault:
        return run(find("interp", program.device))
