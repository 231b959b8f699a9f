"""Fixed costs: a whole `recur run` process, and an in-process `recur.run` of few steps.

What a change to the front end or the engines' set-up costs every run, whatever its
length. Prints medians (seconds) as a Markdown table; README.md says what they mean.

    python benchmarks/overhead.py [--processes 15] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIBONACCI = HERE.parent / "specs" / "fibonacci.yaml"
W1 = HERE / "workloads" / "w1_accumulate.yaml"
SHORT_RUNS = ((10, "interp"), (10, "compiled"), (10, "auto"))


def process_seconds(processes: int) -> float:
    """Median wall time of `recur run specs/fibonacci.yaml`, imports to exit."""
    command = [sys.executable, "-m", "recur", "run", str(FIBONACCI), "-o", "/dev/null",
               "-f", "npy"]
    subprocess.run(command, check=True)  # warm the file cache and the kernel cache
    times = []
    for _ in range(processes):
        start = time.perf_counter()
        subprocess.run(command, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def call_seconds(steps: int, engine: str, calls: int) -> float:
    """Median time of one in-process `recur.run` of W1 cut to `steps` steps."""
    import recur

    spec = recur.load(str(W1))
    recur.run(spec, steps=steps, engine=engine)  # compile and cache the kernel once
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        recur.run(spec, steps=steps, engine=engine)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    print("| measure | median ms |")
    print("|---|---:|")
    print(f"| `recur run specs/fibonacci.yaml` process | "
          f"{process_seconds(args.processes) * 1e3:.1f} |")
    for steps, engine in SHORT_RUNS:
        print(f"| `recur.run(W1, steps={steps}, engine={engine!r})` | "
              f"{call_seconds(steps, engine, args.calls) * 1e3:.3f} |")


if __name__ == "__main__":
    main()
