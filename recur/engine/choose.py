"""Which engine runs a compiled plan, and why; and running it there.

`interp` (the interpreter in `recur.engine.interp.loop`) runs everything, on NumPy or CuPy, and
is the reference. On the CPU, `compiled` is a C kernel (`recur.engine.c.generate`) with the time
loop in machine code; `auto` picks it only where the time it saves repays compiling it
(once: kernels are cached). On CUDA, `compiled` is one fused kernel (`recur.engine.cuda.generate`)
running the whole loop, a thread per lane; `scan` is a parallel scan for steps affine in
the state (`recur.compile.affine`). `auto` takes the scan for long runs of few lanes, else the
fused kernel, else the interpreter, which launches each step's operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recur.compile import affine as linear
from recur.compile.lower import Compiled
from recur.diagnostics import UsageError, option
from recur.engine.c import generate as codegen
from recur.engine.c import lanes as lanegen
from recur.engine.c import native
from recur.engine.cuda import generate as cudagen
from recur.engine.cuda import launch as cuda
from recur.engine.cuda import scan
from recur.engine.interp.loop import Outcome, collect, run_steps
from recur.lang import nodes as n
from recur.spec import Spec

ENGINES = ("auto", "interp", "compiled", "scan")

# The cost model of `auto` on the CPU, in seconds, fitted to the figures of
# benchmarks/results/cost-model.csv (tests/test_cost.py holds it within 2x of each). The
# interpreter pays per step, output, tap and NumPy call (far more on an array than on a
# single value), per element of each operation, and for fresh memory from the OS where a
# temporary is too large for the allocator to reuse (wide states); the C kernel pays per
# element, step and lane, after loading.
INTERP_STEP = 150e-9  # the loop
INTERP_STORE = 150e-9  # storing an output's state
INTERP_TAP = 30e-9
INTERP_SCALAR_CALL = 50e-9  # NumPy arithmetic on single values
INTERP_ARRAY_CALL = 600e-9  # a NumPy call on arrays, its result's allocation included
FRESH_BYTE = 0.04e-9  # a byte of memory taken from the OS: page faults
REUSED_BYTES = 128 * 1024  # larger temporaries come fresh from the OS (glibc's malloc)
KERNEL_STEP = 0.8e-9
KERNEL_LOAD = 0.5e-3  # loading a cached kernel
KERNEL_COMPILE = 0.25  # compiling a kernel that is not in the cache yet, at least
# A large source takes the C compiler a time that grows with it: 9.1 s for the 221 KB of
# 1,000 chained outputs of four lanes, 2.4 s for 300 (69 KB), at -O3 (benchmarks/sizes.py).
COMPILE_BYTE = 35e-6
LONG_RUN = 1.0  # seconds of interpreting worth a note where no compiler could do better
# Per element of each operation of a step: (interpreter, C kernel). A math function is a
# libm call in C, a vectorised loop in NumPy; a matrix product is priced per multiply-add.
ELEMENT_COST = {
    "arithmetic": (0.3e-9, 0.2e-9),
    "tap": (0.0, 0.05e-9),
    "function": (3e-9, 12e-9),
    "multiply-add": (0.25e-9, 0.1e-9),
}
# Functions that cost a libm call per element; the rest (sqrt, abs, floor, min, where ...)
# are priced as arithmetic.
_LIBM = frozenset({"sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh",
                   "cosh", "tanh", "exp", "expm1", "log", "log1p", "log2", "log10", "cbrt",
                   "hypot", "gamma", "lgamma", "erf"})
# On CUDA a scan pays a few launches and passes over memory, a fused kernel one thread's
# walk through every step: the scan wins once a lane's walk is long and lanes are few.
SCAN_MIN_STEPS = 65_536
SCAN_MAX_LANES = 1024


@dataclass(frozen=True, slots=True)
class Choice:
    """The engine a run uses and the reason, in words.

    `engine` is the name `--engine` takes for it: "interp", "compiled" (a C kernel on the
    CPU, one fused CUDA kernel on CUDA) or "scan"; `kernel` is what that engine runs: a
    `codegen.Kernel`, `cudagen.CudaKernel` or `linear.Affine`.
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
        raise UsageError(f"{option('engine')} must be one of {', '.join(ENGINES)}, "
                         f"not {requested!r}")
    if requested == "interp":
        return Choice("interp", f"asked for with {option('engine', 'interp')}")
    if compiled.plan.backend.name == "cuda":
        return _choose_cuda(compiled, spec, requested)
    if requested == "scan":
        raise UsageError(f"{option('engine', 'scan')} runs on {option('device', 'cuda')} only",
                         notes=(f"use {option('engine', 'compiled', 'auto')}",))
    kernel, why_not = _kernel(compiled, spec)
    if requested == "compiled":
        return _asked_for("compiled", kernel, why_not)
    if kernel is None:
        return Choice("interp", f"the compiled engine cannot run it: {why_not}")
    if compiled.plan.steps == 0:
        return Choice("interp", "there are no steps to run")
    cost = estimate(compiled, spec)
    compile_time = compile_estimate(kernel.source)
    words = (f"the interpreter needs about {_seconds(cost.interp)}, the compiled loop about "
             f"{_seconds(cost.compiled)} once compiled (compiling takes about "
             f"{compile_time:.2g} s, once: kernels are cached)")
    # The cache (a hash of the source; the first time, /proc/cpuinfo and the compiler's
    # stat) is looked at only where compiling first is what tips the balance.
    if cost.compiled < cost.interp and (cost.compiled + compile_time < cost.interp
                                        or native.is_cached(kernel.source)):
        return Choice("compiled", words, kernel)
    return Choice("interp", words)


