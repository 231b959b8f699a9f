"""Which engine runs a compiled plan, and why; and running it there.

`interp` (the interpreter in `recur.engine.loop`) runs everything, on NumPy or CuPy, and
is the reference. On the CPU, `compiled` is a C kernel (`recur.codegen`) with the time
loop in machine code; `auto` picks it only where the time it saves repays compiling it
(once: kernels are cached). On CUDA, `compiled` is one fused kernel (`recur.cudagen`)
running the whole loop, a thread per lane; `scan` is a parallel scan for steps affine in
the state (`recur.linear`). `auto` takes the scan for long runs of few lanes, else the
fused kernel, else the interpreter, which launches each step's operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recur import codegen, cudagen, lanegen, linear
from recur.compiler import Compiled
from recur.diagnostics import UsageError
from recur.engine import cuda, native, scan
from recur.engine.loop import Outcome, collect, run_steps
from recur.lang import nodes as n
from recur.spec import Spec

ENGINES = ("auto", "interp", "compiled", "scan")

# The cost model of `auto`, measured on a 2-core x86-64 laptop-class CPU
# (benchmarks/cpu.py): the interpreter pays a fixed cost per operation and step plus a
# small one per element; the kernel pays per element only, after a fixed start.
INTERP_PER_OPERATION = 0.5e-6  # seconds per operation and step
INTERP_PER_ELEMENT = 1.0e-9  # seconds per operation, step and lane
KERNEL_PER_ELEMENT = 1.0e-9
KERNEL_LOAD = 0.002  # loading a cached kernel
KERNEL_COMPILE = 0.25  # compiling a kernel that is not in the cache yet
# On CUDA a scan pays a few launches and passes over memory, a fused kernel one thread's
# walk through every step: the scan wins once a lane's walk is long and lanes are few.
SCAN_MIN_STEPS = 65_536
SCAN_MAX_LANES = 1024


@dataclass(frozen=True, slots=True)
class Choice:
    """The engine a run uses and the reason, in words.

    `engine` is "interpreter", "compiled" (a C kernel), "fused" (a CUDA kernel) or "scan";
    `kernel` is what that engine runs: a `codegen.Kernel`, `cudagen.CudaKernel` or
    `linear.Affine`.
    """

    engine: str
    reason: str
    kernel: Any = None


def choose(compiled: Compiled, spec: Spec, requested: str = "auto") -> Choice:
    """The engine for this plan; `requested` is one of `ENGINES`.

    Raises:
        UsageError: `compiled` was requested for a spec or device it cannot run.
    """
    if requested not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {requested!r}")
    if requested == "interp":
        return Choice("interpreter", "asked for with --engine interp")
    if compiled.plan.backend.name == "cuda":
        return _choose_cuda(compiled, spec, requested)
    if requested == "scan":
        raise UsageError("--engine scan runs on --device cuda only",
                         notes=("use --engine compiled or auto",))
    kernel, why_not = _kernel(compiled, spec)
    if requested == "compiled":
        return _asked_for("compiled", kernel, why_not, "compiled")
    if kernel is None:
        return Choice("interpreter", f"the compiled engine cannot run it: {why_not}")
    if compiled.plan.steps == 0:
        return Choice("interpreter", "there are no steps to run")
    operations = _operations(compiled, spec)
    steps, lanes = compiled.plan.steps, _lanes(compiled)
    interp = steps * operations * (INTERP_PER_OPERATION + lanes * INTERP_PER_ELEMENT)
    start = KERNEL_LOAD + (0.0 if native.is_cached(kernel.source) else KERNEL_COMPILE)
    kernel_time = steps * operations * lanes * KERNEL_PER_ELEMENT + start
    estimate = (f"the interpreter needs about {_seconds(interp)}, the compiled loop about "
                f"{_seconds(kernel_time - start)} once compiled (compiling takes about "
                f"{KERNEL_COMPILE:g} s, once: kernels are cached)")
    if kernel_time < interp:
        return Choice("compiled", estimate, kernel)
    return Choice("interpreter", estimate)


def _choose_cuda(compiled: Compiled, spec: Spec, requested: str) -> Choice:
    if requested == "scan":
        return _asked_for("scan", *_attempt(linear.affine, compiled, spec), "scan")
    if requested == "compiled":
        return _asked_for("compiled", *_attempt(cudagen.generate, compiled, spec), "fused",
                          " on CUDA")
    steps, lanes = compiled.plan.steps, _lanes(compiled)
    if steps == 0:
        return Choice("interpreter", "there are no steps to run")
    if steps >= SCAN_MIN_STEPS and lanes <= SCAN_MAX_LANES:  # only then worth its arrays
        affine, _ = _attempt(linear.affine, compiled, spec)
        if affine is not None:
            return Choice("scan", f"the step is affine in the state and each of {lanes} "
                          f"lane(s) runs {steps} steps: a parallel scan takes a few passes "
                          "over memory instead of one step after another", affine)
    kernel, why_not = _attempt(cudagen.generate, compiled, spec)
    if kernel is not None:
        return Choice("fused", f"one CUDA kernel runs all {steps} steps, a thread per lane; "
                      f"the interpreter would launch about {_operations(compiled, spec)} "
                      "kernels per step", kernel)
    return Choice("interpreter", f"no fused CUDA kernel: {why_not}; CuPy runs each "
                  "step's array operations")


def _asked_for(option: str, made: Any, why_not: str, engine: str, where: str = "") -> Choice:
    """The engine `--engine option` names, or the error that says why it cannot run."""
    if made is None:
        others = [name for name in ENGINES if name not in (option, "scan")]
        raise UsageError(f"--engine {option} cannot run this spec{where}: {why_not}",
                         notes=(f"use --engine {', '.join(others[:-1])} or {others[-1]}",))
    return Choice(engine, f"asked for with --engine {option}", made)


def _lanes(compiled: Compiled) -> int:
    """The elements of the widest state: what a kernel runs side by side."""
    return max((math.prod(o.history.shape) for o in compiled.plan.outputs), default=1)


def execute(choice: Choice, compiled: Compiled,
            progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Run the plan on the chosen engine; `KernelFault` means: replay interpreted."""
    steps_run, stopped_by = launch(choice, compiled, progress)
    return Outcome(collect(compiled.plan, steps_run), steps_run, stopped_by)


