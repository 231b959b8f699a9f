"""A run read back from its Zarr store, as a figure needs it (`recur plot run.zarr`):
without loading all of it. An output of more rows than `MAX_ROWS` is read every K-th
row, those of steps t with (t + 1) % K == 0, as `keep: every K` would have kept them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recur import api
from recur.diagnostics import UsageError
from recur.io.zarr_store import RunStore
from recur.lang.keep import of

MAX_ROWS = 4096  # rows of an output a figure draws at most (more do not show)


@dataclass(frozen=True, slots=True)
class StoredRun:
    """What `recur.report.plot.make_figure` draws (its `Shown`)."""

    spec: api.Spec
    result: api.Result
    names: tuple[str, ...]


def read_run(path: str, names: tuple[str, ...] = ()) -> StoredRun:
    """The spec and the outputs (`names`, else all) of the store at `path`."""
    store = RunStore.open(Path(path))
    attrs = store.attrs
    spec = api.load(attrs["spec"], path=f"{path} (its 'spec' attribute)")
    stored = store.arrays()
    chosen = names or tuple(stored)
    for name in chosen:
        if name not in stored:
            raise UsageError(f"--output {name}: {path} holds no output '{name}'",
                                 notes=(f"it holds: {', '.join(stored)}",))
    arrays, keeps = {}, {}
    for name in chosen:
        array, keep = stored[name], attrs["keeps"][name]
        mode = of(keep)
        if mode.mode in ("all", "every") and array.shape[0] > MAX_ROWS:
            every = math.ceil(array.shape[0] / MAX_ROWS)
            arrays[name] = np.asarray(array[every - 1::every])
            keep = f"every {every * (mode.n if mode.mode == 'every' else 1)}"
        else:
            arrays[name] = np.asarray(array[...])
        keeps[name] = keep
    params = {name: np.asarray(value) for name, value in attrs["params"].items()}
    result = api.Result(arrays, keeps, int(attrs["steps_run"]), attrs["stopped_by"], params,
                        int(attrs["steps"]), "cpu", "stored", int(attrs["seed"]))
    return StoredRun(spec, result, chosen)
