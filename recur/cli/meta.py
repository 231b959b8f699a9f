"""`--meta PATH`: a JSON sidecar that says how a result was made, to reproduce it later."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any, BinaryIO

import numpy

from recur.cli.options import InputSource, Ran
from recur.io import atomic_write
from recur.lang.host import to_host

MAX_LISTED_VALUES = 1000  # larger arrays are described, not listed


def describe_run(ran: Ran) -> dict[str, Any]:
    """The sidecar's content: versions, the spec's and the inputs' hashes, params as used,
    how it ended."""
    result = ran.result
    stopped = ({"by": "until", "at_t": result.steps_run - 1} if result.stopped_by == "until"
               else {"by": "steps"})
    return {
        "recur_version": metadata.version("recur"),
        "spec": ran.spec.path,
        "spec_sha256": hashlib.sha256(ran.spec.source.encode("utf-8")).hexdigest(),
        "options": ran.request.flags.described(),
        "inputs": {name: _input(source, ran.request.options.inputs[name])
                   for name, source in ran.request.sources.items()},
        "params": {name: _jsonable(value) for name, value in result.params.items()},
        "seed": result.seed,
        "steps": result.steps,
        "steps_run": result.steps_run,
        "stopped": stopped,
        "engine": result.engine,
        "device": result.device,
        "elapsed_seconds": round(ran.elapsed, 6),
        "outputs": {
            name: {"dtype": str(result[name].dtype), "shape": list(result[name].shape),
                   "keep": result.keeps[name]}
            for name in ran.names
        },
    }


def _input(source: InputSource, array: numpy.ndarray) -> dict[str, Any]:
    return {"path": source.path, "sha256": source.sha256, "dtype": str(array.dtype),
            "shape": list(array.shape)}


def write_meta(path: str, ran: Ran, *, force: bool = False) -> None:
    text = json.dumps(describe_run(ran), indent=2) + "\n"
    def write(stream: BinaryIO) -> None:
        stream.write(text.encode("utf-8"))

    atomic_write(path, write, force=force)


def _jsonable(value: Any) -> Any:
    if isinstance(value, complex):
        return {"real": value.real, "imag": value.imag}
    if isinstance(value, float) and not numpy.isfinite(value):
        return repr(value)  # JSON has no inf or nan
    if not hasattr(value, "shape"):
        return value
    array = to_host(value)
    described: dict[str, Any] = {"dtype": str(array.dtype), "shape": list(array.shape)}
    if array.size <= MAX_LISTED_VALUES and array.dtype.kind in "biuf":
        described["values"] = [_jsonable(v) for v in array.ravel().tolist()]
    return described
