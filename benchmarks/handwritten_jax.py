"""W1-W7 and W10 written by hand with `jax.lax.scan`: the functional-scan way, by XLA.

Each workload computes what its spec in workloads/ computes, with the same dtypes and
outputs as `recur.run`, so that cpu.py can check it before timing it. The input arrays
are built with NumPy (as in the numba versions) and handed to a jitted scan.

W8 and W11 have no twin here: XLA fuses a multiply and the add after it into one FMA
(neither `XLA_FLAGS=--xla_cpu_enable_fast_math=false` nor `lax.optimization_barrier`
around the product stopped it), a different rounding, which their chaotic maps grow
from one ulp to whole units over the run (75% of W11's kept x, 10% of W8's final zr
differed), so the check before timing refuses them. W9 would need recur's Philox draws
ported again; handwritten_numba.py has them.

    python benchmarks/handwritten_jax.py W3            # one whole run, output discarded
    python benchmarks/handwritten_jax.py W6 --inputs DIR
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from common import Inputs, Workload, script_main
from jax import lax
from jax.scipy.special import gamma

# Every W workload is float64 (W1 also reads an int64 sequence); without x64, jax would
# quietly compute them in float32 and int32.
jax.config.update("jax_enable_x64", True)

Carry = Any


@jax.jit
def _accumulate(i: jax.Array) -> jax.Array:
    def step(acc: jax.Array, i_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        acc = acc + i_t
        return acc, acc

    return lax.scan(step, jnp.float64(0.0), i)[1]


def w1_accumulate(inputs: Inputs) -> dict[str, jax.Array]:
    """acc[t] = acc[t-1] + i[t] over i = arange(n + 1), n = 1,000,000."""
    n = 1_000_000
    return {"acc": _accumulate(np.arange(n + 1))}


@partial(jax.jit, static_argnums=0)
def _two_taps(steps: int) -> jax.Array:
    def step(carry: Carry, _: None) -> tuple[Carry, jax.Array]:
        older, newer = carry
        value = 0.5 * newer + 0.5 * older
        return (newer, value), value

    initial = (jnp.float64(0.0), jnp.float64(1.0))  # x[t-2], x[t-1] at t = 0
    return lax.scan(step, initial, None, length=steps)[1]


def w2_two_taps(inputs: Inputs) -> dict[str, jax.Array]:
    """x[t] = 0.5 x[t-1] + 0.5 x[t-2] from [0.0, 1.0]."""
    return {"x": _two_taps(1_000_000)}


@jax.jit
def _pi(xt: jax.Array, dx: float) -> jax.Array:
    def step(total: jax.Array, x: jax.Array) -> tuple[jax.Array, None]:
        return total + 2.0 * jnp.sqrt(1 - x**2) * dx, None

    return lax.scan(step, jnp.float64(0.0), xt)[0]


def w3_pi(inputs: Inputs) -> dict[str, jax.Array]:
    """The pi integral over a million points; `keep: last` gives a 0-d array."""
    n_interval = 1_000_000
    return {"pi_sum": _pi(np.linspace(-1, 1, n_interval)[1:-1], 2.0 / n_interval)}


@jax.jit
def _taylor(k: jax.Array, x: float) -> tuple[jax.Array, jax.Array]:
    def step(carry: Carry, k_t: jax.Array) -> tuple[Carry, jax.Array]:
        power, total = carry
        power = power * x
        return (power, total + power / gamma((k_t + 1).astype(jnp.float64))), power

    (_, total), power = lax.scan(step, (jnp.float64(1.0), jnp.float64(1.0)), k)
    return power, total


def w4_taylor(inputs: Inputs) -> dict[str, jax.Array]:
    """power kept whole, exp_sum kept last, over k = arange(1, 200)."""
    power, total = _taylor(np.arange(1, 200), 1.0)
    return {"power": power, "exp_sum": total}


@partial(jax.jit, static_argnums=2)
def _logistic(r: jax.Array, initial: float, steps: int) -> jax.Array:
    def step(x: jax.Array, _: None) -> tuple[jax.Array, jax.Array]:
        x = r * x * (1 - x)
        return x, x

    return lax.scan(step, jnp.full(r.shape, initial), None, length=steps)[1]


def w5_logistic_sweep(inputs: Inputs) -> dict[str, jax.Array]:
    """10,000 lanes of r, 2,000 steps, the whole trajectory."""
    return {"x": _logistic(np.linspace(2.5, 4.0, 10_000), 0.3, 2000)}


@jax.jit
def _rnn(w: jax.Array, u: jax.Array) -> jax.Array:
    def step(h: jax.Array, u_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.tanh(w @ h + u_t)
        return h, h

    return lax.scan(step, jnp.zeros(u.shape[1]), u)[1]


def w6_rnn(inputs: Inputs) -> dict[str, jax.Array]:
    """h[t] = tanh(W @ h[t-1] + u[t]), h of 64 zeros at first; W and u from files."""
    return {"h": _rnn(inputs["W"], inputs["u"])}


@partial(jax.jit, static_argnums=0)
def _sin_long(steps: int, initial: float) -> jax.Array:
    def step(x: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = jnp.sin(x) + 0.1 * jnp.cos((t + 1) * 0.001)
        return x, x

    return lax.scan(step, jnp.float64(initial), jnp.arange(steps))[1]


def w7_sin_long(inputs: Inputs) -> dict[str, jax.Array]:
    """x[t] = sin(x[t-1]) + 0.1 cos((t + 1) 0.001), a million steps."""
    return {"x": _sin_long(1_000_000, 0.5)}


def _last(step: Any, carry: Carry, steps: int, kept: int) -> tuple[Carry, jax.Array]:
    """`steps` of `step`, keeping what it emits on the last `kept` (a scan without output,
    then one with): `keep: last N` without the whole trajectory in memory."""
    carry = lax.scan(lambda c, _: (step(c, None)[0], None), carry, None,
                     length=steps - kept)[0]
    return lax.scan(step, carry, None, length=kept)


@partial(jax.jit, static_argnums=(3, 4))
def _sir(infection: jax.Array, recovery: jax.Array, dt: float, steps: int,
         kept: int) -> tuple[Carry, jax.Array]:
    def step(carry: Carry, _: None) -> tuple[Carry, jax.Array]:
        s, i, r = carry
        i_new = i + dt * infection * s * i - dt * recovery * i
        return (s - dt * infection * s * i, i_new, r + dt * recovery * i), i_new

    shape = jnp.broadcast_shapes(infection.shape, recovery.shape)
    initial = (jnp.full(shape, 0.999), jnp.full(shape, 0.001), jnp.zeros(shape))
    return _last(step, initial, steps, kept)


def w10_sir(inputs: Inputs) -> dict[str, jax.Array]:
    """A discrete SIR model over a 100 x 100 grid of (beta, gamma), 2,000 steps of 0.1;
    S and R kept last, I the last 100 steps."""
    infection = np.linspace(0.1, 0.6, 100).reshape(100, 1)
    recovery = np.linspace(0.05, 0.3, 100).reshape(1, 100)
    (s, _, r), i = _sir(infection, recovery, 0.1, 2000, 100)
    return {"S": s, "I": i, "R": r}

WORKLOADS: dict[str, Workload] = {
    "W1": w1_accumulate,
    "W2": w2_two_taps,
    "W3": w3_pi,
    "W4": w4_taylor,
    "W5": w5_logistic_sweep,
    "W6": w6_rnn,
    "W7": w7_sin_long,
    "W10": w10_sir,
}


def run(name: str, inputs: Inputs) -> dict[str, jax.Array]:
    """One run of workload `name`, waited for (jax dispatches asynchronously)."""
    return jax.block_until_ready(WORKLOADS[name](inputs))


if __name__ == "__main__":
    script_main(WORKLOADS)
