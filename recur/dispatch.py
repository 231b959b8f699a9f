"""Which engine runs a compiled plan, and why; and running it there.

`interp` (the interpreter in `recur.engine.loop`) runs everything and is the reference.
`compiled` (a C kernel from `recur.codegen`) runs element-wise specs on the CPU with
the time loop in machine code. `auto` picks the compiled kernel only where the time it
saves repays compiling it (once: kernels are cached): a short run, or one whose steps
are a few large array operations, stays in the interpreter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from recur import codegen
from recur.compiler import Compiled
from recur.diagnostics import UsageError
from recur.engine import native
from recur.engine.loop import Outcome, run_plan
from recur.lang import nodes as n
from recur.spec import Spec

ENGINES = ("auto", "interp", "compiled")

# The cost model of `auto`, measured on a 2-core x86-64 laptop-class CPU
# (benchmarks/cpu.py): the interpreter pays a fixed cost per operation and step plus a
# small one per element; the kernel pays per element only, after a fixed start.
INTERP_PER_OPERATION = 0.5e-6  # seconds per operation and step
INTERP_PER_ELEMENT = 1.0e-9  # seconds per operation, step and lane
KERNEL_PER_ELEMENT = 1.0e-9
KERNEL_LOAD = 0.002  # loading a cached kernel
KERNEL_COMPILE = 0.25  # compiling a kernel that is not in the cache yet


@dataclass(frozen=True, slots=True)
class Choice:
    """The engine a run uses ("interpreter" or "compiled") and the reason, in words."""

    engine: str
    reason: str
    kernel: codegen.Kernel | None = None


def choose(compiled: Compiled, spec: Spec, requested: str = "auto") -> Choice:
    """The engine for this plan; `requested` is one of `ENGINES`.

    Raises:
        UsageError: `compiled` was requested for a spec or device it cannot run.
    """
    if requested not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {requested!r}")
    if requested == "interp":
        return Choice("interpreter", "asked for with --engine interp")
    kernel, why_not = _kernel(compiled, spec)
    if requested == "compiled":
        if kernel is None:
            raise UsageError(f"--engine compiled cannot run this spec: {why_not}",
                             notes=("use --engine interp or auto",))
        return Choice("compiled", "asked for with --engine compiled", kernel)
    if kernel is None:
        return Choice("interpreter", f"the compiled engine cannot run it: {why_not}")
    if compiled.plan.steps == 0:
        return Choice("interpreter", "there are no steps to run")
    operations = _operations(compiled, spec)
    steps = compiled.plan.steps
    lanes = max((math.prod(o.history.shape) for o in compiled.plan.outputs), default=1)
    interp = steps * operations * (INTERP_PER_OPERATION + lanes * INTERP_PER_ELEMENT)
    start = KERNEL_LOAD + (0.0 if native.is_cached(kernel.source) else KERNEL_COMPILE)
    kernel_time = steps * operations * lanes * KERNEL_PER_ELEMENT + start
    estimate = (f"the interpreter needs about {_seconds(interp)}, the compiled loop about "
                f"{_seconds(kernel_time - start)} once compiled (compiling takes about "
                f"{KERNEL_COMPILE:g} s, once: kernels are cached)")
    if kernel_time < interp:
        return Choice("compiled", estimate, kernel)
    return Choice("interpreter", estimate)


def execute(choice: Choice, compiled: Compiled,
            progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Run the plan on the chosen engine; `native.KernelFault` means: replay interpreted."""
    if choice.kernel is None:
        return run_plan(compiled.plan, progress)
    kernel = native.load(choice.kernel.source)
    return native.run_kernel(compiled.plan, kernel, choice.kernel.arrays, progress)


def _kernel(compiled: Compiled, spec: Spec) -> tuple[codegen.Kernel | None, str]:
    if compiled.plan.backend.name != "cpu":
        return None, f"it runs on the CPU only, not on {compiled.plan.backend.name}"
    if not native.available():
        return None, "no C compiler was found (set CC, or install gcc or clang)"
    try:
        return codegen.generate(compiled, spec), ""
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
