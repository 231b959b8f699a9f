"""The compiled engine on the CPU: a C kernel with the time loop inside, and its part
of the cost model of `auto`.

The cost model is in seconds, fitted to the figures of benchmarks/results/cost-model.csv
(tests/engine/test_cost.py holds it within 2x of each): the kernel pays per step, and per
element, step and lane of each kind of work (`recur.engine.work`), after loading; the
first run of a kernel not in the cache also pays for compiling it.
"""

from __future__ import annotations

from typing import Any

import numpy

from recur.compile import ir
from recur.diagnostics import Unsupported
from recur.engine import work
from recur.engine.c import generate, lanes, mathfn, native
from recur.engine.plan import Buffers
from recur.engine.protocol import Estimate, Making, Progress

KERNEL_STEP = 0.8e-9
KERNEL_LOAD = 0.5e-3  # loading a cached kernel
KERNEL_COMPILE = 0.25  # compiling a kernel that is not in the cache yet, at least
# A large source takes the C compiler a time that grows with it: 9.1 s for the 221 KB of
# 1,000 chained outputs of four lanes, 2.4 s for 300 (69 KB), at -O3 (benchmarks/sizes.py).
COMPILE_BYTE = 35e-6
# Per element of each kind of work of a step: a math function is a libm call, a matrix
# product is priced per multiply-add.
ELEMENT_COST = {
    "arithmetic": 0.1e-9,  # a single value's, mostly beside its chain of dependences
    "tap": 0.05e-9,
    "function": 12e-9,
    "own function": 1.5e-9,  # recur's own, vectorised (`recur.engine.c.mathfn`)
    "draw": 12e-9,
    "multiply-add": 0.04e-9,  # 32 lanes' sums in vector registers (W6)
}
# The same in the lane kernel's blocks (`recur.engine.c.lanes`), whose loop over lanes the
# C compiler vectorises: W8's 22 operations and 21 reads take 0.35 ns a lane and step, a
# normal() draw with its Philox words 5 ns (W9); a libm call is still one lane's.
BLOCK_ELEMENT_COST = {
    "arithmetic": 0.012e-9,
    "tap": 0.004e-9,
    "function": 12e-9,
    "own function": 1.5e-9,
    "draw": 5e-9,
    "multiply-add": 0.04e-9,
}


def compile_estimate(source: str) -> float:
    """Seconds to compile a kernel: a floor, or in proportion to a large source."""
    return max(KERNEL_COMPILE, len(source) * COMPILE_BYTE)


def compile_limit(source: str) -> float:
    """Seconds the C compiler may take on `source`: `native.COMPILE_FLOOR`, or the cost
    model's estimate (`compile_estimate`) times `native.COMPILE_MARGIN`."""
    return max(native.COMPILE_FLOOR, native.COMPILE_MARGIN * compile_estimate(source))


def kernel_seconds(program: ir.Program, blocks: bool = False) -> float:
    """The time loop of a cached kernel, loading it included; `blocks`: the lane
    kernel's blocks of lanes (vectorised)."""
    costs = BLOCK_ELEMENT_COST if blocks else ELEMENT_COST
    done = work.work(program, swept_in_loop=True, own=mathfn.FUNCTIONS)
    per_element = done.per_element(costs)
    per_element += work.written_bytes(program) * work.WRITTEN_BYTE
    return KERNEL_LOAD + program.steps * (KERNEL_STEP + program.lanes * per_element)


def kernel(program: ir.Program, xp: Any = numpy) -> generate.Kernel:
    """The C kernel for `program`: the lane loop where states are single values (taps in
    registers), else the loop over all lanes of a step. `Unsupported` says why neither."""
    try:
        return lanes.generate_host(program, xp)
    except (Unsupported, ValueError):
        return generate.generate(program, xp)


class CEngine(Making):
    """The C kernel (`recur.engine.c.generate`), built by the system's C compiler and
    cached on disk (`recur.engine.c.native`)."""

    name = "compiled"
    device = "cpu"
    words = "a C kernel with the time loop inside, built once and cached on disk"

    def make(self, program: ir.Program) -> generate.Kernel:
        return kernel(program, program.xp)

    def supports(self, program: ir.Program) -> str | None:
        if not native.available():
            return f"{native.missing_compiler()} (set CC, or install gcc or clang)"
        return super().supports(program)

    def estimate(self, program: ir.Program) -> Estimate:
        made = self.kernel(program)
        seconds = kernel_seconds(program, made.lane_block > 0)
        setup = compile_estimate(made.source)
        return Estimate(seconds, f"the compiled loop about {seconds:.2g} s once "
                        f"compiled (compiling takes about {setup:.2g} s, once: kernels are "
                        "cached)", setup)

    def ready(self, program: ir.Program) -> bool:
        return native.is_cached(self.kernel(program).source)

    def run(self, program: ir.Program, buffers: Buffers,
            progress: Progress | None = None) -> tuple[int, str]:
        made = self.kernel(program)
        function = native.load(made.source, compile_limit(made.source))
        return native.run_kernel(program, buffers, made, function, progress)
