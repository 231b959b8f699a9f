"""W1-W11 written by hand as numba loops: the speed a person gets without recur.

Each workload is what its spec in workloads/ computes, with the same dtypes, the same
order of floating-point operations and the same outputs (names, shapes, `keep`), so
that cpu.py can check it against `recur.run` before timing it. The array building
(arange, linspace) is part of the run, as it is in recur.

The output arrays are made by NumPy and filled by the kernels: NumPy asks for huge
pages for big arrays, and an array made inside the kernel is not, so that the page
faults of a fresh 160 MB output (W5) would take four times the loop itself.

The lane sweeps (W8-W11) walk one lane at a time, time inside, as a person writes them;
a `keep: last N` output is a row per step of the last N, in step order, as recur gives it.
W9's `normal()` is recur's draw, bit for bit (`_philox_words`, `_normal_words`).

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


@njit(cache=True)
def _julia(x0: np.ndarray, y0: np.ndarray, cr: float, ci: float, steps: int,
           zr_out: np.ndarray, zi_out: np.ndarray, count_out: np.ndarray) -> None:
    for row in range(y0.shape[0]):
        for column in range(x0.shape[0]):
            zr, zi, count = x0[column], y0[row], 0
            for _ in range(steps):
                magnitude = zr * zr + zi * zi
                zr, zi, count = (zr if magnitude > 4 else zr * zr - zi * zi + cr,
                                 zi if magnitude > 4 else 2 * zr * zi + ci,
                                 count + (magnitude <= 4))
            zr_out[row, column], zi_out[row, column] = zr, zi
            count_out[row, column] = count


def w8_julia_counter(inputs: Inputs) -> dict[str, np.ndarray]:
    """Julia-set escape counts over a 240 x 360 grid, 1,000 steps, all three kept last."""
    x0, y0 = np.linspace(-1.6, 1.6, 360), np.linspace(-1.0, 1.0, 240)
    shape = (y0.shape[0], x0.shape[0])
    zr, zi, count = np.empty(shape), np.empty(shape), np.empty(shape, dtype=np.int64)
    _julia(x0, y0, -0.8, 0.156, 1000, zr, zi, count)
    return {"zr": zr, "zi": zi, "count": count}


# Philox4x64-10 (Salmon et al., SC 2011) and recur's normal() as docs/spec.md "Random
# numbers" defines them, in uint64 arithmetic: numba has no 128-bit integer, so the high
# word of a product is made from 32-bit halves. Written here, not imported from recur, so
# that the twin checks recur's draws rather than repeating them.
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_MULTIPLIER0, _MULTIPLIER1 = np.uint64(0xD2E7470EE14C6C93), np.uint64(0xCA5A826395121157)
_INCREMENT0, _INCREMENT1 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBB67AE8584CAA73B)
# fdlibm's e_log.c: ln 2 in two parts, and the polynomial Lg1..Lg7
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LG1, _LG2, _LG3, _LG4 = (6.666666666666735130e-01, 3.999999999940941908e-01,
                          2.857142874366239149e-01, 2.222219843214978396e-01)
_LG5, _LG6, _LG7 = 1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01
# musl's __cos.c C1..C6 and __sin.c S1..S6, polynomials on [-pi/4, pi/4]
_C1, _C2 = 4.16666666666666019037e-02, -1.38888888888741095749e-03
_C3, _C4 = 2.48015872894767294178e-05, -2.75573143513906633035e-07
_C5, _C6 = 2.08757232129817482790e-09, -1.13596475577881948265e-11
_S1, _S2 = -1.66666666666666324348e-01, 8.33333333332248946124e-03
_S3, _S4 = -1.98412698298579493134e-04, 2.75573137070700676789e-06
_S5, _S6 = -2.50507602534068634195e-08, 1.58969099521155010221e-10


@njit(cache=True, inline="always")
def _mulhi(a: np.uint64, b: np.uint64) -> np.uint64:
    a_lo, a_hi, b_lo, b_hi = a & _MASK32, a >> _SHIFT32, b & _MASK32, b >> _SHIFT32
    low_high, high_low = a_lo * b_hi, a_hi * b_lo
    middle = ((a_lo * b_lo) >> _SHIFT32) + (low_high & _MASK32) + (high_low & _MASK32)
    return a_hi * b_hi + (low_high >> _SHIFT32) + (high_low >> _SHIFT32) + (middle >> _SHIFT32)


@njit(cache=True, inline="always")
def _log(x: float) -> float:
    """fdlibm's log from + - * / and frexp, as recur computes it."""
    m, e = math.frexp(x)
    if m < 0.70710678118654752440:
        m, e = m * 2.0, e - 1
    k, f = float(e), m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    half_square = 0.5 * f * f
    return k * _LN2_HI - ((half_square - (s * (half_square + r) + k * _LN2_LO)) - f)


@njit(cache=True, inline="always")
def _cos_turns(u: float) -> float:
    """cos(2 pi u) for u in [0, 1): reduced to the nearest quarter, then musl's kernels."""
    q = int(u * 4.0 + 0.5)
    x = (u - q * 0.25) * (2 * math.pi)
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    half = 0.5 * z
    one = 1.0 - half
    cosine = one + (((1.0 - one) - half) + z * r)
    rs = _S2 + z * (_S3 + z * _S4) + z * w * (_S5 + z * _S6)
    sine = x + z * x * (_S1 + z * rs)
    base = sine if q & 1 else cosine
    return -base if (q + 1) & 2 else base


