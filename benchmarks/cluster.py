"""A lane sweep on a local Dask cluster against one process (`--scheduler local:N`).

The workload is a stochastic logistic sweep: `r` over LANES lanes, a normal draw per
lane and step, the final states kept (`keep: last`, so that the result is small and
the figures are the loop's). Timed, each the median of `--repeats`:

1. one process: `recur.run` with the compiled engine, its kernel already built;
2. `local:N` whole: the cluster started, the run, the cluster closed (what
   `recur run --scheduler local:N` costs);
3. the cluster alone: starting and closing a `LocalCluster` of N processes and a client;
4. the run on an already running cluster (its address, as `tcp://...`);
5. the CPU time of one run on that cluster (the client's and every worker's) against
   the one process's: the work the cluster adds, a figure that other programs running
   on the machine at the time leave alone, unlike the wall-clock ones.

Every cluster result is checked bit for bit against the one-process result first.
Prints a Markdown table; the test suite never runs it.

    python benchmarks/cluster.py [--lanes 100000] [--steps 2000] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable

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


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def start_and_close(workers: int) -> None:
    import distributed

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as local, \
            distributed.Client(local):
        pass


def cpu_seconds(run: Callable[[], object], client: object | None = None) -> tuple[float, float]:
    """The CPU time of `run`: this process's, and the workers' of `client`'s cluster."""
    def workers() -> float:
        if client is None:
            return 0.0
        return sum(client.run(time.process_time).values())  # type: ignore[attr-defined]

    before, workers_before = time.process_time(), workers()
    run()
    return time.process_time() - before, workers() - workers_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RECUR_CACHE_DIR", tempfile.mkdtemp(prefix="recur-cache-"))
    import distributed

    import recur

    spec = recur.load(SPEC.format(lanes=args.lanes, steps=args.steps))
    local = f"local:{args.workers}"
    alone = recur.run(spec, engine="compiled")  # the kernel, built and cached
    numpy.testing.assert_array_equal(recur.run(spec, engine="compiled", scheduler=local)["x"],
                                     alone["x"], strict=True)
    one = median_seconds(lambda: recur.run(spec, engine="compiled"), args.repeats)
    whole = median_seconds(lambda: recur.run(spec, engine="compiled", scheduler=local),
                           args.repeats)
    startup = median_seconds(lambda: start_and_close(args.workers), args.repeats)
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        address = cluster.scheduler_address
        numpy.testing.assert_array_equal(
            recur.run(spec, engine="compiled", scheduler=address)["x"], alone["x"], strict=True)
        running = median_seconds(lambda: recur.run(spec, engine="compiled", scheduler=address),
                                 args.repeats)
        with distributed.Client(address) as client:
            cluster_cpu = cpu_seconds(
                lambda: recur.run(spec, engine="compiled", scheduler=address), client)
    one_cpu = sum(cpu_seconds(lambda: recur.run(spec, engine="compiled")))

    cores = os.cpu_count()
    print(f"{args.lanes:,} lanes x {args.steps:,} steps, stochastic logistic sweep, "
          f"keep last; {cores} CPUs; median of {args.repeats}\n")
    print("| run | seconds | speed-up over one process |")
    print("| --- | ---: | ---: |")
    print(f"| one process (compiled) | {one:.2f} | 1.00 |")
    print(f"| `{local}`, start-up included | {whole:.2f} | {one / whole:.2f} |")
    print(f"| `{local}`, cluster already running | {running:.2f} | {one / running:.2f} |")
    print(f"| starting and closing the cluster alone | {startup:.2f} | |")
    client_cpu, workers_cpu = cluster_cpu
    print(f"\nCPU seconds of one run: one process {one_cpu:.2f}; on the running cluster "
          f"{client_cpu:.2f} in the client (its scheduler too) and {workers_cpu:.2f} in the "
          f"workers, {sum(cluster_cpu) / one_cpu:.3f}x the work")


if __name__ == "__main__":  # the workers are processes started afresh (spawn)
    main()
