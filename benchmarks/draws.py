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

Prints medians of CPU seconds (this process's: on a machine shared with other work, not
the time others take) as a Markdown table; the test suite never runs it.

    python benchmarks/draws.py [--repeats 5] [--steps 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator

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


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return statistics.median(times)


def compiled_seconds(spec: object, repeats: int,
                     inputs: dict[str, numpy.ndarray] | None = None) -> float:
    """The median run of `spec` by the compiled engine, its kernel built and cached
    first (by a run of one step)."""
    import recur

    first = None if inputs is None else {name: rows[:1] for name, rows in inputs.items()}
    recur.run(spec, engine="compiled", steps=1, inputs=first)
    return median_seconds(lambda: recur.run(spec, engine="compiled", inputs=inputs), repeats)


def numpy_philox(count: int) -> None:
    generator = numpy.random.Generator(numpy.random.Philox(0))
    out = numpy.empty(1_000_000)
    for start in range(0, count, out.size):
        generator.random(out=out[:min(out.size, count - start)])


@contextlib.contextmanager
def portable(on: bool) -> Iterator[None]:
    """Kernels made inside draw on the portable path alone, where `on`."""
    before = os.environ.get("RECUR_PORTABLE_DRAWS")
    os.environ["RECUR_PORTABLE_DRAWS"] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["RECUR_PORTABLE_DRAWS"]
        else:
            os.environ["RECUR_PORTABLE_DRAWS"] = before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("RECUR_CACHE_DIR", tempfile.mkdtemp(prefix="recur-cache-"))
    import recur

    count = LANES * args.steps
    rows = []
    for path, on in (("", False), (", portable path", True)):
        with portable(on):
            for kind in ("uniform", "normal"):
                spec = recur.load(DRAWS.format(lanes=LANES, steps=args.steps, kind=kind))
                seconds = compiled_seconds(spec, args.repeats)
                rows.append(f"| recur C kernel{path}, {count:,} {kind}() | {seconds:.3f} | "
                            f"{count / seconds / 1e6:.0f} million a second |")
    baseline = median_seconds(lambda: numpy_philox(count), args.repeats)
    rows.append(f"| numpy Generator(Philox).random, {count:,} | {baseline:.3f} | "
                f"{count / baseline / 1e6:.0f} million a second |")

    read = recur.load(W5_NOISE.format(sequences="sequences:\n  noise: input\n",
                                      noise="noise"))
    noise = numpy.random.default_rng(0).random((2000, 10_000))
    with_array = compiled_seconds(read, args.repeats, inputs={"noise": noise})
    for path, on in (("", False), (", portable path", True)):
        with portable(on):
            drawn = recur.load(W5_NOISE.format(sequences="", noise="uniform()"))
            with_draws = compiled_seconds(drawn, args.repeats)
        rows.append(f"| W5 + uniform() noise, compiled{path} | {with_draws:.3f} | "
                    f"{with_draws / with_array:.2f}x the array's |")
    rows.append(f"| W5 + noise read from an array, compiled | {with_array:.3f} | |")

    print(f"| measurement ({args.repeats} runs, medians) | CPU seconds | figure |")
    print("| --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
