"""A cluster's run written to a Zarr store by its workers (`-o run.zarr` with
`--scheduler`): the result never passes through one process's memory.

The client creates the store as a run in one process would (`recur.storing.create`: the
same arrays, attributes and dimension names), its arrays sized for every step asked for
and chunked along the lanes by the tasks' chunk, so that no two tasks ever write the same
Zarr chunk, and along the steps by a task's block. Each task runs its lanes a block of
steps at a time (`recur.engine.stream`: some 16 MB of its kept rows) and writes lanes
[start, stop) of each array itself (the first task the outputs without lanes); it returns
only how its run ended. The client then cuts the arrays to the steps run, writes the
final attributes and puts the store in its place; a run that fails (or is interrupted)
leaves no store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy

from recur import storing
from recur.cluster import split
from recur.cluster.split import Lanes
from recur.compile import ir
from recur.diagnostics import RunError
from recur.engine import stream
from recur.engine.plan import Outcome
from recur.engine.protocol import Engine
from recur.io import zarr_store
from recur.io.zarr_store import RunStore
from recur.lang.keep import of, rows


@dataclass(frozen=True, slots=True)
class Target:
    """The store a cluster's run is asked to write (`store=`)."""

    path: Path
    source: str  # the spec's text, for the attributes
    order: tuple[str, ...]  # the written outputs in declaration order
    force: bool  # replace what is at `path`


@dataclass(frozen=True, slots=True)
class Place:
    """Where a task writes: the store being built, its blocks of steps, and the outputs
    whose state has the lanes as its first axis."""

    path: str
    block: int  # a task's block of steps: some 16 MB of its kept rows, a chunk's rows
    alone: int  # the block of a run in one process, whose count gives the carried slot
    laned: frozenset[str]


def streamed(program: ir.Program) -> ir.Program:
    """The program the tasks' engine runs, as a run into a store in one process: the
    engine is chosen for it."""
    return stream.streamed(program, stream.block_steps(program))


def create(program: ir.Program, lanes: Lanes, size: int, target: Target) -> tuple[RunStore,
                                                                                 Place]:
    """The store of a run of `program` in chunks of `size` lanes, built beside its path
    (which the caller checked: `storing.check_new`), and where the tasks write."""
    block = stream.block_steps(split.chunk(program, lanes, 0, min(size, lanes.count)))
    laned = frozenset(o.name for o in program.outputs if lanes.carries(o.shape))
    written = [replace(column, lane_chunk=size) if column.name in laned else column
               for column in storing.columns(program, block)]
    store = storing.create(program, target.path, written, target.source, list(target.order))
    for o in program.outputs:
        keep = of(o.keep)
        if o.name not in target.order:
            continue
        if keep.mode in ("all", "every"):
            store.cut(o.name, rows(o.keep, program.steps))
        elif keep.mode in ("last", "tail"):
            shape = o.shape if keep.mode == "last" else (rows(o.keep, program.steps), *o.shape)
            store.create_final(o.name, shape, numpy.dtype(o.dtype),
                               size if o.name in laned else None)
    running_marks(store.path).mkdir()
    return store, Place(str(store.path), block, stream.block_steps(program), laned)


def write_lanes(engine: Engine, program: ir.Program, backend: Any, place: Place, start: int,
                stop: int) -> tuple[int, str, dict[str, Any]]:
    """Run a task's `program` (lanes [start, stop)) a block at a time on this worker,
    writing its lanes of each array: the steps run, why they stopped, and the carried
    states' slot and counts, as a run in one process records them at its last block."""
    running = running_marks(place.path) / str(start)
    try:
        running.touch()  # the client waits for this to go before it cleans up a failure
    except FileNotFoundError:  # the run failed before this task began: nothing to do
        raise RunError(f"the store being built at {place.path} was removed: the run "
                       "failed") from None
    try:
        return _write_lanes(engine, program, backend, place, start, stop)
    finally:
        running.unlink(missing_ok=True)


def running_marks(path: str | Path) -> Path:
    """The folder beside a store being built where each task writing it keeps a mark
    while it runs (outside the store, which a failure removes first)."""
    return Path(f"{path}.running")


def _write_lanes(engine: Engine, program: ir.Program, backend: Any, place: Place,
                 start: int, stop: int) -> tuple[int, str, dict[str, Any]]:
    store = RunStore.open(Path(place.path), "r+")
    keeps = dict(store.attrs["keeps"])
    ours = (slice(start, stop),)
    ended: dict[str, Any] = {}

    def lanes(name: str) -> tuple[slice, ...] | None:
        """The region of the state this task writes, None for none of it."""
        return ours if name in place.laned else () if start == 0 else None

    def sink(done: stream.Block) -> None:
        _alive(place)
        for name, array in done.rows.items():
            if name in keeps and (region := lanes(name)) is not None:
                first = rows(keeps[name], done.start)
                store.write_region(name, (slice(first, first + len(array)), *region), array)
        if done.stopped_by == "until" or done.stop >= program.steps:
            # A run in one process alternates slots, its first block's being 1.
            slot = max(1, math.ceil(done.stop / place.alone)) % 2
            for name, states in done.carried.items():
                if len(states) and (region := lanes(name)) is not None:
                    store.write_region(name, (slot, slice(0, len(states)), *region), states,
                                       resume=True)
            for name, array in done.finals.items():
                if name in keeps and (region := lanes(name)) is not None:
                    rows_of = () if keeps[name] == "last" else (slice(0, len(array)),)
                    store.write_region(name, (*rows_of, *region) or (...,), array)
            ended["resume"] = {"slot": slot, "rows": {name: len(states) for name, states
                                                      in done.carried.items()}}
        _alive(place, written=True)

    steps_run, stopped_by = stream.run_blocks(engine, program, backend, place.block, sink)
    return steps_run, stopped_by, ended["resume"]


def finish(store: RunStore, program: ir.Program, outcome: Outcome,
           resume: dict[str, Any], path: Path) -> Outcome:
    """The store of a run whose tasks all ended: its arrays cut to the steps run, its
    final attributes, put in `path`'s place. The outcome's arrays are the store's."""
    keeps = dict(store.attrs["keeps"])
    for o in program.outputs:
        if o.name in keeps and of(o.keep).mode != "last":
            store.cut(o.name, rows(o.keep, outcome.steps_run))
    store.ended(outcome.steps_run, outcome.stopped_by, resume)
    store.publish(path)
    return Outcome(store.arrays(), outcome.steps_run, outcome.stopped_by)


def _alive(place: Place, written: bool = False) -> None:
    """Stop a task whose run failed elsewhere: the client removed the store. A task that
    wrote after it did removes what its writes made again."""
    if not (Path(place.path) / "zarr.json").exists():
        if written:
            zarr_store.remove(Path(place.path))
        raise RunError(f"the store being built at {place.path} was removed: the run failed")
