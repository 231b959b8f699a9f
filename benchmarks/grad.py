"""Gradients through time: `recur.grad` against JAX and PyTensor, and truncation against
PyTensor's `truncate_gradient`.

    python benchmarks/grad.py            # what is installed of jax and pytensor is compared

1. W6's RNN (64 hidden units, 20,000 steps, float64; inputs as make_inputs.py makes them):
   the gradient of the sum of h by W. recur in process on each engine (kernels built
   once before timing), `jax.jit(jax.grad(...))` of `lax.scan` on the CPU, PyTensor's
   `grad` of `scan` (compiled function). Best of 3 runs each; the gradients must agree.
2. Theano's truncate_gradient: one output read one step back, with a sequence, for
   K = -1, 0, 1, 2, 5, 6: recur's gradients beside PyTensor's.
3. A scalar recurrence of 10**8 steps (`python benchmarks/grad.py long [STEPS]`): the
   gradient with automatic checkpointing, its peak RSS and time, against the forward
   run's, each in a fresh process.
Timings go to docs/gradients.md; nothing here is asserted by time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import recur

ROOT = Path(__file__).resolve().parents[1]
W6 = ROOT / "benchmarks" / "workloads" / "w6_rnn.yaml"


def best_of(call: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    call()  # warm: kernels built, jit compiled
    best, value = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - started)
    return best, value


def w6_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((64, 64)) * (0.5 / np.sqrt(64)),
            rng.standard_normal((20_000, 64)) * 0.5)


def jax_gradient(W: np.ndarray, u: np.ndarray) -> Callable[[], Any] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def objective(W: Any, u: Any) -> Any:
        def step(h: Any, row: Any) -> tuple[Any, Any]:
            h = jnp.tanh(W @ h + row)
            return h, h
        return jax.lax.scan(step, jnp.zeros(64), u)[1].sum()

    gradient = jax.jit(jax.grad(objective))
    return lambda: np.asarray(gradient(W, u).block_until_ready())


def pytensor_gradient(W: np.ndarray, u: np.ndarray) -> Callable[[], Any] | None:
    try:
        import pytensor
        import pytensor.tensor as pt
    except ImportError:
        return None
    w, rows = pt.dmatrix("W"), pt.dmatrix("u")
    hs = pytensor.scan(lambda row, h, w: pt.tanh(pt.dot(w, h) + row), sequences=[rows],
                       outputs_info=[pt.zeros(64, dtype="float64")], non_sequences=[w],
                       return_updates=False)
    function = pytensor.function([w, rows], pytensor.grad(hs.sum(), w))
    return lambda: function(W, u)


def rnn() -> None:
    W, u = w6_inputs()
    spec = recur.load(W6)
    inputs = {"W": W, "u": u}
    rows = []
    reference = None
    for engine in ("compiled", "interp"):
        seconds, result = best_of(lambda engine=engine: recur.grad(
            spec, of="h", wrt=["W"], inputs=inputs, engine=engine))
        rows.append((f"recur grad, {engine}", seconds))
        reference = result["W"] if reference is None else reference
    forward, _ = best_of(lambda: recur.run(spec, inputs=inputs, last=True))
    rows.append(("recur run (forward, last state)", forward))
    for name, make in (("jax.grad of lax.scan (jit)", jax_gradient),
                       ("pytensor grad of scan", pytensor_gradient)):
        call = make(W, u)
        if call is None:
            rows.append((f"{name}: not installed", float("nan")))
            continue
        seconds, value = best_of(call)
        assert reference is not None
        difference = float(np.max(np.abs(value - reference)) / np.max(np.abs(reference)))
        rows.append((f"{name} (max rel. difference {difference:.1e})", seconds))
    print("W6 RNN, 64 units x 20,000 steps, d sum(h) / dW")
    for name, seconds in rows:
        print(f"  {name:60s} {seconds:8.4f} s")


def truncation() -> None:
    u = np.array([0.1, -0.2, 0.3, 0.4, -0.5])
    text = ("params:\n  a: 0.5\n  x0: 0.3\nsequences:\n  u: input\noutputs:\n  x:\n"
            "    initial: x0\n    step: a * x[t-1] + sin(x[t-1]) * u\n")
    try:
        import pytensor
        import pytensor.tensor as pt
    except ImportError:
        pytensor = None
    print("truncate_gradient: K, then d/da, d/dx0, d/du (recur, then PyTensor)")
    for keep in (-1, 0, 1, 2, 5, 6):
        got = recur.grad(text, of="x", wrt=["a", "x", "u"], truncate=keep, inputs={"u": u})
        print(f"  {keep:2d} recur    {float(got['a']):.10f} {float(got['x']):.10f} "
              f"{np.round(got['u'], 10).tolist()}")
        if pytensor is None:
            continue
        a, x0, rows = pt.dscalar(), pt.dscalar(), pt.dvector()
        xs = pytensor.scan(lambda row, x, a: a * x + pt.sin(x) * row, sequences=[rows],
                           outputs_info=[x0], non_sequences=[a], truncate_gradient=keep,
                           return_updates=False)
        d_a, d_x0, d_u = pytensor.function([a, x0, rows],
                                           pytensor.grad(xs.sum(), [a, x0, rows]))(0.5, 0.3, u)
        print(f"  {keep:2d} pytensor {float(d_a):.10f} {float(d_x0):.10f} "
              f"{np.round(d_u, 10).tolist()}")


# J is the sum over every step: with only the last state, the adjoint of this
# contracting map decays into subnormal numbers and stays at the smallest one (the
# factor rounds it back up), which the CPU computes some 40 times slower (XLA flushes
# them to zero; recur keeps IEEE arithmetic, the same bits on every engine).
LONG = ("params:\n  a: 2.5\n  c: 0.01\noutputs:\n  x:\n    initial: 0.5\n"
        "    step: a * x[t-1] * (1 - x[t-1]) + c\n")
MEASURE = """
import json, resource, sys, time
import recur
spec = recur.load(sys.argv[1])
started = time.perf_counter()
if sys.argv[2] == "grad":
    result = recur.grad(spec, of="x", wrt=["a", "x"], steps=int(sys.argv[3]))
    plan = result.plan.words()
