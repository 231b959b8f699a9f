"""What the handwritten benchmark scripts share: their command line, inputs and output.

Each script runs as `python benchmarks/handwritten_X.py W3 [--inputs DIR]` so that
cpu.py can time it as a whole process, the way a person would run it: imports,
compilation, the run, and writing the result (to the null device, as `recur run -o
/dev/null` does).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

Inputs = Mapping[str, np.ndarray]
Workload = Callable[[Inputs], dict[str, Any]]

# The arrays each workload reads from files (the specs' `input` params and sequences).
INPUT_NAMES: dict[str, tuple[str, ...]] = {"W6": ("W", "u")}


def load_inputs(name: str, folder: Path | None) -> dict[str, np.ndarray]:
    """The input arrays of workload `name`, read from NAME.npy files in `folder`."""
    needed = INPUT_NAMES.get(name, ())
    if needed and folder is None:
        raise SystemExit(f"{name} needs --inputs DIR holding {', '.join(needed)} as .npy")
    return {key: np.load(Path(folder) / f"{key}.npy") for key in needed} if folder else {}


def write_null(arrays: Mapping[str, Any]) -> None:
    """Write every output as .npy to the null device, so that the cost of writing counts."""
    with open(os.devnull, "wb") as stream:
        for array in arrays.values():
            np.save(stream, np.asarray(array))


def script_main(workloads: Mapping[str, Workload], argv: list[str] | None = None) -> None:
    """Run one workload end to end and discard its result: the whole-process benchmark."""
    parser = argparse.ArgumentParser(description="Run one benchmark workload.")
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--inputs", type=Path, help="folder with the input .npy files (W6)")
    args = parser.parse_args(argv)
    write_null(workloads[args.workload](load_inputs(args.workload, args.inputs)))
