"""A long recurrence affine in its state split into chunks of steps on a Dask cluster
(`engine="scan"` with `scheduler=`): the cluster's form of the GPU scan
(`recur.engine.cuda.scan`), for runs whose steps, not lanes, are many.

`y[t] = a[t] * y[t-1] + b[t]` (recognised by `recur.engine.cuda.affine`) takes three
passes over chunks `[start, stop)` of the steps:

1. each task composes its chunk's maps `y -> a*y + b` into one `(A, B)`, pairwise
   (`summary`);
2. the client runs the short recurrence of those maps, an exclusive prefix scan of one
   value per lane and chunk: the state before each chunk (`starts`);
3. each task runs its chunk from that state on the CPU engine that a run in one
   process takes (`Program.start/stop`, as a run streamed in blocks does): the loop's
   own arithmetic, so the first chunk is bit for bit the loop's and the others start
   from a state that the compositions rounded differently. Kept `last`, only the last
   chunk runs (all of them under `--check`, which must see every step).

Results agree with the loop within the GPU scan's tolerance (docs/performance.md): a
relative 1e-12 (float64) or 1e-5 (float32) of the largest |state|.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy

from recur.cluster import address, split
from recur.cluster.runner import result_of
from recur.compile import ir
from recur.diagnostics import KernelFault, Unsupported, UsageError, option
from recur.engine import stream
from recur.engine.backend import get_backend
from recur.engine.cuda.affine import affine
from recur.engine.plan import Outcome, allocate, run_on
from recur.engine.registry import choose, find

KEEPS = ("all", "last", "none")
BLOCK = 1 << 16  # steps composed pairwise at once: 512 KiB of each of a and b per lane


def check(program: ir.Program) -> None:
    """Refuse a program that is not split into chunks of steps.

    Raises:
        UsageError: a step not affine in its one output's state, or a keep other than
            all, last or none.
    """
    scan = f"{option('engine', 'scan')} with {option('scheduler')}"
    try:
        affine(program, numpy)
    except Unsupported as why:
        raise UsageError(f"{scan} cannot run this spec: {why.message}",
                         notes=(f"use {option('engine', 'auto')} to split its lanes",)) from None
    keep = program.outputs[0].keep
    if keep not in KEEPS:
        raise UsageError(f"{scan} keeps every step or the last, not 'keep: {keep}'",
                         notes=("keep: all, last or none; or run it in one process, "
                                f"without {option('scheduler')}",))


def run_on_cluster(program: ir.Program, where: address.Address,
                   progress: Callable[[int, int], None] | None = None,
                   chunks: int | None = None) -> Outcome:
    """Run `program`, affine in its state, in `chunks` chunks of steps (None: two per
    worker thread, more where a chunk's rows would pass 256 MiB) on the cluster at
    `where`; `progress(steps done, steps)`.

    Raises:
        UsageError: see `check`; an unreachable scheduler.
        RecurError: the first failure, by step, of a chunk (a fault names its step).
    """
    if program.steps == 0:  # nothing to split or scan: the initial state, as in one process
        return run_on(find("interp", "cpu"), program, get_backend("cpu"))
    check(program)
    output = program.outputs[0]
    engine = choose(program).engine.name  # the CPU's, as a run in one process takes
    with address.connected(where) as client:
        count = chunks or max(split.MIN_PER_WORKER * address.worker_threads(client),
                              math.ceil(split.kept_bytes(program) / split.CHUNK_BYTES))
        bounds = split.bounds(program.steps, math.ceil(program.steps / count))
        run = uuid.uuid4().hex[:8]
        client.wait_for_workers(1)  # a scheduler without workers: wait for one, as tasks do
        # sent once to a worker (the others fetch it from there), not in every task, its
        # swept rows made once, here
        [shared] = client.scatter([replace(program, xp=None, swept=tuple(program.swept))],
                                  hash=False)
        futures = [client.submit(summary, shared, start, stop, pure=False,
                                 key=f"recur-{run}-compose-{start}-{stop}")
                   for start, stop in bounds[:-1]]  # no chunk starts after the last
        try:
            composed = [result_of(future) for future in futures]
            states = starts(output.initial[-1].reshape(-1), composed)
            every = output.keep == "all" or program.check_finite
            chosen = range(len(bounds)) if every else range(len(bounds))[-1:]
            futures = [client.submit(run_steps, shared, engine, *bounds[c], states[c],
                                     pure=False, key=f"recur-{run}-steps-{bounds[c][0]}")
                       for c in chosen]
            pieces = []
            for future in futures:  # in step order: the first fault is the run's
                pieces.append(result_of(future))
                future.release()
                if progress is not None:
                    progress(pieces[-1].stop, program.steps)
        finally:
            client.cancel([*futures, shared])
    return Outcome(_assembled(program, pieces), program.steps, "steps")


def summary(program: ir.Program, start: int, stop: int) -> tuple[Any, Any]:
    """The map of steps [start, stop) of `program` (affine), by lane: its rows of `a` and
    `b` read on this worker, composed."""
    maps = affine(program, numpy)
    a, b = (values if len(values) == 1 else values[start:stop]
            for values in (maps.coefficient, maps.offset))
    return compose(a, b, stop - start)


def compose(a: Any, b: Any, steps: int) -> tuple[Any, Any]:
    """The maps `y -> a[t]*y + b[t]` of `steps` steps (at least one) composed into one,
    `y -> A*y + B`, by lane. `a` and `b` are rows by step and lane, or one row: the same
    at every step, where the map's powers take a few squarings. Otherwise blocks of
    `BLOCK` steps are composed pairwise (rounding grows with the log of a block's steps,
    and memory with a block) and the blocks one after another."""
    lanes = max(a.shape[1], b.shape[1])
    if len(a) == len(b) == 1:
        return _power(a[0], b[0], steps)
    total = None
    for first in range(0, steps, BLOCK):
        count = min(BLOCK, steps - first)
        block = _pairwise(*(numpy.broadcast_to(v if len(v) == 1 else v[first:first + count],
                                               (count, lanes)) for v in (a, b)))
        total = block if total is None else _after(block, total)
    assert total is not None
    return total


def _after(then: tuple[Any, Any], first: tuple[Any, Any]) -> tuple[Any, Any]:
    """The map `then` after `first`."""
    return then[0] * first[0], then[0] * first[1] + then[1]


def _power(a: Any, b: Any, steps: int) -> tuple[Any, Any]:
    """`y -> a*y + b` composed `steps` times, by squaring."""
    total, square = None, (a, b)
    while True:
        if steps & 1:
            total = square if total is None else _after(square, total)
        steps >>= 1
        if not steps:
            assert total is not None
            return total
        square = _after(square, square)


def _pairwise(a: Any, b: Any) -> tuple[Any, Any]:
    """Maps by step composed in pairs of neighbours, then pairs of those, and so on."""
    while len(a) > 1:
        odd = len(a) % 2
        a2, b2 = _after((a[1::2], b[1::2]), (a[0:-1:2], b[0:-1:2]))
        if odd:
            a2, b2 = numpy.concatenate([a2, a[-1:]]), numpy.concatenate([b2, b[-1:]])
        a, b = a2, b2
    return a[0], b[0]


def starts(initial: Any, composed: list[tuple[Any, Any]]) -> list[Any]:
    """The state before each chunk: the initial one, then each map of the chunks before
    the last applied to the state before it (`a * y` then `+ b`, as the loop rounds)."""
    states = [initial]
    for a, b in composed:
        states.append(a * states[-1] + b)
    return states


@dataclass(frozen=True, slots=True)
class Piece:
    """What a chunk of steps [start, stop) kept: its rows (`keep: all`), or its last
    state (`keep: last`), or nothing."""

    start: int
    stop: int
    kept: Any


def run_steps(program: ir.Program, engine: str, start: int, stop: int, state: Any) -> Piece:
    """Run steps [start, stop) of `program` from `state` (the one before `start`) on this
    worker. A fault in a kernel is replayed by the interpreter, which names the step (in
    the whole run: the steps keep their numbers) and the lane."""
    backend = get_backend("cpu")
    output = program.outputs[0]
    first = numpy.asarray(state, dtype=output.dtype).reshape(1, *output.shape)
    from_state = stream.resumed(replace(program, xp=backend.xp), start, {output.name: first})
    running = replace(stream.streamed(from_state, stop - start), stop=stop)

    def run(name: str) -> Piece:
        buffers = allocate(running, backend)
        find(name, "cpu").run(running, buffers)
        history = buffers.histories[output.name]
        if output.keep == "all":
            return Piece(start, stop, backend.to_host(history.window(start, stop)))
        return Piece(start, stop, None if output.keep == "none" else history.last(stop).copy())

    try:
        return run(engine)
    except KernelFault:
        return run("interp")


def _assembled(program: ir.Program, pieces: list[Piece]) -> dict[str, Any]:
    """The kept output from the chunks' pieces, in step order."""
    output = program.outputs[0]
    if output.keep == "none":
        return {}
    if output.keep == "last":
        return {output.name: pieces[-1].kept}
    rows = numpy.empty((program.steps, *output.shape), dtype=output.dtype)
    for piece in pieces:
        rows[piece.start:piece.stop] = piece.kept
    return {output.name: rows}
