"""`--meta PATH`: a JSON sidecar that says how a result was made, to reproduce it later."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any, BinaryIO

import numpy

from recur.api import Result
from recur.cli.options import InputSource, Ran, Request
from recur.gradients import Gradients
from recur.io import atomic_write
from recur.lang.host import to_host

MAX_LISTED_VALUES = 1000  # larger arrays are described, not listed


def describe_run(ran: Ran) -> dict[str, Any]:
    """The sidecar's content: versions, the spec's and the inputs' hashes, params as used,
    how it ended."""
    result = ran.result
    return {
        **_made(ran.request, result),
        "params": {name: _jsonable(value) for name, value in result.params.items()},
        "steps": result.steps,
        **_ended(result),
        "elapsed_seconds": round(ran.elapsed, 6),
        "outputs": {
            name: {"dtype": str(result[name].dtype), "shape": list(result[name].shape),
                   "keep": result.keeps[name]}
            for name in ran.names
        },
    }


def describe_gradient(request: Request, result: Gradients, elapsed: float
                      ) -> dict[str, Any]:
    """A gradient's sidecar: what a run's says, and the objective and how it was taken."""
    return {
        **_made(request, result),
        **_ended(result),
        "objective": {"of": result.of, "value": _jsonable(result.objective),
                      "truncate": result.truncate},
        "forward_states": {"checkpointed": result.plan.checkpointed,
                           "snapshots": result.plan.snapshots,
                           "segment_steps": result.plan.segment,
                           "memory_bytes": result.plan.memory,
                           "forward_runs": result.plan.forward_runs},
        "elapsed_seconds": round(elapsed, 6),
        "gradients": {name: {"dtype": str(array.dtype), "shape": list(array.shape)}
                      for name, array in result.items()},
    }


def _made(request: Request, result: Result | Gradients) -> dict[str, Any]:
    """What made a result: versions, the spec's and the inputs' hashes, the options."""
    return {
        "recur_version": metadata.version("recur"),
        "spec": request.spec.path,
        "spec_sha256": hashlib.sha256(request.spec.source.encode("utf-8")).hexdigest(),
        "options": request.flags.described(),
        "inputs": {name: _input(source, request.options.inputs[name])
                   for name, source in request.sources.items()},
        "seed": result.seed,
    }


def _ended(result: Result | Gradients) -> dict[str, Any]:
    stopped = ({"by": "until", "at_t": result.steps_run - 1} if result.stopped_by == "until"
               else {"by": "steps"})
    return {"steps_run": result.steps_run, "stopped": stopped, "engine": result.engine,
            "device": result.device}


def _input(source: InputSource, array: numpy.ndarray) -> dict[str, Any]:
    return {"path": source.path, "sha256": source.sha256, "dtype": str(array.dtype),
            "shape": list(array.shape)}


def write_meta(path: str, ran: Ran, *, force: bool = False) -> None:
    _write_json(path, describe_run(ran), force)


def write_gradient_meta(path: str, request: Request, result: Gradients, elapsed: float, *,
                        force: bool = False) -> None:
    _write_json(path, describe_gradient(request, result, elapsed), force)


def _write_json(path: str, content: dict[str, Any], force: bool) -> None:
    text = json.dumps(content, indent=2) + "\n"

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
