"""A run's Zarr v3 store, written while the run goes (`-o run.zarr`, `recur.run(store=)`),
read back (`--input`, `recur diff`, `recur plot`) and continued (`--resume`).

Layout: one array per written output at the root, chunked along steps (a chunk is one
block of the run, some tens of MB; the lanes are chunked too where one step is larger),
with `dimension_names` (`step`, then `lane` or `dim_0`, ...; `dimension_names`
below), uncompressed (a chaotic
float does not compress, and the run would wait for it). The root's attributes hold the
spec's text and hash, the params, the seed, the steps asked for and run, why the run
stopped, the keeps and recur's version: `xarray.open_zarr` shows them.

A continuation needs each output's last states: the group `recur_resume` holds them in
two slots, written in turn; the root's attributes name the slot of the last whole
checkpoint and are written last. A run killed at any moment (SIGKILL) leaves a store
whose attributes describe its last checkpoint; rows written past it are cut when it is
continued.

zarr-python is the optional extra `recur[zarr]`, imported only here and only when a
store is asked for.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from recur.diagnostics import UsageError

RESUME = "recur_resume"
FORMAT = 1  # the layout's version, in the attributes
CHUNK_BYTES = 32 * 2**20
SUFFIX = ".zarr"


def zarr_module() -> Any:
    """zarr-python, or an error that names the extra to install."""
    try:
        import zarr
    except ImportError:
        raise UsageError("writing or reading a Zarr store needs zarr-python (3 or later)",
                         notes=("pip install 'recur[zarr]'",)) from None
    return zarr


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a Zarr store: a `.zarr` suffix, or a folder with a zarr.json."""
    text = os.fspath(path)
    return text.lower().rstrip("/").endswith(SUFFIX) or os.path.isfile(
        os.path.join(text, "zarr.json"))


@dataclass(frozen=True, slots=True)
class Column:
    """One output as a store holds it: per step (`all`, `every K`: its rows go out block
    by block) or a final array (`last`, `last N`), and the states a continuation needs."""

    name: str
    dtype: str
    shape: tuple[int, ...]  # one step's state
    keep: str
    streamed: bool  # rows written block by block
    carried: int  # the states a continuation starts from
    block_rows: int  # rows per block (streamed), the chunk along steps
    lane_chunk: int | None = None  # the chunk along the lanes (the state's first axis)
    # where a cluster's tasks write their lanes apart (`recur.cluster.stored`)


def dimension_names(columns: list[Column]) -> dict[str, list[str]]:
    """Each output's dimension names, as xarray wants them: a name means one length in
    the whole store. The steps: `step` (`keep: all`), `step_every_K`, `step_last_N`;
    the state: `lane` for one axis, else `dim_0`, `dim_1`, ...; a state name that two
    outputs give different lengths becomes the output's own (`h_lane`)."""
    def state(shape: tuple[int, ...]) -> list[str]:
        return ["lane"] if len(shape) == 1 else [f"dim_{k}" for k in range(len(shape))]

    lengths: dict[str, set[int]] = {}
    for column in columns:
        for dim, length in zip(state(column.shape), column.shape, strict=True):
            lengths.setdefault(dim, set()).add(length)
    names = {}
    for column in columns:
        keep = column.keep.split()
        step = ([] if keep == ["last"] else ["step" if keep == ["all"]
                                             else f"step_{keep[0]}_{keep[1]}"])
        names[column.name] = step + [
            dim if len(lengths[dim]) == 1 else f"{column.name}_{dim}"
            for dim in state(column.shape)]
    return names


