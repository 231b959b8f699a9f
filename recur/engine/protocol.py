"""What an engine is: a small class that says whether it can run a `Program`, what a
run would cost, and runs it (einops' backends are the model).

The registry (`recur.engine.registry`) lists the engines; `auto` asks each one that
runs on the device for its estimate and takes the cheapest; `explain` prints the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from recur.compile.ir import Program
from recur.diagnostics import Unsupported
from recur.engine.plan import Buffers

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What `auto` weighs: seconds for the time loop, plus `setup` seconds the first
    time only (compiling a kernel not in the cache yet), and why, in words."""

    seconds: float
    words: str
    setup: float = 0.0


class Engine(Protocol):
    """One way to run a `Program`."""

    name: str  # what `engine=` (and `--engine`) takes: "interp", "compiled", "scan"
    device: str  # where it runs: "cpu" or "cuda"
    words: str  # what it is, for `explain`

    def supports(self, program: Program) -> str | None:
        """None, or why this engine cannot run `program` (in words)."""
        ...

    def estimate(self, program: Program) -> Estimate:
        """The cost of running `program` here; only asked of a program it supports."""
        ...

    def ready(self, program: Program) -> bool:
        """Whether the set-up the estimate prices is done already (a cached kernel)."""
        ...

    def run(self, program: Program, buffers: Buffers,
            progress: Progress | None = None) -> tuple[int, str]:
        """Run every step into `buffers`: the steps run, and "steps" or "until".

        Raises `KernelFault` where the interpreter must replay the run to report it.
        """
        ...


class Making:
    """The part of an engine that makes something of a program before running it (a
    kernel, a scan's coefficients, its arrays in the program's `xp`), and keeps what it
    made of the last program asked about: `supports`, `estimate` and `run` come in
    that order."""

    device: str  # the engine's: a program for another device is not supported

    def __init__(self) -> None:
        self._program: Program | None = None
        self._made: Any = ""

    def make(self, program: Program) -> Any:
        """What runs `program`; `Unsupported` says why nothing can."""
        raise NotImplementedError

    def made(self, program: Program) -> Any:
        """What runs `program`, or why nothing can (a string, in words)."""
        if program is not self._program and not program.runs_like(self._program):
            self._program, self._made = program, _attempt(self.make, program)
        return self._made

    def supports(self, program: Program) -> str | None:
        if program.device != self.device:
            return f"it runs on {self.device}, and this program on {program.device}"
        made = self.made(program)
        return made if isinstance(made, str) else None

    def kernel(self, program: Program) -> Any:
        """What runs `program` (`Unsupported` where nothing can)."""
        made = self.made(program)
        if isinstance(made, str):
            raise Unsupported(made)
        return made


def _attempt(make: Callable[[Program], Any], program: Program) -> Any:
    try:
        return make(program)
    except Unsupported as unsupported:
        return str(unsupported)
    except ValueError as error:  # a shape a generator did not foresee: interpret it
        return f"an unforeseen shape ({error})"
