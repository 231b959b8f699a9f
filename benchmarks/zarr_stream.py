"""A logistic sweep kept whole, written to a Zarr store while it runs (`recur run -o
run.zarr`): its peak memory and write speed, against the disk's (`dd`) and against
`np.save` of a result held in memory.

    python benchmarks/zarr_stream.py                          # 1,000 lanes x 10**5 steps
    python benchmarks/zarr_stream.py --lanes 1000 --steps 1000000 --folder /data

Each figure is measured in a process of its own (`recur run`, `dd`), its peak resident
memory read from the kernel (`wait4`); the store and the files go to `--folder`
(default: a temporary folder), removed afterwards. Nothing is asserted: the test suite
never runs it; the numbers go to standard output as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
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


def measure(command: list[str]) -> tuple[float, float]:
    """Seconds and peak resident MB of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024


def folder_size(path: Path) -> int:
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
        rows = []

        # The computation alone: the final states only.
        seconds, peak = measure([*recur, "run", str(spec), "--last", "-q", "-o",
                                 str(folder / "last.npy")])
        rows.append(("recur run --last (compute only)", seconds, peak, None))

        store = folder / "run.zarr"
        seconds, peak = measure([*recur, "run", str(spec), "-q", "-o", str(store)])
        written = folder_size(store)
        rows.append(("recur run -o run.zarr", seconds, peak, written / seconds))
        shutil.rmtree(store)

        # np.save of a result held in memory, a tenth of the size.
        tenth = max(args.steps // 10, 1)
        import recur as library

        held = library.run(str(spec), steps=tenth, engine="compiled")["x"]
        started = time.perf_counter()
        with open(folder / "tenth.npy", "wb") as stream:
            np.save(stream, held)
        saved = time.perf_counter() - started
        rows.append((f"np.save of {tenth} steps held in memory", saved, None, held.nbytes / saved))
        os.unlink(folder / "tenth.npy")
        del held

        # The disk: dd of the store's size, with and without waiting for the device.
        count = max(1, size // 2**24)
        for sync in ("", "conv=fdatasync"):
            command = ["dd", "if=/dev/zero", f"of={folder / 'dd.bin'}", "bs=16M",
                       f"count={count}", *([sync] if sync else [])]
            started = time.perf_counter()
            subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
            rows.append((f"dd bs=16M {sync or '(page cache)'}", seconds, None,
                         count * 2**24 / seconds))
            os.unlink(folder / "dd.bin")

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
