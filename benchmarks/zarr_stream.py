"""A logistic sweep kept whole, written to a Zarr store while it runs (`recur run -o
run.zarr`): its peak memory and write speed, against the disk's (`dd`) and against
`np.save` of a result held in memory.

    python benchmarks/zarr_stream.py                          # 1,000 lanes x 10**5 steps
    python benchmarks/zarr_stream.py --lanes 1000 --steps 1000000 --folder /data

Each figure is measured in a process of its own (`recur run`, `dd`), its peak resident
memory read from the kernel (`wait4`), the median of three runs; the store and the files
go to `--folder` (default: a temporary folder), removed afterwards. Nothing is asserted:
the test suite never runs it; the numbers go to standard output as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SPEC = """\
params:
  r: linspace(2.5, 4.0, {lanes})
outputs:
  x:
    initial: 0.5
    step: r * x[t-1] * (1 - x[t-1])
steps: {steps}
"""


REPEATS = 3  # every figure is the median of this many runs (the machine is shared)


def measure(command: Callable[[Path], list[str]], folder: Path) -> tuple[float, float, int]:
    """Seconds and peak resident MB of a process writing to a path in `folder`, the
    medians of `REPEATS` runs, and the bytes it wrote. Each run writes a path of its own,
    removed only once all have run: freeing blocks (ext4 mounted with `discard`) slows the
    writes that follow it."""
    folder.mkdir()
    times, peaks = [], []
    for k in range(REPEATS):
        target = folder / f"run{k}"
        os.sync()  # each run starts without the last one's dirty pages to write back
        started = time.perf_counter()
        process = subprocess.Popen(command(target), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        times.append(time.perf_counter() - started)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(command(target))}")
        peaks.append(usage.ru_maxrss / 1024)
    written = size_of(folder / "run0")
    shutil.rmtree(folder)
    os.sync()
    return float(np.median(times)), float(np.median(peaks)), written


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir=args.folder, prefix="recur-zarr-bench-"))
    recur = [sys.executable, "-m", "recur"]
    try:
        spec = folder / "sweep.yaml"
        spec.write_text(SPEC.format(lanes=args.lanes, steps=args.steps))
        size = args.lanes * args.steps * 8
        count = max(1, size // 2**24)
        rows = []
        for sync in ("", "conv=fdatasync"):  # the disk: dd of the store's size
            seconds, _, written = measure(lambda target, sync=sync: [
                "dd", "if=/dev/zero", f"of={target}", "bs=16M", f"count={count}",
                *([sync] if sync else [])], folder / "dd")
            rows.append((f"dd bs=16M {sync or '(page cache)'}", seconds, None,
                         written / seconds))
        seconds, peak, _ = measure(lambda target: [*recur, "run", str(spec), "--last", "-q",
                                                   "-o", f"{target}.npy"], folder / "last")
        rows.append(("recur run --last (compute only)", seconds, peak, None))
        seconds, peak, written = measure(lambda target: [*recur, "run", str(spec), "-q", "-o",
                                                         f"{target}.zarr"], folder / "zarr")
        rows.append(("recur run -o run.zarr", seconds, peak, size / seconds))

        # np.save of a result held in memory, a tenth of the size.
        tenth = max(args.steps // 10, 1)
        import recur as library

        held = library.run(str(spec), steps=tenth, engine="compiled")["x"]
        saves = []
        for k in range(REPEATS):
            os.sync()
            started = time.perf_counter()
            with open(folder / f"tenth{k}.npy", "wb") as stream:
                np.save(stream, held)
            saves.append(time.perf_counter() - started)
        saved = float(np.median(saves))
        rows.append((f"np.save of {tenth} steps held in memory", saved, None, held.nbytes / saved))

        print(f"{args.lanes} lanes x {args.steps} steps kept whole: {size / 1e6:.0f} MB\n")
        print("| what | seconds | peak RSS (MB) | MB/s |")
        print("| --- | --- | --- | --- |")
        for what, seconds, peak, rate in rows:
            shown_peak = "-" if peak is None else f"{peak:.0f}"
            shown_rate = "-" if rate is None else f"{rate / 1e6:.0f}"
            print(f"| {what} | {seconds:.2f} | {shown_peak} | {shown_rate} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