def launch(choice: Choice, compiled: Compiled,
           progress: Callable[[int, int], None] | None = None) -> tuple[int, str]:
    """`execute` short of copying the results to the host (benchmarks time this)."""
    plan = compiled.plan
    if choice.engine == "interpreter":
        return run_steps(plan, progress)
    if choice.engine == "fused":
        return cuda.run_fused(plan, choice.kernel, plan.backend.launcher, progress)
    if choice.engine == "scan":
        return scan.run_scan(plan, choice.kernel.coefficient, choice.kernel.offset,
                             plan.backend.launcher)
    return native.run_kernel(plan, native.load(choice.kernel.source), choice.kernel.arrays,
                             progress)


def _kernel(compiled: Compiled, spec: Spec) -> tuple[codegen.Kernel | None, str]:
    if not native.available():
        return None, "no C compiler was found (set CC, or install gcc or clang)"
    one_lane, _ = _attempt(lanegen.generate_host, compiled, spec)  # taps in registers
    return (one_lane, "") if one_lane is not None else _attempt(codegen.generate, compiled,
                                                                spec)


def _attempt(make: Callable[[Compiled, Spec], Any], compiled: Compiled,
             spec: Spec) -> tuple[Any, str]:
    """What `make` builds for this plan, or None and the reason it cannot."""
    try:
        return make(compiled, spec), ""
    except codegen.Unsupported as unsupported:
        return None, str(unsupported)
    except ValueError as error:  # a shape the generator did not foresee: interpret it
        return None, f"an unforeseen shape ({error})"


def _operations(compiled: Compiled, spec: Spec) -> int:
    """The operations left in the loop per step (moved-out sub-expressions count once)."""
    moved = compiled.hoisted_values.keys() | compiled.swept_values.keys()

    def count(node: n.Node) -> int:
        if id(node) in moved or isinstance(node, n.Number | n.Name | n.TimeIndex):
            return 0
        return 1 + sum(count(child) for child in n.children(node))

    roots = [o.step for o in spec.outputs] + ([spec.until] if spec.until else [])
    return max(1, sum(count(root) for root in roots))


def _seconds(value: float) -> str:
    return f"{value:.2g} s"