def note_interpreted(compiled: Compiled, spec: Spec, choice: Choice) -> None:
    """A note where `auto` interprets a long run only because there is no C compiler."""
    if choice.engine != "interp" or native.available() or compiled.plan.backend.name != "cpu":
        return
    seconds = estimate(compiled, spec).interp if compiled.plan.steps else 0.0
    if seconds >= LONG_RUN:
        native.note(f"{native.missing_compiler()}, so the interpreter runs this (about "
                    f"{_seconds(seconds)}); set CC, or install gcc or clang, for the "
                    "compiled engine")


def compile_estimate(source: str) -> float:
    """Seconds to compile a kernel: a floor, or in proportion to a large source."""
    return max(KERNEL_COMPILE, len(source) * COMPILE_BYTE)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Seconds a run's time loop takes on each CPU engine, by the cost model of `auto`."""

    interp: float
    compiled: float  # a cached kernel: loading it included, compiling it not


def estimate(compiled: Compiled, spec: Spec) -> Estimate:
    """What `auto` weighs: the interpreter's and the C kernel's time for this plan."""
    calls, work = _work(compiled, spec)
    steps, lanes = compiled.plan.steps, _lanes(compiled)
    per_call = INTERP_SCALAR_CALL if lanes == 1 else INTERP_ARRAY_CALL
    temporary = lanes * 8  # bytes: a float64 state's worth
    fresh = calls * temporary * FRESH_BYTE if temporary > REUSED_BYTES else 0.0
    stores = len(compiled.plan.outputs) * INTERP_STORE
    interp = steps * (INTERP_STEP + stores + work["tap"] * INTERP_TAP + calls * per_call
                      + fresh + lanes * _per_element(work, 0))
    kernel = KERNEL_LOAD + steps * (KERNEL_STEP + lanes * _per_element(work, 1))
    return Estimate(interp, kernel)


def _per_element(work: dict[str, int], engine: int) -> float:
    """Seconds per step and lane on the interpreter (`engine` 0) or the kernel (1)."""
    return sum(count * ELEMENT_COST[kind][engine] for kind, count in work.items())


