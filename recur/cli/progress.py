"""A progress bar on stderr for long runs: shown only on a terminal, after a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

SHOW_AFTER = 1.0  # seconds: short runs never flicker a bar
REDRAW_EVERY = 0.1
BAR_WIDTH = 24


class ProgressBar:
    """Called as `bar(done, total)`; draws `45% |#####   | 450,000/1,000,000 steps ...`
    (or lanes, for a run on a cluster: `unit`)."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic,
                 unit: str = "steps") -> None:
        self.stream = stream
        self.unit = unit
        self.clock = clock
        self.start = self.clock()
        self.drawn_at: float | None = None
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        elapsed = now - self.start
        if elapsed < SHOW_AFTER or done >= total:
            return
        if self.drawn_at is not None and now - self.drawn_at < REDRAW_EVERY:
            return
        self.drawn_at = now
        line = render_line(done, total, elapsed, self.unit)
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        """Erase the bar, so that what follows on stderr starts on a clean line."""
        if self.drawn_at is not None:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def render_line(done: int, total: int, elapsed: float, unit: str = "steps") -> str:
    fraction = done / total if total else 1.0
    filled = int(fraction * BAR_WIDTH)
    rate = done / elapsed if elapsed > 0 else 0.0
    left = (total - done) / rate if rate > 0 else 0.0
    return (f"{fraction:4.0%} |{'#' * filled}{' ' * (BAR_WIDTH - filled)}| "
            f"{done:,}/{total:,} {unit}  {_rate(rate)} {unit}/s  {_clock(left)} left")


def _rate(rate: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if rate >= size:
            return f"{rate / size:.1f}{unit}"
    return f"{rate:.0f}"


def _clock(seconds: float) -> str:
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
