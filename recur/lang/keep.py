"""What `keep:` says of an output, and the rows that leaves after a run.

A keep is written as the spec writes it, and travels as that string (`"all"`, `"last"`,
`"none"`, `"last 10"`, `"every 100"`) through the program and into `explain` and
`--meta`; `parse` reads it where its parts matter.

- `all`: every step, shape (steps, *state);
- `last`: the final state alone, shape (*state);
- `none`: computed for other outputs, not written;
- `last N` (mode "tail"): the final N steps, shape (min(N, steps), *state), from a ring;
- `every K`: the steps t with (t + 1) % K == 0, shape (steps // K, *state).
"""

from __future__ import annotations

import re
from typing import NamedTuple

_COUNTED = re.compile(r"(last|every)\s+([0-9]+)")
WORDS = ("all", "last", "none", "last N", "every K")  # what a spec may write


class Keep(NamedTuple):
    mode: str  # "all", "last", "none", "tail" (last N) or "every"
    n: int = 0  # N or K


def parse(text: str) -> Keep | None:
    """The keep `text` says, or None where it is none (a count of 0 included)."""
    text = text.strip()
    if text in ("all", "last", "none"):
        return Keep(text)
    counted = _COUNTED.fullmatch(text)
    if counted is None or int(counted[2]) < 1:
        return None
    return Keep("tail" if counted[1] == "last" else "every", int(counted[2]))


def of(text: str) -> Keep:
    """The keep of a checked spec or program (`parse` accepted it)."""
    keep = parse(text)
    assert keep is not None, f"unchecked keep {text!r}"
    return keep


def per_step(text: str) -> bool:
    """Whether the kept array's first axis is the step axis."""
    return of(text).mode in ("all", "tail", "every")


def rows(text: str, steps: int) -> int:
    """The rows a per-step keep holds after `steps` steps."""
    keep = of(text)
    if keep.mode == "tail":
        return min(keep.n, steps)
    if keep.mode == "every":
        return steps // keep.n
    return steps


def kept_steps(text: str, steps: int, first: int = 0) -> range:
    """The steps t >= `first` whose states a per-step keep holds after `steps` steps."""
    keep = of(text)
    if keep.mode == "every":
        return range(first + (keep.n - 1 - first) % keep.n, steps, keep.n)
    return range(max(first, steps - rows(text, steps)), steps)


def ring_size(rows: int) -> int:
    """The rows of a ring that holds at least `rows`: the next power of two, so that a
    kernel finds a row with a mask rather than a division at every step."""
    return 1 << max(rows - 1, 0).bit_length()


def history_rows(text: str, depth: int, steps: int) -> int:
    """The states a run holds in memory for an output read `depth` steps back: the
    initial rows and every step (`all`), or a ring of what the taps and the keep still
    need, plus the `every K` rows kept."""
    keep = of(text)
    if keep.mode == "all":
        return depth + steps
    ring = ring_size(max(depth + 1, keep.n if keep.mode == "tail" else 0))
    return ring + (steps // keep.n if keep.mode == "every" else 0)
