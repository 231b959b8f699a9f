"""Where an output's states live: the whole trajectory, or a ring of its last taps.

For `keep: all` the buffer holds the `depth` initial rows followed by every step, so
`x[t-k]` is row `t + depth - k` and no copying is needed. Otherwise a ring of
`depth + 1` rows holds exactly what the taps can still read, so memory is O(depth)
whatever the step count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recur.compile.frame import Frame


class History:
    """An output's past states, with closures that read and write them."""

    def __init__(
        self, xp: Any, shape: tuple[int, ...], dtype: str, initial: Any, depth: int,
        rows: int | None,
    ) -> None:
        """`initial` is (depth, *shape) or None; `rows` is the step count to keep, or None."""
        self.depth = depth
        self.shape = shape
        self.full = rows is not None
        self.size = depth + rows if rows is not None else depth + 1
        self.rows = xp.empty((self.size, *shape), dtype=dtype)
        if depth:
            for back in range(1, depth + 1):
                self.rows[self._slot(-back)] = initial[depth - back]

    def _slot(self, step: int) -> int:
        return step + self.depth if self.full else step % self.size

    def reader(self, lag: int) -> Callable[[Frame], Any]:
        """A closure giving `x[t - lag]` (lag 0: this step's value)."""
        rows = self.rows
        if self.full:
            base = self.depth - lag
            return lambda frame: rows[frame.t + base]
        size = self.size
        return lambda frame: rows[(frame.t - lag) % size]

    def writer(self) -> Callable[[int, Any], None]:
        rows = self.rows
        if self.full:
            depth = self.depth

            def write_full(t: int, value: Any) -> None:
                rows[t + depth] = value

            return write_full
        size = self.size

        def write_ring(t: int, value: Any) -> None:
            rows[t % size] = value

        return write_ring

    def trajectory(self, steps: int) -> Any:
        """The kept states of steps 0..steps-1."""
        return self.rows[self.depth:self.depth + steps]

    def last(self, steps: int) -> Any:
        """The final state after `steps` steps (the last initial row when none ran)."""
        if steps == 0 and self.depth == 0:
            return None
        return self.rows[self._slot(steps - 1)]
