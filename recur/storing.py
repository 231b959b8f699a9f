"""Runs written to a Zarr store while they go (`store=`, `-o run.zarr`), and continued
from one (`resume=`, `--resume`): the glue between the block runner
(`recur.engine.stream`) and the store (`recur.io.zarr_store`).

A fresh store is built beside its path, hidden, and takes its place at the first
checkpoint: a run that fails before leaves nothing there, one killed after leaves a store
that `--resume` continues. A run that fails with an error (a fault, a full disk) removes
a fresh store; Ctrl-C leaves it, resumable, and says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy

from recur.compile.ir import Program
from recur.diagnostics import UsageError, option
from recur.engine import stream
from recur.engine.plan import Outcome
from recur.engine.protocol import Engine, Progress
from recur.io import zarr_store
from recur.io.zarr_store import Column, RunStore, Writer
from recur.lang.keep import of, rows

# Runs the program on an engine chosen for the program it is given, `api.run`'s choice and
# its fall-back to the interpreter: the steps run, what stopped them, and the engine.
Attempt = Callable[[Program, Callable[[Engine], tuple[int, str]]], tuple[tuple[int, str], str]]


@dataclass(frozen=True, slots=True)
class Stored:
    """What a run into a store leaves: its outcome, arrays being the store's, and the
    engine that ran it."""

    outcome: Outcome
    engine: str


def spec_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def columns(program: Program, block: int) -> list[Column]:
    """The written outputs (not `keep: none`) and the states each carries on."""
    return [
        Column(o.name, o.dtype, o.shape, o.keep, stream.streams(o), stream.carried_rows(o),
               block if o.keep == "all" else block // max(of(o.keep).n, 1))
        for o in program.outputs if o.keep != "none" or stream.carried_rows(o)
    ]


def check_new(path: Path, force: bool) -> None:
    """Refuse to replace a store (or anything) at `path` without `force`."""
    if (path.exists() or path.is_symlink()) and not force:
        raise UsageError(f"{path} exists; it is not replaced",
                         notes=("--force replaces it; --resume continues it",))


def create(program: Program, path: Path, written: list[Column], source: str,
           order: list[str]) -> RunStore:
    """A fresh store for `path`, built beside it (`zarr_store.fresh_location`), with the
    attributes of a run of `program` not started; `order` is as `run_into`'s."""
    built = zarr_store.fresh_location(path)
    zarr_store.remove(built)
    keeps = {name: program.output(name).keep for name in order}
    return RunStore.create(built, written, {
        "recur_version": metadata.version("recur"), "format": zarr_store.FORMAT,
        "spec": source, "spec_sha256": spec_hash(source),
        "params": {name: zarr_store.jsonable(value) for name, value in program.params.items()},
        "seed": program.seed, "steps": program.steps, "keeps": keeps,
    })


def run_into(program: Program, backend: Any, path: Path, source: str, order: list[str],
             attempt: Attempt, progress: Progress | None, force: bool) -> Stored:
    """A fresh run of `program` written to a new store at `path`; `order` is the written
    outputs' declaration order."""
    check_new(path, force)
    block = stream.block_steps(program)
    store = create(program, path, columns(program, block), source, order)
    built = store.path
    published = [False]

    def after_checkpoint() -> None:
        if not published[0]:
            store.publish(path)
            published[0] = True

    try:
        stored = _run(store, program, backend, attempt, progress, block, after_checkpoint)
    except KeyboardInterrupt:
        if not published[0]:
            zarr_store.remove(built)
        raise
    except BaseException:
        zarr_store.remove(path if published[0] else built)
        raise
    return stored


def resume_into(program: Program, backend: Any, store: RunStore, attempt: Attempt,
                progress: Progress | None) -> Stored:
    """`program` (compiled for the run's whole length) continued from where `store`
    ends, its new rows appended."""
    attrs = store.attrs
    done = int(attrs["steps_run"])
    carried = store.carried()
    for o in program.outputs:
        if o.keep != "none" and stream.streams(o):
            store.cut(o.name, rows(o.keep, done))
    xp = backend.xp
    states = {o.name: xp.asarray(carried[o.name]) if carried.get(o.name) is not None
              else xp.empty((0, *o.shape), dtype=o.dtype) for o in program.outputs}
    block = stream.block_steps(program)
    store.asked(program.steps)
    return _run(store, stream.resumed(program, done, states), backend, attempt, progress,
                block, lambda: None)


def _run(store: RunStore, program: Program, backend: Any, attempt: Attempt,
         progress: Progress | None, block: int, after_checkpoint: Callable[[], None]
         ) -> Stored:
    writer = Writer()
    keeps = dict(store.attrs["keeps"])  # read once: the writer's thread writes them

    def sink(done: stream.Block) -> None:
        streamed = {name: array for name, array in done.rows.items() if name in keeps}
        finals = {name: array for name, array in done.finals.items() if name in keeps}

        def job() -> None:
            for name, array in streamed.items():
                store.write_rows(name, rows(keeps[name], done.start), array)
            store.checkpoint(done.stop, done.stopped_by, done.carried, finals)
            after_checkpoint()

        writer.submit(job)

    def run_on(engine: Engine) -> tuple[int, str]:
        return stream.run_blocks(engine, program, backend, block, sink, progress)

    try:
        (steps_run, stopped_by), engine = attempt(stream.streamed(program, block), run_on)
    finally:
        writer_error = None
        try:
            writer.close()
        except BaseException as error:
            writer_error = error
    if writer_error is not None:
        raise writer_error
    return Stored(Outcome(store.arrays(), steps_run, stopped_by), engine)


def check_continuation(store: RunStore, source: str, params: dict[str, Any], seed: int,
                       keeps: dict[str, str]) -> None:
    """Refuse to continue a store with another spec, other params, seed or keeps: the
    continuation would not be the run the store began."""
    attrs = store.attrs
    if attrs.get("spec_sha256") != spec_hash(source):
        raise UsageError(f"{store.path} was written by another spec (or another version of "
                         "this one): its text differs", notes=(
                             "resume with the spec the store was written by (its text is "
                             "the store's 'spec' attribute)",))
    stored = attrs.get("params", {})
    for name, value in params.items():
        now = zarr_store.jsonable(value)
        if stored.get(name) != now:
            raise UsageError(f"param '{name}' is {_short(stored.get(name))} in {store.path}, "
                             f"{_short(now)} now", notes=(
                                 f"give the store's value with {option('params')}",))
    if int(attrs.get("seed", 0)) != seed:
        raise UsageError(f"{store.path} was written with seed {attrs.get('seed')}, and this "
                         f"run has seed {seed}", notes=(f"use {option('seed', attrs['seed'])}",))
    if attrs.get("keeps") != keeps:
        raise UsageError(f"{store.path} keeps {_keeps_words(attrs.get('keeps'))}, and this "
                         f"run would keep {_keeps_words(keeps)}")


def _short(value: Any) -> str:
    text = str(numpy.asarray(value).tolist()) if value is not None else "absent"
    return text if len(text) < 60 else text[:57] + "..."


def _keeps_words(keeps: Any) -> str:
    return ", ".join(f"{name}: {keep}" for name, keep in dict(keeps or {}).items())
