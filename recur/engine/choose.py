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

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recur.diagnostics import UsageError, option
from recur.engine import plan as buffers_of
from recur.engine import work as counted
from recur.engine.c import native
from recur.engine.c.engine import CEngine, compile_estimate, compile_limit, kernel_seconds
from recur.engine.cuda import launch as cuda
from recur.engine.cuda import scan
from recur.engine.cuda.engine import FusedEngine, ScanEngine, worth_scanning
from recur.engine.interp.loop import Outcome, collect, run_steps
from recur.engine.protocol import Making

if TYPE_CHECKING:  # what `recur.api` hands over until a registry replaces this module
    from recur.compile.lower import Compiled
    from recur.spec import Spec

ENGINES = ("auto", "interp", "compiled", "scan")

# The cost model of `auto` on the CPU, in seconds, fitted to the figures of
# benchmarks/results/cost-model.csv (tests/test_cost.py holds it within 2x of each). The
# interpreter pays per step, output, tap and NumPy call (far more on an array than on a
# single value), per element of each operation, and for fresh memory from the OS where a
# temporary is too large for the allocator to reuse (wide states); the C kernel's part is
# `recur.engine.c.engine`'s.
INTERP_STEP = 150e-9  # the loop
INTERP_STORE = 150e-9  # storing an output's state
INTERP_TAP = 30e-9
INTERP_SCALAR_CALL = 50e-9  # NumPy arithmetic on single values
INTERP_ARRAY_CALL = 600e-9  # a NumPy call on arrays, its result's allocation included
FRESH_BYTE = 0.04e-9  # a byte of memory taken from the OS: page faults
REUSED_BYTES = 128 * 1024  # larger temporaries come fresh from the OS (glibc's malloc)
LONG_RUN = 1.0  # seconds of interpreting worth a note where no compiler could do better
# Per element of each kind of work of a step (`recur.engine.work`): a math function is a
# vectorised loop in NumPy; a matrix product is priced per multiply-add.
ELEMENT_COST = {
    "arithmetic": 0.3e-9,
    "tap": 0.0,
    "function": 3e-9,
    "multiply-add": 0.25e-9,
}


@dataclass(frozen=True, slots=True)
class Choice:
    """The engine a run uses and the reason, in words.

    `engine` is the name `--engine` takes for it: "interp", "compiled" (a C kernel on the
    CPU, one fused CUDA kernel on CUDA) or "scan"; `kernel` is what that engine runs: a
    C `Kernel`, a `CudaKernel` or an `Affine`.
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
    kernel, why_not = _made(CEngine(), compiled)
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


@dataclass(frozen=True, slots=True)
class Estimate:
    """Seconds a run's time loop takes on each CPU engine, by the cost model of `auto`."""

    interp: float
    compiled: float  # a cached kernel: loading it included, compiling it not


def estimate(compiled: Compiled, spec: Spec) -> Estimate:
    """What `auto` weighs: the interpreter's and the C kernel's time for this plan."""
    program = compiled.program
    done = counted.work(program)
    calls, work = done.calls, done.per_lane
    steps, lanes = program.steps, program.lanes
    per_call = INTERP_SCALAR_CALL if lanes == 1 else INTERP_ARRAY_CALL
    temporary = lanes * 8  # bytes: a float64 state's worth
    fresh = calls * temporary * FRESH_BYTE if temporary > REUSED_BYTES else 0.0
    stores = len(compiled.plan.outputs) * INTERP_STORE
    interp = steps * (INTERP_STEP + stores + work["tap"] * INTERP_TAP + calls * per_call
                      + fresh + lanes * sum(count * ELEMENT_COST[kind]
                                            for kind, count in work.items()))
    return Estimate(interp, kernel_seconds(program))


def _choose_cuda(compiled: Compiled, spec: Spec, requested: str) -> Choice:
    fused, scanned = FusedEngine(compiled.plan.backend), ScanEngine(compiled.plan.backend)
    if requested == "scan":
        return _asked_for("scan", *_made(scanned, compiled))
    if requested == "compiled":
        return _asked_for("compiled", *_made(fused, compiled), " on CUDA")
    program = compiled.program
    if program.steps == 0:
        return Choice("interp", "there are no steps to run")
    # The scan's coefficients are made only where it is worth them.
    if worth_scanning(program) and scanned.supports(program) is None:
        return Choice("scan", scanned.estimate(program).words, scanned.kernel(program))
    kernel, why_not = _made(fused, compiled)
    if kernel is not None:
        return Choice("compiled", fused.estimate(program).words, kernel)
    return Choice("interp", f"no fused CUDA kernel: {why_not}; CuPy runs each "
                  "step's array operations")


def _asked_for(engine: str, made: Any, why_not: str, where: str = "") -> Choice:
    """The engine asked for by name, or the error that says why it cannot run."""
    if made is None:
        others = [name for name in ENGINES if name not in (engine, "scan")]
        raise UsageError(f"{option('engine', engine)} cannot run this spec{where}: {why_not}",
                         notes=(f"use {option('engine', *others)}",))
    return Choice(engine, f"asked for with {option('engine', engine)}", made)


def execute(choice: Choice, compiled: Compiled,
            progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Run the plan on the chosen engine; `KernelFault` means: replay interpreted."""
    if choice.engine == "interp":
        steps_run, stopped_by = run_steps(compiled.plan, progress)
        return Outcome(collect(compiled.plan, steps_run), steps_run, stopped_by)
    buffers = states(compiled)
    steps_run, stopped_by = launch(choice, compiled, progress, buffers)
    return Outcome(buffers_of.collect(compiled.program, buffers, steps_run), steps_run,
                   stopped_by)


def states(compiled: Compiled) -> buffers_of.Buffers:
    """The states a kernel writes: the histories `compile_spec` has just made (and filled
    with the initials) for the interpreter, which no run has touched yet. Allocating
    others from the program would hold every kept trajectory twice (on a GPU, in device
    memory) until the interpreter reads `Buffers` too."""
    return buffers_of.Buffers({o.name: o.history for o in compiled.plan.outputs},
                              compiled.plan.backend)


def launch(choice: Choice, compiled: Compiled,
           progress: Callable[[int, int], None] | None = None,
           buffers: buffers_of.Buffers | None = None) -> tuple[int, str]:
    """`execute` short of copying the results to the host (benchmarks time this)."""
    plan, program = compiled.plan, compiled.program
    if choice.engine == "interp":
        return run_steps(plan, progress)
    buffers = buffers or states(compiled)
    if choice.engine == "compiled" and plan.backend.name == "cuda":
        return cuda.run_fused(program, buffers, choice.kernel, plan.backend.launcher, progress)
    if choice.engine == "scan":
        return scan.run_scan(program, buffers, choice.kernel, plan.backend.launcher)
    kernel = native.load(choice.kernel.source, compile_limit(choice.kernel.source))
    return native.run_kernel(program, buffers, choice.kernel, kernel, progress)


def _made(engine: Making, compiled: Compiled) -> tuple[Any, str]:
    """What `engine` makes of this plan's program, or None and the reason it cannot."""
    why_not = engine.supports(compiled.program)
    return (None, why_not) if why_not else (engine.kernel(compiled.program), "")


def _seconds(value: float) -> str:
    return f"{value:.2g} s"
