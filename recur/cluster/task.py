"""The task of one chunk of lanes: recur's own engine runs the chunk's program on a
worker, and the kept arrays go back to the client.

The engine is the one the whole run would take, named by the client, so that every
chunk computes with the same operations: the bits of a single-process run. The C
kernel is compiled once per worker process and machine (`recur.engine.c.native` keeps
it loaded, and cached on disk under the hash of its source, which is the same for
every chunk), so the chunks after a worker's first pay only for loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from recur.compile import ir
from recur.diagnostics import KernelFault
from recur.engine.backend import get_backend
from recur.engine.plan import run_on
from recur.engine.registry import find


@dataclass(frozen=True, slots=True)
class Chunk:
    """Lanes [start, stop) of a run, and what runs them."""

    start: int
    stop: int
    program: ir.Program  # the chunk's own (`split.chunk`), `xp` None: a module is no data
    engine: str  # the whole run's engine by name ("interp", "compiled")


@dataclass(frozen=True, slots=True)
class Piece:
    """What a chunk kept, for lanes [start, stop), and how its run ended."""

    start: int
    stop: int
    arrays: dict[str, Any]
    steps_run: int
    stopped_by: str


def packed(start: int, stop: int, program: ir.Program, engine: str) -> Chunk:
    """A chunk ready to travel to a worker."""
    return Chunk(start, stop, replace(program, xp=None), engine)


def run_chunk(chunk: Chunk) -> Piece:
    """Run a chunk on this worker. A fault in a kernel is replayed by the interpreter,
    which names the output, the step and the lane (in the whole sweep: the chunk's
    program knows its `first_lane`), as in a single-process run."""
    backend = get_backend("cpu")
    program = replace(chunk.program, xp=backend.xp)
    try:
        outcome = run_on(find(chunk.engine, program.device), program, backend)
    except KernelFault:
        outcome = run_on(find("interp", program.device), program, backend)
    return Piece(chunk.start, chunk.stop, outcome.arrays, outcome.steps_run,
                 outcome.stopped_by)
