"""Where an output's states live: the whole trajectory, or a ring of its last states.

For `keep: all` the buffer holds the `depth` initial rows followed by every step, so
`x[t-k]` is row `t + depth - k` and no copying is needed. Otherwise a ring holds what
the taps can still read (`depth + 1` rows) or, for `keep: last N`, the last N states
if that is more: step t is row t % size, so memory is O(depth + N) whatever the step
count. `keep: every K` adds the rows it keeps, `kept`, written at the steps t with
(t + 1) % K == 0: row ((t + 1) // K - 1) % len(kept), so that a run streamed in blocks
can reuse a few rows (`recur.engine.plan`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recur.compile.frame import Frame
from recur.lang.keep import kept_steps, of, ring_size


class History:
    """An output's past states, with closures that read and write them."""

    def __init__(
        self, xp: Any, shape: tuple[int, ...], dtype: str, initial: Any, depth: int,
        keep: str, steps: int, start: int = 0, kept_rows: int | None = None,
    ) -> None:
        """`initial` holds the states of the steps just before `start`, oldest first: the
        `depth` initial states (or None, for depth 0), or what a continuation carries on
        from (`recur.engine.stream`); `steps` is the run's step count; `kept_rows` the
        rows of an `every K` keep (default: all that `steps` steps keep)."""
        mode, count = of(keep)
        self.xp = xp
        self.depth = depth
        self.shape = shape
        self.keep = keep
        self.full = mode == "all"
        assert not (self.full and start), "a whole trajectory starts at step 0"
        # a ring's size is a power of two, so that a kernel finds a row with a mask
        # (`recur.engine.c.generate`), not a division at every step
        self.size = depth + steps if self.full else ring_size(
            max(depth + 1, count if mode == "tail" else 0))
        self.rows = xp.empty((self.size, *shape), dtype=dtype)
        self.every = count if mode == "every" else 0
        self.kept = (xp.empty((steps // count if kept_rows is None else kept_rows, *shape),
                              dtype=dtype) if self.every else None)
        given = 0 if initial is None else len(initial)  # an unread initial too (depth 0)
        for back in range(1, (depth if self.full else min(given, self.size)) + 1):
            self.rows[self._slot(start - back)] = initial[given - back]

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
        size, every, kept = self.size, self.every, self.kept

        def write_ring(t: int, value: Any) -> None:
            rows[t % size] = value
            if every and (t + 1) % every == 0:
                assert kept is not None
                kept[((t + 1) // every - 1) % len(kept)] = rows[t % size]

        return write_ring

    def trajectory(self, steps: int) -> Any:
        """The kept states of steps 0..steps-1 (`keep: all`)."""
        return self.rows[self.depth:self.depth + steps]

    def window(self, first: int, stop: int, final: bool = False) -> Any:
        """The kept states of the steps from `first` to `stop` (exclusive) that the keep
        holds (`all`, `last N`, `every K`), in step order; all must still be held. A
        copy, except of a whole trajectory (a ring's rows are written again), or where
        `final` says that nothing writes them again and the rows lie in one piece."""
        if self.full:
            return self.rows[self.depth + first:self.depth + stop]
        kept = kept_steps(self.keep, stop, first)
        if self.every:
            assert self.kept is not None
            return _ring_rows(self.xp, self.kept, (kept.start + 1) // self.every - 1,
                              len(kept), final)
        return _ring_rows(self.xp, self.rows, kept.start, len(kept), final)

    def carried(self, steps: int, count: int) -> Any:
        """The last `count` states after `steps` steps, oldest first (fewer where the run
        began later): what a continuation starts from."""
        return self.rows[[self._slot(t) for t in range(max(steps - count, -self.depth), steps)]]

    def last(self, steps: int) -> Any:
        """The final state after `steps` steps (the last initial row when none ran)."""
        if steps == 0 and self.depth == 0:
            return None
        return self.rows[self._slot(steps - 1)]


def _ring_rows(xp: Any, ring: Any, first: int, count: int, final: bool = False) -> Any:
    """A copy of `count` consecutive rows of a ring from row `first` (modulo its length);
    with `final`, the rows themselves where they lie in one piece."""
    start = first % len(ring) if len(ring) else 0
    end = start + count
    if end <= len(ring):
        return ring[start:end] if final else ring[start:end].copy()
    return xp.concatenate([ring[start:], ring[:end - len(ring)]])