def _choose_cuda(compiled: Compiled, spec: Spec, requested: str) -> Choice:
    if requested == "scan":
        return _asked_for("scan", *_attempt(linear.affine, compiled, spec))
    if requested == "compiled":
        return _asked_for("compiled", *_attempt(cudagen.generate, compiled, spec), " on CUDA")
    steps, lanes = compiled.plan.steps, _lanes(compiled)
    if steps == 0:
        return Choice("interp", "there are no steps to run")
    if steps >= SCAN_MIN_STEPS and lanes <= SCAN_MAX_LANES:  # only then worth its arrays
        affine, _ = _attempt(linear.affine, compiled, spec)
        if affine is not None:
            return Choice("scan", f"the step is affine in the state and each of {lanes} "
                          f"lane(s) runs {steps} steps: a parallel scan takes a few passes "
                          "over memory instead of one step after another", affine)
    kernel, why_not = _attempt(cudagen.generate, compiled, spec)
    if kernel is not None:
        return Choice("compiled", f"one CUDA kernel runs all {steps} steps, a thread per lane; "
                      f"the interpreter would launch about {max(1, _work(compiled, spec)[0])} "
                      "kernels per step", kernel)
    return Choice("interp", f"no fused CUDA kernel: {why_not}; CuPy runs each "
                  "step's array operations")


def _asked_for(engine: str, made: Any, why_not: str, where: str = "") -> Choice:
    """The engine asked for by name, or the error that says why it cannot run."""
    if made is None:
        others = [name for name in ENGINES if name not in (engine, "scan")]
        raise UsageError(f"{option('engine', engine)} cannot run this spec{where}: {why_not}",
                         notes=(f"use {option('engine', *others)}",))
    return Choice(engine, f"asked for with {option('engine', engine)}", made)


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
    if choice.engine == "interp":
        return run_steps(plan, progress)
    if choice.engine == "compiled" and plan.backend.name == "cuda":
        return cuda.run_fused(plan, choice.kernel, plan.backend.launcher, progress)
    if choice.engine == "scan":
        return scan.run_scan(plan, choice.kernel.coefficient, choice.kernel.offset,
                             plan.backend.launcher)
    kernel = native.load(choice.kernel.source, compile_limit(choice.kernel.source))
    return native.run_kernel(plan, kernel, choice.kernel.arrays, progress)


def compile_limit(source: str) -> float:
    """Seconds the C compiler may take on `source`: `native.COMPILE_FLOOR`, or the cost
    model's estimate (`compile_estimate`) times `native.COMPILE_MARGIN`."""
    return max(native.COMPILE_FLOOR, native.COMPILE_MARGIN * compile_estimate(source))


def _kernel(compiled: Compiled, spec: Spec) -> tuple[codegen.Kernel | None, str]:
    if not native.available():
        return None, f"{native.missing_compiler()} (set CC, or install gcc or clang)"
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


def _work(compiled: Compiled, spec: Spec) -> tuple[int, dict[str, int]]:
    """What the loop does per step: the array operations (the interpreter's NumPy calls),
    and per lane the work of each kind of `ELEMENT_COST`. Sub-expressions moved out of
    the loop run once, before it, so they are not counted. A matrix product counts a
    multiply-add per element of the widest state (`W @ h`: h's length)."""
    moved = compiled.hoisted_values.keys() | compiled.swept_values.keys()
    work = dict.fromkeys(ELEMENT_COST, 0)
    calls, lanes = 0, _lanes(compiled)

    def count(node: n.Node) -> None:
        if id(node) in moved or isinstance(node, n.Number | n.Name | n.TimeIndex):
            return
        if isinstance(node, n.Subscript) and any(isinstance(index, n.TimeIndex)
                                                 for index in node.index):
            work["tap"] += 1
            return
        nonlocal calls
        calls += 1
        if isinstance(node, n.Binary) and node.op == "@":
            work["multiply-add"] += lanes
        else:
            work["function" if isinstance(node, n.Call) and node.func in _LIBM
                 else "arithmetic"] += 1
        for child in n.children(node):
            count(child)

    for root in [o.step for o in spec.outputs] + ([spec.until] if spec.until else []):
        count(root)
    return calls, work


def _seconds(value: float) -> str:
    return f"{value:.2g} s"
