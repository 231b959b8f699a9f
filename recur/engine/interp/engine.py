"""The interpreter as an engine: runs anything, anywhere; the reference for the others."""

from __future__ import annotations

from recur.compile.ir import Program
from recur.engine.interp.loop import run_steps
from recur.engine.plan import Buffers
from recur.engine.protocol import Estimate, Progress
from recur.engine.work import WRITTEN_BYTE, work, written_bytes

# The cost model of the interpreter, in seconds, fitted to the figures of
# benchmarks/results/cost-model.csv (tests/engine/test_cost.py holds it within 2x of each): it
# pays per step, output, tap and NumPy call (far more on an array than on a single
# value), per element of each operation, and for fresh memory from the OS where a
# temporary is too large for the allocator to reuse (wide states).
INTERP_STEP = 150e-9  # the loop
# Before the loop: the closures built, and the rows of swept sub-expressions made
# (`recur.compile.sweeps`): W4's 199 steps took 0.9 ms.
INTERP_SETUP = 0.5e-3
INTERP_STORE = 150e-9  # storing an output's state
INTERP_TAP = 30e-9
INTERP_SCALAR_CALL = 50e-9  # NumPy arithmetic on single values
INTERP_ARRAY_CALL = 600e-9  # a NumPy call on arrays, its result's allocation included
FRESH_BYTE = 0.12e-9  # a byte of memory taken from the OS: page faults
REUSED_BYTES = 128 * 1024  # larger temporaries come fresh from the OS (glibc's malloc)
# Per element of each kind of work (`recur.engine.work.KINDS`) of a step.
ELEMENT_COST = {
    "arithmetic": 0.3e-9,
    "tap": 0.0,
    "function": 3e-9,
    "own function": 3e-9,
    # A draw is Philox's rounds in 32-bit halves, some 400 NumPy operations (W9: 3.6 s
    # for 2 * 10**7 normals).
    "draw": 150e-9,
    "multiply-add": 0.25e-9,
}
CUDA_LAUNCH = 10e-6  # seconds a CuPy operation takes at least: its kernel's launch
_WORDS = ("the interpreter: a Python loop over {} calls, one per operation and step; "
          "the reference every engine must match")


class Interpreter:
    """NumPy (or CuPy) closures called step after step."""

    name = "interp"

    def __init__(self, device: str) -> None:
        self.device = device
        self.words = _WORDS.format("NumPy" if device == "cpu" else "CuPy")

    def supports(self, program: Program) -> str | None:
        return None

    def estimate(self, program: Program) -> Estimate:
        if self.device == "cuda":  # every operation of every step is a kernel launch
            calls = max(1, work(program).calls)
            return Estimate(program.steps * calls * CUDA_LAUNCH, "the interpreter would "
                            f"launch about {calls} kernels per step")
        seconds = interp_seconds(program)
        return Estimate(seconds, f"the interpreter needs about {seconds:.2g} s")

    def ready(self, program: Program) -> bool:
        return True

    def run(self, program: Program, buffers: Buffers,
            progress: Progress | None = None) -> tuple[int, str]:
        return run_steps(program, buffers, progress)


def interp_seconds(program: Program) -> float:
    """The interpreter's time for the loop of `program` on the CPU, by the cost model."""
    done = work(program)
    lanes = program.lanes
    per_call = INTERP_SCALAR_CALL if lanes == 1 else INTERP_ARRAY_CALL
    temporary = lanes * 8  # bytes: a float64 state's worth
    fresh = done.calls * temporary * FRESH_BYTE if temporary > REUSED_BYTES else 0.0
    stores = len(program.outputs) * INTERP_STORE
    per_element = (done.per_element(ELEMENT_COST)
                   + written_bytes(program, rings=False) * WRITTEN_BYTE)
    return INTERP_SETUP + program.steps * (
        INTERP_STEP + stores + done.per_lane["tap"] * INTERP_TAP + done.calls * per_call
        + fresh + lanes * per_element)
