"""W1-W7 written by hand with `jax.lax.scan`: the functional-scan way, compiled by XLA.

Each workload computes what its spec in workloads/ computes, with the same dtypes and
outputs as `recur.run`, so that cpu.py can check it before timing it. The input arrays
are built with NumPy (as in the numba versions) and handed to a jitted scan.

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


WORKLOADS: dict[str, Workload] = {
    "W1": w1_accumulate,
    "W2": w2_two_taps,
    "W3": w3_pi,
    "W4": w4_taylor,
    "W5": w5_logistic_sweep,
    "W6": w6_rnn,
    "W7": w7_sin_long,
}


def run(name: str, inputs: Inputs) -> dict[str, jax.Array]:
    """One run of workload `name`, waited for (jax dispatches asynchronously)."""
    return jax.block_until_ready(WORKLOADS[name](inputs))


if __name__ == "__main__":
    script_main(WORKLOADS)
