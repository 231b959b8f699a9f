"""W1-W7 written by hand as numba loops: the speed a person gets without recur.

Each workload is what its spec in workloads/ computes, with the same dtypes, the same
order of floating-point operations and the same outputs (names, shapes, `keep`), so
that cpu.py can check it against `recur.run` before timing it. The array building
(arange, linspace) is part of the run, as it is in recur.

The output arrays are made by NumPy and filled by the kernels: NumPy asks for huge
pages for big arrays, and an array made inside the kernel is not, so that the page
faults of a fresh 160 MB output (W5) would take four times the loop itself.

    python benchmarks/handwritten_numba.py W3            # one whole run, output discarded
    python benchmarks/handwritten_numba.py W6 --inputs DIR
"""

from __future__ import annotations

import math

import numpy as np
from common import Inputs, Workload, script_main
from numba import njit


@njit(cache=True)
def _accumulate(i: np.ndarray, acc: np.ndarray) -> None:
    previous = 0.0
    for t in range(i.shape[0]):
        previous = previous + i[t]
        acc[t] = previous


def w1_accumulate(inputs: Inputs) -> dict[str, np.ndarray]:
    """acc[t] = acc[t-1] + i[t] over i = arange(n + 1), n = 1,000,000."""
    n = 1_000_000
    acc = np.empty(n + 1)
    _accumulate(np.arange(n + 1), acc)
    return {"acc": acc}


@njit(cache=True)
def _two_taps(x: np.ndarray, older: float, newer: float) -> None:
    for t in range(x.shape[0]):
        value = 0.5 * newer + 0.5 * older
        x[t] = value
        older, newer = newer, value


def w2_two_taps(inputs: Inputs) -> dict[str, np.ndarray]:
    """x[t] = 0.5 x[t-1] + 0.5 x[t-2]; initial [0.0, 1.0] is x[t-2], x[t-1] at t = 0."""
    x = np.empty(1_000_000)
    _two_taps(x, 0.0, 1.0)
    return {"x": x}


@njit(cache=True)
def _pi(xt: np.ndarray, dx: float) -> float:
    total = 0.0
    for t in range(xt.shape[0]):
        total = total + 2.0 * np.sqrt(1 - xt[t] ** 2) * dx
    return total


def w3_pi(inputs: Inputs) -> dict[str, np.ndarray]:
    """The pi integral over a million points; `keep: last` gives a 0-d array."""
    n_interval = 1_000_000
    dx = 2.0 / n_interval
    xt = np.linspace(-1, 1, n_interval)[1:-1]
    return {"pi_sum": np.asarray(_pi(xt, dx))}


@njit(cache=True)
def _taylor(k: np.ndarray, x: float) -> tuple[np.ndarray, float]:
    power = np.empty(k.shape[0])
    current = 1.0
    total = 1.0
    for t in range(k.shape[0]):
        current = current * x
        power[t] = current
        # gamma overflows to inf from 172 on; power / inf is 0, as with SciPy's gamma.
        total = total + current / math.gamma(k[t] + 1)
    return power, total


def w4_taylor(inputs: Inputs) -> dict[str, np.ndarray]:
    """power kept whole, exp_sum kept last, over k = arange(1, 200)."""
    power, total = _taylor(np.arange(1, 200), 1.0)
    return {"power": power, "exp_sum": np.asarray(total)}


@njit(cache=True)
def _logistic(r: np.ndarray, initial: float, out: np.ndarray) -> None:
    steps, lanes = out.shape
    x = np.full(lanes, initial)
    for t in range(steps):
        row = out[t]
        for lane in range(lanes):
            value = x[lane]
            value = r[lane] * value * (1 - value)
            x[lane] = value
            row[lane] = value


def w5_logistic_sweep(inputs: Inputs) -> dict[str, np.ndarray]:
    """10,000 lanes of r, 2,000 steps, the whole trajectory."""
    r = np.linspace(2.5, 4.0, 10_000)
    x = np.empty((2000, r.shape[0]))
    _logistic(r, 0.3, x)
    return {"x": x}


@njit(cache=True)
def _rnn(w: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
    h = np.zeros(u.shape[1])
    for t in range(u.shape[0]):
        h = np.tanh(w @ h + u[t])
        out[t] = h


def w6_rnn(inputs: Inputs) -> dict[str, np.ndarray]:
    """h[t] = tanh(W @ h[t-1] + u[t]), h of 64 zeros at first; W and u from files."""
    u = np.ascontiguousarray(inputs["u"])
    h = np.empty(u.shape)
    _rnn(np.ascontiguousarray(inputs["W"]), u, h)
    return {"h": h}


@njit(cache=True)
def _sin_long(out: np.ndarray, initial: float) -> None:
    x = initial
    for t in range(out.shape[0]):
        x = np.sin(x) + 0.1 * np.cos((t + 1) * 0.001)
        out[t] = x


def w7_sin_long(inputs: Inputs) -> dict[str, np.ndarray]:
    """x[t] = sin(x[t-1]) + 0.1 cos((t + 1) 0.001), a million steps."""
    x = np.empty(1_000_000)
    _sin_long(x, 0.5)
    return {"x": x}


WORKLOADS: dict[str, Workload] = {
    "W1": w1_accumulate,
    "W2": w2_two_taps,
    "W3": w3_pi,
    "W4": w4_taylor,
    "W5": w5_logistic_sweep,
    "W6": w6_rnn,
    "W7": w7_sin_long,
}


def run(name: str, inputs: Inputs) -> dict[str, np.ndarray]:
    """One run of workload `name`, its outputs as NumPy arrays."""
    return WORKLOADS[name](inputs)


if __name__ == "__main__":
    script_main(WORKLOADS)
