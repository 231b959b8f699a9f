"""A lane sweep on a local Dask cluster against one process (`--scheduler local:N`).

The workload is a stochastic logistic sweep: `r` over LANES lanes, a normal draw per
lane and step, the final states kept (`keep: last`, so that the result is small and
the figures are the loop's). The kernel is built first, by a run of a few lanes (its
source does not depend on the lanes or the steps). Timed, each the median of
`--repeats`, every result checked bit for bit against the one process's:

1. one process: `recur.run` with the compiled engine;
2. `local:N` whole: the cluster started, the run, the cluster closed (what
   `recur run --scheduler local:N` costs);
3. the cluster alone: starting and closing a `LocalCluster` of N processes and a client,
   as recur starts them;
4. the run on an already running cluster (its address, as `tcp://...`), whose workers
   imported recur and loaded the kernel before.

The CPU time of the runs of 1 and 4 (on 4, the client's, with its scheduler, and every
worker's) says what work the cluster adds: a figure that other programs running on the
machine leave alone, unlike the wall-clock ones; the load average before and after says
how busy the machine was. Prints a Markdown table; the test suite never runs it.

    python benchmarks/cluster.py [--lanes 100000] [--steps 2000] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy

SPEC = """
params:
  r: linspace(2.5, 4.0, {lanes})
outputs:
  x:
    initial: 0.5
    step: clip(r * x[t-1] * (1 - x[t-1]) + 0.01 * normal(), 0, 1)
    keep: last
steps: {steps}
"""


def timed(run: Callable[[], Any], repeats: int,
          client: Any = None) -> tuple[float, float, Any]:
    """The median wall-clock seconds of `repeats` runs, the CPU seconds of one (this
    process's, and the workers' of `client`'s cluster), and its result."""
    def workers() -> float:
        return 0.0 if client is None else sum(client.run(time.process_time).values())

    times, cpu, result = [], 0.0, None
    for _ in range(repeats):
        cpu_before = time.process_time() + workers()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        cpu = time.process_time() + workers() - cpu_before
    return statistics.median(times), cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RECUR_CACHE_DIR", tempfile.mkdtemp(prefix="recur-cache-"))
    import recur
    from recur.cluster import address

    load_before = os.getloadavg()
    spec = recur.load(SPEC.format(lanes=args.lanes, steps=args.steps))
    tiny = SPEC.format(lanes=10, steps=2)
    recur.run(recur.load(tiny), engine="compiled")  # the kernel, built
    local = f"local:{args.workers}"

    def run(scheduler: str | None = None) -> Any:
        result = recur.run(spec, engine="compiled", scheduler=scheduler)["x"]
        if scheduler is not None:
            numpy.testing.assert_array_equal(result, alone, strict=True)
        return result

    def start_and_close() -> None:
        with address.connected(address.parse(local)):
            pass

    one, one_cpu, alone = timed(run, args.repeats)
    whole = timed(lambda: run(local), args.repeats)[0]
    startup = timed(start_and_close, args.repeats)[0]
    with address.connected(address.parse(local)) as client:
        # each worker imports recur and loads the kernel: what a run on a cluster that
        # ran recur before does not pay
        client.run(lambda: recur.run(recur.load(tiny), engine="compiled"))
        running, cluster_cpu, _ = timed(lambda: run(client.scheduler.address), args.repeats,
                                        client)
    load_after = os.getloadavg()

    print(f"{args.lanes:,} lanes x {args.steps:,} steps, stochastic logistic sweep, "
          f"keep last; {os.cpu_count()} CPUs; median of {args.repeats}; load average "
          f"(1, 5, 15 min) before {_load(load_before)}, after {_load(load_after)}\n")
    print("| run | seconds | speed-up over one process |")
    print("| --- | ---: | ---: |")
    print(f"| one process (compiled) | {one:.2f} | 1.00 |")
    print(f"| `{local}`, start-up included | {whole:.2f} | {one / whole:.2f} |")
    print(f"| `{local}`, cluster already running | {running:.2f} | {one / running:.2f} |")
    print(f"| starting and closing the cluster alone | {startup:.2f} | |")
    print(f"\nCPU seconds of one run: one process {one_cpu:.2f}; on the running cluster "
          f"{cluster_cpu:.2f} (the client, its scheduler and the workers), "
          f"{cluster_cpu / one_cpu:.3f}x the work")


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in averages)


if __name__ == "__main__":  # local workers are processes of their own
    main()
