"""Running generated CUDA kernels: compiling them through CuPy, launching, reading status.

A `Launcher` turns CUDA source into launchable functions. `CupyLauncher` compiles with
NVRTC through `cupy.RawModule` (CuPy caches the binaries on disk, so a spec's second
run does not compile) with `--fmad=false`, so that `a * b + c` is two roundings, as in
NumPy. Every kernel recur generates walks its threads with a grid-stride loop, so it is
correct for any grid; the tests run the same sources on the CPU through an emulating
launcher.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy

from recur.compile import ir
from recur.diagnostics import CompileError, KernelFault
from recur.engine.c.generate import bind
from recur.engine.plan import Buffers
from recur.lang.intops import INT64_MAX

# Threads per block of the lane kernel, and of any launch that names none. Measured on
# an H200 (benchmarks/gpu.py --variants): block sizes of 128-512 and streaming stores
# change G1 by under 3%, within noise.
BLOCK = 256
MAX_BLOCKS = 65535 * 16  # grid-stride loops cover the rest
OPTIONS = ("--fmad=false",)  # IEEE + - * / and sqrt as NumPy; no contraction
CHUNK_LANE_STEPS = 1 << 34  # lane-steps per launch when progress is reported
NO_STEP = INT64_MAX  # a result word no fault or `until` has set (atomicMin only lowers it)

Launch = Callable[..., None]  # (threads, arguments, block=BLOCK)


class Launcher(Protocol):
    def function(self, source: str, name: str) -> Launch: ...


class CupyLauncher:
    """Kernels compiled by NVRTC through CuPy, one module per source."""

    def __init__(self, cupy: Any) -> None:
        self.cupy = cupy
        self._modules: dict[str, Any] = {}

    def function(self, source: str, name: str) -> Launch:
        module = self._modules.get(source)
        if module is None:
            module = self.cupy.RawModule(code=source, options=OPTIONS)
            self._modules[source] = module
        try:
            kernel = module.get_function(name)  # NVRTC compiles here (or CuPy's cache)
        except Exception as error:  # CuPy's CompileException, or a driver's error
            raise CompileError(f"NVRTC failed on a generated kernel: "
                               f"{str(error).strip().splitlines()[0]}") from None

        def launch(threads: int, arguments: tuple[Any, ...], block: int = BLOCK) -> None:
            blocks = max(1, min(math.ceil(threads / block), MAX_BLOCKS))
            kernel((blocks,), (block,), tuple(
                numpy.int64(a) if isinstance(a, int) else a for a in arguments))

        return launch


def run_fused(program: ir.Program, buffers: Buffers, kernel: Any, launcher: Launcher,
              progress: Callable[[int, int], None] | None = None) -> tuple[int, str]:
    """Every step of `program` into `buffers` through the fused kernel of
    `recur.engine.cuda.generate`, results left on the device: the steps run and what
    stopped them. `KernelFault` on a fault."""
    xp, steps = buffers.backend.xp, program.steps
    arrays = bind(kernel.arguments, buffers)
    result = xp.full(2, NO_STEP, dtype=xp.int64)
    dims = xp.asarray(numpy.array([size for a in arrays for size in a.shape] or [0],
                                  dtype=numpy.int64))
    launch = launcher.function(kernel.source, kernel.name)
    end = program.end
    chunk = end - program.start if progress is None else max(1, CHUNK_LANE_STEPS // kernel.lanes)
    steps_run, stopped_by = end, "steps"
    for start in range(program.start, end, max(chunk, 1)):
        stop = min(start + chunk, end)
        launch(kernel.threads, (start, stop, steps, kernel.lanes, result, dims, *arrays),
               kernel.block)
        fault, until = (int(word) for word in buffers.backend.to_host(result))
        if fault != NO_STEP:
            raise KernelFault.at(fault)
        if until != NO_STEP:
            steps_run, stopped_by = until + 1, "until"
            break
        if progress is not None:
            progress(stop, steps)
    return steps_run, stopped_by
