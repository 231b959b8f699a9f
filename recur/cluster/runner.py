"""A run split into chunks of lanes on a Dask cluster: bit for bit a single-process run.

Each chunk is one task (`task.run_chunk`) of the same engine on the chunk's program
(`split.chunk`), whose draws are numbered by global lane; pieces are assembled in lane
order as they finish (`assemble`), or written by the tasks into a Zarr store
(`stored`). Dask retries the task of a worker that dies. A
task's error cancels the others; the run's is the first fault, by step and lane, of the
tasks finished, named by global lane.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from numbers import Integral
from pathlib import Path
from typing import Any

from recur import storing
from recur.cluster import address, split, stored
from recur.cluster.assemble import Assembly
from recur.cluster.task import packed, run_chunk
from recur.compile import ir
from recur.diagnostics import RecurError, RunError, UsageError, option
from recur.engine.plan import Outcome
from recur.engine.protocol import Engine
from recur.io import zarr_store


def check(scheduler: str, lane_chunk: int | None, device: str, engine: str) -> address.Address:
    """Refuse what no cluster run takes, before anything is computed: the address, the
    chunk size (of lanes: not for a scan, which splits the steps), a device other than
    the CPU."""
    where = address.parse(scheduler)
    if lane_chunk is not None and (isinstance(lane_chunk, bool)
                                   or not isinstance(lane_chunk, Integral) or lane_chunk < 1):
        raise UsageError(f"{option('lane_chunk')} must be a number of lanes >= 1, "
                         f"not {lane_chunk!r}")
    if device != "cpu":
        raise UsageError(f"{option('scheduler')} runs on the workers' CPUs: it takes "
                         f"{option('device', 'cpu')} only")
    if engine == "scan" and lane_chunk is not None:
        raise UsageError(f"{option('lane_chunk')} sizes chunks of lanes: with "
                         f"{option('engine', 'scan')} a cluster splits the steps",
                         notes=(f"leave out {option('lane_chunk')}",))
    return where


def run_on_cluster(program: ir.Program, engine: Engine, where: address.Address,
                   lane_chunk: int | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   target: stored.Target | None = None) -> Outcome:
    """Run `program` on `engine`, its lanes split into chunks of `lane_chunk` (None: by
    the engine's estimate), on the cluster at `where`; `progress(lanes done, lanes)`.
    With `target`, the tasks write a Zarr store there and the outcome's arrays are the
    store's (`stored`).

    Raises:
        UsageError: a spec whose lanes cannot run apart, an unreachable scheduler, a
            store's path taken.
        RecurError: the first failure of a chunk (a fault names its global lane).
    """
    lanes = split.lanes_of(program)
    if target is not None:
        storing.check_new(target.path, target.force)  # before a cluster starts
    with address.connected(where) as client:
        size = int(lane_chunk) if lane_chunk else split.default_size(
            program, lanes, engine.estimate(program).seconds, address.worker_threads(client))
        store, place = stored.create(program, lanes, size, target) if target else (None, None)
        marks = None if store is None else stored.running_marks(store.path)
        try:
            assembly = _run_chunks(client, program, engine, lanes, size, place, progress)
            outcome = assembly.outcome()
            if store is None or target is None:
                return outcome
            assert assembly.resume is not None
            return stored.finish(store, program, outcome, assembly.resume, target.path)
        except BaseException:
            if store is not None and marks is not None:
                zarr_store.remove(store.path)  # the tasks still running see it go, stop
                _settled(marks)
                zarr_store.remove(store.path)  # and what their last writes made again
            raise
        finally:
            if marks is not None:
                zarr_store.remove(marks)


def _settled(marks: Path, limit: float = 60.0) -> None:
    """Wait (up to `limit` seconds) until no task of the run is writing: each keeps a
    mark in `marks` while it runs (a cancelled task that was running goes on to its next
    block, where it finds the store gone and stops)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and any(marks.iterdir()):
        time.sleep(0.05)


def _run_chunks(client: Any, program: ir.Program, engine: Engine, lanes: split.Lanes,
                size: int, place: stored.Place | None,
                progress: Callable[[int, int], None] | None) -> Assembly:
    """Every chunk's task submitted, their pieces assembled as they finish."""
    run = uuid.uuid4().hex[:8]  # a run's task names are its own on a shared cluster
    program = replace(program, swept=tuple(program.swept))  # made once, cut per chunk
    chunks = [packed(start, stop, split.chunk(program, lanes, start, stop), engine.name,
                     place)
              for start, stop in split.bounds(lanes.count, size)]
    futures = [client.submit(run_chunk, chunk, pure=False,
                             key=f"recur-{run}-lanes-{chunk.start}-{chunk.stop}")
               for chunk in chunks]
    assembly = Assembly(program, lanes)
    try:
        for future in address.distributed().as_completed(futures):
            assembly.add(result_of(future))
            future.release()  # the piece is copied: the worker may let it go
            if progress is not None:
                progress(assembly.done, lanes.count)
    except RecurError as error:
        raise _first_fault(error, futures) from None
    finally:
        client.cancel(futures)
    return assembly


def _first_fault(error: RecurError, futures: list[Any]) -> RecurError:
    """The run's error: of the faults of the tasks finished so far, the first by step
    and lane, as a single-process run reports it; the tasks still running are cancelled,
    and where there are some the error says that one of them may fault earlier."""
    found = [error, *(future.exception() for future in futures if future.status == "error")]
    faults = [fault for fault in found if isinstance(fault, RecurError)]
    first = min(faults, key=lambda fault: (math.inf if fault.t is None else fault.t,
                                           fault.lane or ()))
    if not all(future.done() for future in futures):
        return first.with_note("the first fault found: the chunks of lanes still running "
                               "were cancelled, and one of them may fault earlier")
    return first


def result_of(future: Any) -> Any:
    """A finished task's result; its error as recur's own (a lost worker, retried too
    often, or a failure outside recur: recur missing on a worker)."""
    try:
        return future.result()
    except RecurError:
        raise
    except Exception as error:
        raise RunError(f"a task of the cluster failed ({future.key}): "
                       f"{type(error).__name__}: {error}") from None