def chunks(rows: int, shape: tuple[int, ...], itemsize: int,
           lane_chunk: int | None = None) -> tuple[int, ...]:
    """`rows` steps by the whole state, or fewer of its first axis where that is larger
    than `CHUNK_BYTES`: a chunk of some tens of MB; `lane_chunk` of it where given."""
    rows = max(rows, 1)
    if not shape:
        return (rows,)
    rest = math.prod(shape[1:]) * itemsize
    first = lane_chunk or max(1, min(shape[0], CHUNK_BYTES // max(rows * rest, 1)))
    return (rows, first, *shape[1:])


class RunStore:
    """A store being written (fresh or continued) or read."""

    def __init__(self, path: Path, group: Any) -> None:
        self.path = path
        self.group = group

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    # Writing

    @classmethod
    def create(cls, path: Path, columns: list[Column], attrs: Mapping[str, Any]) -> RunStore:
        """A fresh store at `path` (a folder that must not exist yet): empty arrays, the
        attributes of a run that has not started."""
        zarr = zarr_module()
        group = zarr.open_group(store=str(path), mode="w-", zarr_format=3)
        resume = group.require_group(RESUME)
        dims = dimension_names([c for c in columns if c.keep != "none"])
        for column in columns:
            dtype = numpy.dtype(column.dtype)
            if column.streamed:
                group.create_array(
                    column.name, shape=(0, *column.shape), dtype=dtype,
                    chunks=chunks(column.block_rows, column.shape, dtype.itemsize,
                                  column.lane_chunk),
                    dimension_names=dims[column.name], compressors=None,
                    fill_value=_fill(dtype))
            if column.carried:
                resume.create_array(
                    column.name, shape=(2, column.carried, *column.shape), dtype=dtype,
                    chunks=(1, column.carried, *_lane_cut(column.shape, column.lane_chunk)),
                    compressors=None,
                    fill_value=_fill(dtype))
        group.update_attributes({**attrs, "steps_run": 0, "stopped_by": "not started",
                            "dimension_names": dims, RESUME: {"slot": None, "rows": {}}})
        return cls(path, group)

    def write_rows(self, name: str, first: int, rows: numpy.ndarray) -> None:
        """Rows of a streamed output from row `first` on."""
        array = self.group[name]
        end = first + len(rows)
        if array.shape[0] != end:
            array.resize((end, *array.shape[1:]))
        if len(rows):
            array[first:end] = rows

    def checkpoint(self, steps_run: int, stopped_by: str, carried: Mapping[str, Any],
                   finals: Mapping[str, Any]) -> None:
        """Record a whole checkpoint after the rows up to `steps_run` are written: the
        carried states into the slot not in use, the final arrays, then the attributes
        that point at both (the last write: a kill before it leaves the previous one)."""
        state = self.group.attrs[RESUME]
        slot = 0 if state["slot"] == 1 else 1
        resume = self.group[RESUME]
        rows = {}
        for name, states in carried.items():
            if len(states):
                resume[name][slot, :len(states)] = states
            rows[name] = len(states)
        for name, array in finals.items():
            self._write_final(name, numpy.asarray(array))
        self.ended(steps_run, stopped_by, {"slot": slot, "rows": rows})

    def ended(self, steps_run: int, stopped_by: str, resume: Mapping[str, Any]) -> None:
        """Record where the run is: its steps, why it stopped, and the slot and count of
        the carried states (`resume`)."""
        # One write of the group's zarr.json (`attrs.update` writes it once per key: a
        # kill between two would pair a new step count with the old slot).
        self.group.update_attributes({"steps_run": steps_run, "stopped_by": stopped_by,
                                      RESUME: dict(resume)})

    def _write_final(self, name: str, array: numpy.ndarray) -> None:
        existing = self.group.get(name)
        if existing is None or existing.shape != array.shape:
            if existing is not None:
                del self.group[name]
            self.create_final(name, array.shape, array.dtype)
        if array.size:
            self.group[name][...] = array

    def create_final(self, name: str, shape: tuple[int, ...], dtype: numpy.dtype[Any],
                     lane_chunk: int | None = None) -> None:
        """The array of an output kept `last` or `last N`, chunked along the lanes by
        `lane_chunk` where given."""
        per_step = self.group.attrs["keeps"][name] != "last" and len(shape) > 0
        self.group.create_array(
            name, shape=shape, dtype=dtype,
            chunks=chunks(shape[0], shape[1:], dtype.itemsize, lane_chunk) if per_step
            else _lane_cut(shape, lane_chunk) or (), compressors=None,
            dimension_names=self.group.attrs["dimension_names"][name], fill_value=_fill(dtype))

    def write_region(self, name: str, region: tuple[Any, ...], array: numpy.ndarray,
                     resume: bool = False) -> None:
        """`array` into `region` of an output's array (of its carried states with
        `resume`), its size unchanged: a cluster's task writes its lanes."""
        target = self.group[RESUME][name] if resume else self.group[name]
        target[region] = array

    def publish(self, path: Path) -> None:
        """Put this store (built elsewhere) in `path`'s place, and go on writing there."""
        publish(self.path, path)
        self.path = path
        self.group = zarr_module().open_group(store=str(path), mode="r+", zarr_format=3)

    # Reading and continuing

    @classmethod
    def open(cls, path: Path, mode: str = "r") -> RunStore:
        """A store recur wrote, or an error that says what `path` is instead."""
        zarr = zarr_module()
        if not path.exists():
            raise UsageError(f"{path}: no such store")
        try:
            group = zarr.open_group(store=str(path), mode=mode, zarr_format=3)
        except Exception as error:  # zarr's own errors for a folder that is not a store
            raise UsageError(f"{path}: not a Zarr v3 store ({_first_line(error)})") from None
        if RESUME not in group.attrs or "recur_version" not in group.attrs:
            raise UsageError(f"{path}: not a store recur wrote (its attributes have no "
                             f"'{RESUME}')")
        return cls(path, group)

    def asked(self, steps: int) -> None:
        """Record the steps a continuation runs to (the `steps` attribute)."""
        self.group.update_attributes({"steps": steps})

    def carried(self) -> dict[str, numpy.ndarray | None]:
        """Each output's last states at the last checkpoint, oldest first."""
        state = self.group.attrs[RESUME]
        if state["slot"] is None:
            return {}
        resume = self.group[RESUME]
        return {name: resume[name][state["slot"], :count] if count else None
                for name, count in state["rows"].items()}

    def cut(self, name: str, rows: int) -> None:
        """Set an output's rows to `rows`: drop those a killed run wrote past its last
        checkpoint; size the array a cluster's tasks write, and cut it where `until`
        stopped them."""
        array = self.group[name]
        if array.shape[0] != rows:
            array.resize((rows, *array.shape[1:]))

    def arrays(self) -> dict[str, Any]:
        """The written outputs, as Zarr arrays (read on indexing), in the keeps' order."""
        return {name: self.group[name] for name in self.group.attrs["keeps"]
                if name in self.group}


def read_store(path: str | os.PathLike[str], name: str | None = None) -> dict[str, Any]:
    """The arrays of a Zarr store by name (every one, or only `name`), as NumPy arrays:
    what `--input` and `recur diff` read. A store recur wrote gives its outputs, any other
    Zarr v3 group the arrays at its root."""
    zarr = zarr_module()
    try:
        group = zarr.open_group(store=os.fspath(path), mode="r", zarr_format=3)
    except Exception as error:
        raise UsageError(f"{os.fspath(path)}: not a Zarr v3 store ({_first_line(error)})") \
            from None
    names = [name] if name is not None else sorted(group.array_keys())
    return {key: numpy.asarray(group[key][...]) for key in names if key in group}


def fresh_location(path: Path) -> Path:
    """Where a fresh store is built before it is renamed to `path`: beside it, hidden."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def publish(built: Path, path: Path) -> None:
    """Put the store built at `built` in `path`'s place (removing what was there:
    `--force`, checked by the caller)."""
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(built, path)
        remove(old)
    else:
        os.replace(built, path)


def remove(path: Path) -> None:
    """Remove a store (or what is left of one), whatever state it is in."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


class Writer:
    """Writes in a thread of its own, behind a queue of a few jobs, so that the run
    computes a block while the last one is written; memory stays bounded by the queue.
    A job's error is raised in the caller at its next `submit` or at `close`."""

    def __init__(self, depth: int = 1) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="recur-store-writer",
                                        daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as error:  # handed to the caller's thread
                    self._error = error

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        self._jobs.put(job)

    def close(self) -> None:
        """Wait for every job; raise the first error."""
        self._jobs.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def jsonable(value: Any) -> Any:
    """A param's value as JSON: numbers, nested lists; complex as [real, imag]."""
    array = numpy.asarray(value)
    if array.dtype.kind == "c":
        return jsonable(numpy.stack([array.real, array.imag], axis=-1))
    if array.dtype.kind == "f":
        return json.loads(json.dumps(array.tolist()))  # NaN, inf as JSON's extensions
    return array.tolist()


def _lane_cut(shape: tuple[int, ...], lane_chunk: int | None) -> tuple[int, ...]:
    """A state's shape with its first axis cut to `lane_chunk` where given."""
    return (lane_chunk, *shape[1:]) if lane_chunk and shape else shape


def _fill(dtype: numpy.dtype[Any]) -> Any:
    return False if dtype.kind == "b" else 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
