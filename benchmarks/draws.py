"""Random numbers: how fast the C kernel draws, and what noise costs a lane sweep.

1. Uniforms per second on one core: a spec that adds `uniform()` to each of 4,096 lanes
   for every step (kept `last`, so that memory does not count), run by the compiled
   engine with its kernel already built, against
   `numpy.random.Generator(numpy.random.Philox()).random` filling the same number of
   values, a million at a time. The same spec with `normal()`, and both on the
   kernel's portable path (`RECUR_PORTABLE_DRAWS=1`: no AVX-512, as on CPUs without it).
2. W5 (the logistic sweep, 10,000 lanes, 2,000 steps) with a noise term drawn by
   `uniform()` against the same spec reading the noise from an array given with
   `inputs=`: drawing must stay within 1.5x of reading. Drawn on either path.

Prints the fastest of a few runs, taken in turns, as a Markdown table; the test suite
never runs it.

    python benchmarks/draws.py [--repeats 7] [--steps 20000]
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable

import numpy

LANES = 4096
DRAWS = """
params:
  lanes: {lanes}
outputs:
  x:
    initial: zeros(lanes)
    step: x[t-1] + {kind}()
    keep: last
steps: {steps}
"""
W5_NOISE = """
params:
  r: linspace(2.5, 4.0, 10000)
{sequences}steps: 2000
outputs:
  x:
    initial: 0.3
    step: r * x[t-1] * (1 - x[t-1]) * (1 + 1e-3 * ({noise} - 0.5))
"""


def portable(on: bool, run: Callable[[], object]) -> Callable[[], object]:
    """`run`, its kernel made (the source is made at every run) to draw on the portable
    path alone where `on`."""
    def wrapped() -> object:
        before = os.environ.get("RECUR_PORTABLE_DRAWS")
        os.environ["RECUR_PORTABLE_DRAWS"] = "1" if on else "0"
        try:
            return run()
        finally:
            if before is None:
                del os.environ["RECUR_PORTABLE_DRAWS"]
            else:
                os.environ["RECUR_PORTABLE_DRAWS"] = before
    return wrapped


def fastest(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of `repeats` runs of each, taken in turns: on a machine shared with
    other work, a busy spell then slows every measurement alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(seconds) for name, seconds in times.items()}


def numpy_philox(count: int) -> None:
    generator = numpy.random.Generator(numpy.random.Philox(0))
    out = numpy.empty(1_000_000)
    for start in range(0, count, out.size):
        generator.random(out=out[:min(out.size, count - start)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("RECUR_CACHE_DIR", tempfile.mkdtemp(prefix="recur-cache-"))
    import recur

    count = LANES * args.steps
    noise = numpy.random.default_rng(0).random((2000, 10_000))
    read = recur.load(W5_NOISE.format(sequences="sequences:\n  noise: input\n",
                                      noise="noise"))
    drawn = recur.load(W5_NOISE.format(sequences="", noise="uniform()"))
    runs: dict[str, Callable[[], object]] = {
        "numpy": lambda: numpy_philox(count),
        "array": lambda: recur.run(read, engine="compiled", inputs={"noise": noise})}
    for path, on in (("", False), (", portable path", True)):
        for kind in ("uniform", "normal"):
            spec = recur.load(DRAWS.format(lanes=LANES, steps=args.steps, kind=kind))
            runs[f"{kind}{path}"] = portable(on, functools.partial(
                recur.run, spec, engine="compiled"))
        runs[f"W5{path}"] = portable(on, functools.partial(recur.run, drawn,
                                                           engine="compiled"))
    for run in runs.values():  # kernels built and cached, memory touched
        run()
    seconds = fastest(runs, args.repeats)

    print(f"| measurement (fastest of {args.repeats}) | seconds | figure |")
    print("| --- | --- | --- |")
    for path in ("", ", portable path"):
        for kind in ("uniform", "normal"):
            took = seconds[f"{kind}{path}"]
            print(f"| recur C kernel{path}, {count:,} {kind}() | {took:.3f} | "
                  f"{count / took / 1e6:.0f} million a second |")
    print(f"| numpy Generator(Philox).random, {count:,} | {seconds['numpy']:.3f} | "
          f"{count / seconds['numpy'] / 1e6:.0f} million a second |")
    for path in ("", ", portable path"):
        took = seconds[f"W5{path}"]
        print(f"| W5 + uniform() noise, compiled{path} | {took:.3f} | "
              f"{took / seconds['array']:.2f}x the array's |")
    print(f"| W5 + noise read from an array, compiled | {seconds['array']:.3f} | |")


if __name__ == "__main__":
    main()