else:
    result = recur.run(spec, steps=int(sys.argv[3]), last=True)
    plan = ""
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak": peak, "plan": plan}))
"""


def long_scalar(steps: int) -> None:
    """Each in its own process, so that peak RSS is its own; the first forward run builds
    the kernels, which are cached on disk for the runs timed after it."""
    spec = Path(ROOT / "benchmarks" / "results" / "long_scalar.yaml")
    spec.write_text(LONG)
    try:
        def measure(kind: str) -> dict[str, Any]:
            done = subprocess.run([sys.executable, "-c", MEASURE, str(spec), kind, str(steps)],
                                  check=True, capture_output=True, text=True)
            return json.loads(done.stdout)

        measure("run"), measure("grad")  # kernels built and cached
        forward, gradient = measure("run"), measure("grad")
    finally:
        spec.unlink()
    print(f"a scalar recurrence of {steps:,} steps (x = a x (1 - x) + c; the gradient of "
          "the sum of x over every step by a and x0, the forward run keeping the last state)")
    print(f"  forward run      {forward['seconds']:8.2f} s   peak RSS "
          f"{forward['peak'] / 2**20:7.1f} MB")
    print(f"  gradient         {gradient['seconds']:8.2f} s   peak RSS "
          f"{gradient['peak'] / 2**20:7.1f} MB   ({gradient['seconds'] / forward['seconds']:.1f}"
          f"x the forward run)")
    print(f"  forward states: {gradient['plan']}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["long"]:
        long_scalar(int(sys.argv[2]) if len(sys.argv) > 2 else 10**8)
    else:
        rnn()
        truncation()