@njit(cache=True, inline="always")
def _philox_words(t: int, element: int, call: int, seed: int) -> tuple[np.uint64, np.uint64]:
    """W0 and W1 of Philox4x64-10 with counter (t, element, call, 0) and key (seed, 0)."""
    c0, c1, c2, c3 = np.uint64(t), np.uint64(element), np.uint64(call), np.uint64(0)
    k0, k1 = np.uint64(seed), np.uint64(0)
    for _ in range(10):
        high0, low0 = _mulhi(_MULTIPLIER0, c0), _MULTIPLIER0 * c0
        high1, low1 = _mulhi(_MULTIPLIER1, c2), _MULTIPLIER1 * c2
        c0, c1, c2, c3 = high1 ^ c1 ^ k0, low1, high0 ^ c3 ^ k1, low0
        k0, k1 = k0 + _INCREMENT0, k1 + _INCREMENT1
    return c0, c1


@njit(cache=True, inline="always")
def _normal_words(w0: np.uint64, w1: np.uint64) -> float:
    """sqrt(-2 log(1 - U1)) cos(2 pi U2), U1 and U2 (W >> 11) 2**-53 of W0 and W1."""
    u1 = float(w0 >> np.uint64(11)) * 2.0 ** -53
    u2 = float(w1 >> np.uint64(11)) * 2.0 ** -53
    return math.sqrt(-2.0 * _log(1.0 - u1)) * _cos_turns(u2)


@njit(cache=True)
def _stochastic(r: np.ndarray, initial: float, sigma: float, seed: int, steps: int,
                out: np.ndarray) -> None:
    first_kept = steps - out.shape[0]
    for lane in range(r.shape[0]):
        x = initial
        for t in range(steps):
            w0, w1 = _philox_words(t, lane, 0, seed)
            x = r[lane] * x * (1 - x) + sigma * _normal_words(w0, w1)
            x = min(max(x, 0.0), 1.0)  # clip(..., 0, 1)
            if t >= first_kept:
                out[t - first_kept, lane] = x


def w9_stochastic_sweep(inputs: Inputs) -> dict[str, np.ndarray]:
    """The logistic map plus 0.001 normal() noise, clipped to [0, 1], over 10,000 lanes,
    2,000 steps, seed 1; the last 100 steps kept."""
    r = np.linspace(2.5, 4.0, 10_000)
    x = np.empty((100, r.shape[0]))
    _stochastic(r, 0.5, 0.001, 1, 2000, x)
    return {"x": x}


@njit(cache=True)
def _sir(infection: np.ndarray, recovery: np.ndarray, dt: float, steps: int,
         s_out: np.ndarray, i_out: np.ndarray, r_out: np.ndarray) -> None:
    first_kept = steps - i_out.shape[0]
    for row in range(infection.shape[0]):
        for column in range(recovery.shape[0]):
            beta, gamma = infection[row], recovery[column]
            s, i, r = 0.999, 0.001, 0.0
            for t in range(steps):
                s, i, r = (s - dt * beta * s * i,
                           i + dt * beta * s * i - dt * gamma * i,
                           r + dt * gamma * i)
                if t >= first_kept:
                    i_out[t - first_kept, row, column] = i
            s_out[row, column], r_out[row, column] = s, r


def w10_sir(inputs: Inputs) -> dict[str, np.ndarray]:
    """A discrete SIR model over a 100 x 100 grid of (beta, gamma), 2,000 steps of 0.1;
    S and R kept last, I the last 100 steps."""
    infection, recovery = np.linspace(0.1, 0.6, 100), np.linspace(0.05, 0.3, 100)
    shape = (infection.shape[0], recovery.shape[0])
    s, r, i = np.empty(shape), np.empty(shape), np.empty((100, *shape))
    _sir(infection, recovery, 0.1, 2000, s, i, r)
    return {"S": s, "I": i, "R": r}


@njit(cache=True)
def _henon(a: np.ndarray, b: float, steps: int, x_out: np.ndarray, y_out: np.ndarray) -> None:
    first_kept = steps - x_out.shape[0]
    for lane in range(a.shape[0]):
        x, y = 0.1, 0.1
        for t in range(steps):
            x, y = 1 - a[lane] * x * x + y, b * x
            if t >= first_kept:
                x_out[t - first_kept, lane] = x
        y_out[lane] = y


def w11_henon_sweep(inputs: Inputs) -> dict[str, np.ndarray]:
    """The Henon map over 10,000 lanes of a, b = 0.3, 3,000 steps; the last 100 x kept,
    y last."""
    a = np.linspace(1.0, 1.4, 10_000)
    x, y = np.empty((100, a.shape[0])), np.empty(a.shape[0])
    _henon(a, 0.3, 3000, x, y)
    return {"x": x, "y": y}


WORKLOADS: dict[str, Workload] = {
    "W1": w1_accumulate,
    "W2": w2_two_taps,
    "W3": w3_pi,
    "W4": w4_taylor,
    "W5": w5_logistic_sweep,
    "W6": w6_rnn,
    "W7": w7_sin_long,
    "W8": w8_julia_counter,
    "W9": w9_stochastic_sweep,
    "W10": w10_sir,
    "W11": w11_henon_sweep,
}


def run(name: str, inputs: Inputs) -> dict[str, np.ndarray]:
    """One run of workload `name`, its outputs as NumPy arrays."""
    return WORKLOADS[name](inputs)


if __name__ == "__main__":
    script_main(WORKLOADS)
