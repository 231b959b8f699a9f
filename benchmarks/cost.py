"""Engine times against the estimates of `--engine auto`'s cost model, on the CPU.

For each case of `CASES` (the workloads W1-W11, and wider and narrower variants of the
logistic sweep) and each engine (`interp`, `compiled`), it times
an engine's `run`, the time loop alone (what the model estimates), in CPU seconds
(user and system: on a machine shared with other work, the wall clock counts that work
too), each time in a new process, as `recur run` runs it: a process's first run of
wide states pays for fresh memory (page faults) that later runs in the same process do
not. It keeps the fastest of --repeats runs, the figure other work disturbs least,
after a first run that compiles the kernel into the cache. It prints a Markdown table,
the estimate beside each measurement, and with --write rewrites the table of recorded
figures that tests/engine/test_cost.py checks the model against (`results/cost-model.csv`).

    python benchmarks/cost.py [--repeats 5] [--only W1,W8] [--write]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cpu import cpu_model, progress  # benchmarks/cpu.py, beside this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TABLE = HERE / "results" / "cost-model.csv"
ENGINES = ("interp", "compiled")
COLUMNS = ("case", "spec", "steps", "set", "inputs", "last", "engine", "measured_s")

# (case, spec relative to the repository, --steps, --set NAME=EXPR, input shapes, --last).
# The widest sweep keeps only its last state: its time would be the OS's first touch of
# 800 MB of output, which costs both engines alike and varies by machine tenfold.
CASES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("W1", "benchmarks/workloads/w1_accumulate.yaml", "", "", "", ""),
    ("W2", "benchmarks/workloads/w2_two_taps.yaml", "", "", "", ""),
    ("W3", "benchmarks/workloads/w3_pi.yaml", "", "", "", ""),
    ("W4", "benchmarks/workloads/w4_taylor.yaml", "", "", "", ""),
    ("W5", "benchmarks/workloads/w5_logistic_sweep.yaml", "", "", "", ""),
    ("W5 100 lanes", "benchmarks/workloads/w5_logistic_sweep.yaml", "20000",
     "r=linspace(2.5, 4.0, 100)", "", ""),
    ("W5 10^6 lanes", "benchmarks/workloads/w5_logistic_sweep.yaml", "100",
     "r=linspace(2.5, 4.0, 1000000)", "", "yes"),
    ("W6", "benchmarks/workloads/w6_rnn.yaml", "", "", "W:64x64 u:20000x64", ""),
    ("W7", "benchmarks/workloads/w7_sin_long.yaml", "", "", "", ""),
    ("W8", "benchmarks/workloads/w8_julia_counter.yaml", "", "", "", ""),
    ("W9", "benchmarks/workloads/w9_stochastic_sweep.yaml", "", "", "", ""),
    ("W10", "benchmarks/workloads/w10_sir.yaml", "", "", "", ""),
    ("W11", "benchmarks/workloads/w11_henon_sweep.yaml", "", "", "", ""),
)


def input_arrays(shapes: str) -> dict[str, np.ndarray]:
    """`W:64x64 u:20000x64` -> seeded float64 arrays of those shapes (W6's make_inputs
    scale: the model reads shapes only, the run must stay finite)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for item in shapes.split():
        name, _, shape = item.partition(":")
        dims = tuple(int(d) for d in shape.split("x"))
        arrays[name] = rng.standard_normal(dims) * (0.5 / np.sqrt(dims[-1]))
    return arrays


def prepared(case: Sequence[str]) -> tuple[Any, Any]:
    """The spec and compiled plan of a case, as `recur run` with its options makes them."""
    from recur import api

    _, path, steps, sets, shapes, last = case
    spec = api.load(str(ROOT / path))
    params = dict(item.split("=", 1) for item in sets.split(";") if item)
    compiled = api.prepare(spec, steps=int(steps) if steps else None, params=params,
                           inputs=input_arrays(shapes), last=last == "yes")
    return spec, compiled


def time_once(case: Sequence[str], engine: str) -> float:
    """CPU seconds (user and system) of the loop of one run, in this process."""
    from recur.engine import registry
    from recur.engine.plan import allocate

    _, compiled = prepared(case)
    program = compiled.program
    chosen = registry.choose(program, engine).engine
    buffers = allocate(program, compiled.backend)
    start = time.process_time()
    chosen.run(program, buffers)
    return time.process_time() - start


def measure(case: Sequence[str], engine: str, repeats: int) -> float:
    """The fastest of `repeats` runs, each in a new process, after one that compiles."""
    command = [sys.executable, __file__, "--child", case[0], engine]
    samples = [float(subprocess.run(command, check=True, capture_output=True, text=True,
                                    timeout=600).stdout) for _ in range(repeats + 1)]
    return min(samples[1:])


def header(repeats: int) -> list[str]:
    return [
        "Engine time of `an engine's `run`` (the time loop alone), in CPU seconds",
        "(user and system; on an idle machine the wall clock's),",
        "measured by benchmarks/cost.py; tests/engine/test_cost.py checks the cost model",
        "of --engine auto against it (within 2x). Each figure is the fastest of",
        f"{repeats} runs, each in a new process, after one that compiles the kernel: the",
        "machine was shared with other work, and the minimum is the figure it disturbs",
        "least.",
        f"machine: {cpu_model()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, NumPy {np.__version__}; {time.strftime('%Y-%m-%d')}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="comma-separated cases, e.g. W1,W8")
    parser.add_argument("--write", action="store_true", help=f"rewrite {TABLE.name}")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case_name, engine = args.child
        print(time_once(next(case for case in CASES if case[0] == case_name), engine))
        return
    only = {name.strip() for name in args.only.split(",")} if args.only else None
    with tempfile.TemporaryDirectory(prefix="recur-cost-") as scratch:
        os.environ["RECUR_CACHE_DIR"] = scratch  # neither read nor fill the user's cache
        from recur.engine import registry

        rows = []
        for case in CASES:
            if only is not None and case[0] not in only:
                continue
            _, compiled = prepared(case)
            estimates = registry.estimates(compiled.program)
            for engine in ENGINES:
                seconds = measure(case, engine, args.repeats)
                progress(f"{case[0]} {engine}: {seconds:.4g} s")
                rows.append((*case, engine, f"{seconds:.4g}",
                             f"{estimates[engine].seconds:.3g}"))
    print("| case | engine | measured s | estimate s | estimate / measured |")
    print("|---|---|--:|--:|--:|")
    for row in rows:
        print(f"| {row[0]} | {row[6]} | {row[7]} | {row[8]} | "
              f"{float(row[8]) / float(row[7]):.2f} |")
    if args.write:
        text = io.StringIO()
        text.write("".join(f"# {line}\n" for line in header(args.repeats)))
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(row[:8] for row in rows)
        TABLE.write_text(text.getvalue())


if __name__ == "__main__":
    main()
