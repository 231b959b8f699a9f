"""The CUDA engines: one fused kernel with the time loop inside (`compiled`), and the
parallel scan of a step affine in the state (`scan`).

Their estimates express one rule, not a fitted model: a scan pays a few launches and
passes over memory, a fused kernel one thread's walk through every step, so the scan
wins once a lane's walk is long and lanes are few (`SCAN_MIN_STEPS`, `SCAN_MAX_LANES`);
otherwise the fused kernel, which always beats the interpreter's launches per step.
"""

from __future__ import annotations

import math

from recur.compile import ir
from recur.diagnostics import Unsupported
from recur.engine.cuda import generate, launch, scan
from recur.engine.cuda.affine import Affine, affine
from recur.engine.plan import Buffers
from recur.engine.protocol import Estimate, Making, Progress

SCAN_MIN_STEPS = 65_536
SCAN_MAX_LANES = 1024
# The time of one step of a lane's walk through the fused kernel; a scan in its regime
# is priced at `SCAN_SHARE` of that, outside it not at all (infinity).
FUSED_STEP = 1e-6
SCAN_SHARE = 0.5


def worth_scanning(program: ir.Program) -> bool:
    """Whether a scan repays its arrays of coefficients: a long walk of few lanes."""
    return program.steps >= SCAN_MIN_STEPS and program.lanes <= SCAN_MAX_LANES


class _CudaEngine(Making):
    """An engine on CUDA: its arrays in the program's array module (CuPy's, or the
    emulator's stand-in), its kernels compiled by NVRTC and cached by CuPy."""

    device = "cuda"

    def ready(self, program: ir.Program) -> bool:
        return True  # no set-up that we can see or price


class FusedEngine(_CudaEngine):
    """One CUDA kernel (`recur.engine.cuda.generate`), a thread per lane."""

    name = "compiled"
    words = ("one fused CUDA kernel with the time loop inside, a thread per lane, taps in "
             "registers; compiled once by NVRTC and cached by CuPy")

    def make(self, program: ir.Program) -> generate.CudaKernel:
        return generate.generate(program, program.xp)

    def estimate(self, program: ir.Program) -> Estimate:
        return Estimate(program.steps * FUSED_STEP,
                        f"one CUDA kernel runs all {program.steps} steps, a thread per lane")

    def run(self, program: ir.Program, buffers: Buffers,
            progress: Progress | None = None) -> tuple[int, str]:
        return launch.run_fused(program, buffers, self.kernel(program),
                                buffers.backend.launcher, progress)


class ScanEngine(_CudaEngine):
    """The chunked parallel scan (`recur.engine.cuda.scan`) of an affine step."""

    name = "scan"
    words = ("a chunked parallel scan of the affine step on the GPU; agrees with the loop "
             "within the tolerance docs/performance.md states")

    def make(self, program: ir.Program) -> Affine:
        if program.start or program.stop is not None:
            raise Unsupported("a scan runs every step from step 0 at once")
        keeps = [o.keep for o in program.outputs if o.keep not in ("all", "last", "none")]
        if keeps:
            raise Unsupported(f"a scan keeps every step or the last, not 'keep: {keeps[0]}'")
        return affine(program, program.xp)

    def estimate(self, program: ir.Program) -> Estimate:
        steps, lanes = program.steps, program.lanes
        if not worth_scanning(program):
            return Estimate(math.inf, f"a scan repays its arrays only for at least "
                            f"{SCAN_MIN_STEPS} steps of at most {SCAN_MAX_LANES} lanes")
        return Estimate(steps * FUSED_STEP * SCAN_SHARE,
                        f"the step is affine in the state and each of {lanes} lane(s) runs "
                        f"{steps} steps: a parallel scan takes a few passes over memory "
                        "instead of one step after another")

    def run(self, program: ir.Program, buffers: Buffers,
            progress: Progress | None = None) -> tuple[int, str]:
        return scan.run_scan(program, buffers, self.kernel(program), buffers.backend.launcher)
