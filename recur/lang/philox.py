"""Philox4x64-10 and the transforms of recur's draws, in array arithmetic.

A draw is a pure function of (seed, call site, step, element): Philox4x64-10 (Salmon
et al., SC 2011) with counter (t, e, c, 0) and key (seed, 0). This module is the
definition the interpreter runs (NumPy or CuPy: any array module with uint64); the C
and CUDA generators write the same operations in their dialects (`C_SOURCE`).

`normal` needs a logarithm and a cosine. Libraries' own differ in the last bit (NumPy
hands `log` to SVML on AVX-512 machines, glibc to its own), so recur computes them
here from + - * / and `frexp` alone (fdlibm's `log`, musl's kernels for `cos` and `sin`),
which every engine and machine rounds alike: the same bits everywhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

MULTIPLIERS = (0xD2E7470EE14C6C93, 0xCA5A826395121157)  # of c0 and c2 in each round
INCREMENTS = (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)  # the key's, after each round
_M0, _M1 = MULTIPLIERS
_W0, _W1 = INCREMENTS
_MASK32, _MASK64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
# Up to this many draws at once, the interpreter computes Philox in Python integers.
FEW = 16
ROUNDS = 10
TWO_POW_MINUS_53 = 2.0 ** -53

# fdlibm's e_log.c
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)
_SQRT_HALF = 0.70710678118654752440
# musl's __cos.c and __sin.c (polynomials on [-pi/4, pi/4])
_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
      -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)
_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
      2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_TWO_PI = 2 * math.pi


def _mulhilo(xp: Any, a: int, b: Any) -> tuple[Any, Any]:
    """The high and low 64 bits of the 128-bit products a * b (a a constant)."""
    constant = xp.uint64(a)
    return _mulhi(xp, b, constant), b * constant


def philox(xp: Any, counter: tuple[Any, Any, Any, Any], key: tuple[int, int]) -> tuple[
        Any, Any, Any, Any]:
    """The four words of Philox4x64-10 for `counter` (uint64 arrays, broadcast
    together) under `key`."""
    c0, c1, c2, c3 = (xp.asarray(word, dtype=xp.uint64) for word in counter)
    k0, k1 = key
    for _ in range(ROUNDS):
        high0, low0 = _mulhilo(xp, _M0, c0)
        high1, low1 = _mulhilo(xp, _M1, c2)
        c0, c1, c2, c3 = (high1 ^ c1 ^ xp.uint64(k0), low1,
                          high0 ^ c3 ^ xp.uint64(k1), low0)
        k0, k1 = (k0 + _W0) & _MASK64, (k1 + _W1) & _MASK64
    return c0, c1, c2, c3


def words(xp: Any, seed: int, site: int, t: int, elements: int, first: int = 0) -> tuple[
        Any, Any]:
    """W0 and W1 of the draws at call site `site`, step `t`, elements `first` on."""
    if xp is numpy and elements <= FEW:
        blocks = numpy.array([_block(t, first + k, site, seed) for k in range(elements)],
                             dtype=numpy.uint64).reshape(elements, 2)
        return blocks[:, 0], blocks[:, 1]
    numbers = xp.arange(first, first + elements, dtype=xp.uint64)
    with numpy.errstate(over="ignore"):
        w0, w1, _, _ = philox(xp, (t, numbers, site, 0), (seed, 0))
    return w0, w1


def _block(t: int, e: int, c: int, seed: int) -> tuple[int, int]:
    """W0 and W1 of one counter in Python integers: a few microseconds, where the array
    rounds cost a few hundred NumPy calls whatever the size (a single state, `until`)."""
    c0, c1, c2, c3, k0, k1 = t & _MASK64, e & _MASK64, c, 0, seed, 0
    for _ in range(ROUNDS):
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = (p1 >> 64) ^ c1 ^ k0, p1 & _MASK64, (p0 >> 64) ^ c3 ^ k1, p0 & _MASK64
        k0, k1 = (k0 + _W0) & _MASK64, (k1 + _W1) & _MASK64
    return c0, c1


def unit(xp: Any, word: Any) -> Any:
    """(W >> 11) * 2**-53: a float64 in [0, 1), every multiple of 2**-53 alike."""
    return (word >> xp.uint64(11)).astype(xp.float64) * TWO_POW_MINUS_53


def log(xp: Any, x: Any) -> Any:
    """The natural logarithm of positive finite float64 `x`, within 1 ulp (fdlibm)."""
    m, e = xp.frexp(x)
    low = m < _SQRT_HALF
    m = xp.where(low, m * 2.0, m)
    k = (e - low).astype(xp.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG[1] + w * (_LG[3] + w * _LG[5]))
    t2 = z * (_LG[0] + w * (_LG[2] + w * (_LG[4] + w * _LG[6])))
    r = t2 + t1
    half_square = 0.5 * f * f
    return k * _LN2_HI - ((half_square - (s * (half_square + r) + k * _LN2_LO)) - f)


def cos_turns(xp: Any, u: Any) -> Any:
    """cos(2 pi u) for float64 `u` in [0, 1), within 1 ulp or so: u is reduced to the
    nearest quarter exactly, the rest by musl's kernels."""
    quarter = xp.floor(u * 4.0 + 0.5)
    x = (u - quarter * 0.25) * _TWO_PI  # in [-pi/4, pi/4]
    z = x * x
    w = z * z
    r = z * (_C[0] + z * (_C[1] + z * _C[2])) + w * w * (_C[3] + z * (_C[4] + z * _C[5]))
    half = 0.5 * z
    one = 1.0 - half
    cosine = one + (((1.0 - one) - half) + z * r)
    rs = _S[1] + z * (_S[2] + z * _S[3]) + z * w * (_S[4] + z * _S[5])
    sine = x + z * x * (_S[0] + z * rs)
    which = quarter.astype(xp.int64) % 4
    return xp.where(which == 0, cosine, xp.where(which == 1, -sine,
                                                 xp.where(which == 2, -cosine, sine)))


def normal(xp: Any, w0: Any, w1: Any) -> Any:
    """sqrt(-2 log(1 - U1)) cos(2 pi U2), U1 from W0 and U2 from W1."""
    return xp.sqrt(-2.0 * log(xp, 1.0 - unit(xp, w0))) * cos_turns(xp, unit(xp, w1))


def integers(xp: Any, w0: Any, low: Any, high: Any) -> Any:
    """low + the high 64 bits of W0 * (high - low), as int64 (high > low)."""
    span = (xp.asarray(high, dtype=xp.int64) - xp.asarray(low, dtype=xp.int64)).astype(
        xp.uint64)
    drawn = xp.asarray(low, dtype=xp.int64).astype(xp.uint64) + _mulhi(xp, w0, span)
    return drawn.view(xp.int64)  # modulo 2**64: in [low, high)


def _mulhi(xp: Any, a: Any, b: Any) -> Any:
    """The high 64 bits of the 128-bit products of uint64 arrays `a` and `b`."""
    mask, shift = xp.uint64(_MASK32), xp.uint64(32)
    a_lo, a_hi, b_lo, b_hi = a & mask, a >> shift, b & mask, b >> shift
    low_high, high_low = a_lo * b_hi, a_hi * b_lo
    middle = ((a_lo * b_lo) >> shift) + (low_high & mask) + (high_low & mask)
    return a_hi * b_hi + (low_high >> shift) + (high_low >> shift) + (middle >> shift)


def _c_constants() -> str:
    lg = "".join(f"#define R_LG{k + 1} {value!r}\n" for k, value in enumerate(_LG))
    cs = "".join(f"#define R_C{k + 1} {value!r}\n" for k, value in enumerate(_C))
    ss = "".join(f"#define R_S{k + 1} {value!r}\n" for k, value in enumerate(_S))
    return lg + cs + ss


# The same in C and CUDA, written against `R_FN`, `r_i64`, `r_fail` and `r_mulhilo` (the
# two words of a 64x64-bit product), which each dialect defines; the operations are
# the ones above, in the same order, so they round alike (no contraction to FMA).
C_SOURCE = _c_constants() + f"""\
typedef unsigned long long r_u64;
R_FN void r_philox(r_u64 t, r_u64 e, r_u64 c, r_u64 seed, r_u64 *w0, r_u64 *w1) {{
    r_u64 c0 = t, c1 = e, c2 = c, c3 = 0, k0 = seed, k1 = 0;
    for (int k = 0; k < {ROUNDS}; k++) {{
        r_u64 high0, high1;
        r_u64 low0 = r_mulhilo({_M0:#x}ULL, c0, &high0);
        r_u64 low1 = r_mulhilo({_M1:#x}ULL, c2, &high1);
        c0 = high1 ^ c1 ^ k0; c1 = low1; c2 = high0 ^ c3 ^ k1; c3 = low0;
        k0 += {_W0:#x}ULL; k1 += {_W1:#x}ULL;
    }}
    *w0 = c0; *w1 = c1;
}}
R_FN double r_unit(r_u64 w) {{ return (double)(w >> 11) * {TWO_POW_MINUS_53!r}; }}
/* frexp of a positive normal number by its bits (r_bits_d: each dialect's), which,
   unlike libm's frexp, lets GCC vectorise a lane loop that draws. */
R_FN double r_frexp_normal(double x, int *e) {{
    unsigned long long b = r_bits_d(x);
    *e = (int)((b >> 52) & 0x7ff) - 1022;
    return r_from_bits_d((b & 0xfffffffffffffULL) | 0x3fe0000000000000ULL);
}}
R_FN double r_log(double x) {{  /* x in [2**-53, 1]: a normal number */
    int e;
    double m = r_frexp_normal(x, &e);
    int low = m < {_SQRT_HALF!r};
    m = m * (1.0 + low); e -= low;  /* doubled where low: exact, without a branch */
    double k = (double)e, f = m - 1.0, s = f / (2.0 + f), z = s * s, w = z * z;
    double t1 = w * (R_LG2 + w * (R_LG4 + w * R_LG6));
    double t2 = z * (R_LG1 + w * (R_LG3 + w * (R_LG5 + w * R_LG7)));
    double r = t2 + t1, half_square = 0.5 * f * f;
    return k * {_LN2_HI!r} - ((half_square - (s * (half_square + r) + k * {_LN2_LO!r})) - f);
}}
R_FN double r_cos_turns(double u) {{
    int q = (int)(u * 4.0 + 0.5);  /* floor: u >= 0 */
    double quarter = (double)q;
    double x = (u - quarter * 0.25) * {_TWO_PI!r}, z = x * x, w = z * z;
    double r = z * (R_C1 + z * (R_C2 + z * R_C3)) + w * w * (R_C4 + z * (R_C5 + z * R_C6));
    double half = 0.5 * z, one = 1.0 - half;
    double cosine = one + (((1.0 - one) - half) + z * r);
    double rs = R_S2 + z * (R_S3 + z * R_S4) + z * w * (R_S5 + z * R_S6);
    double sine = x + z * x * (R_S1 + z * rs);
    double base = (q & 1) ? sine : cosine;  /* cosine, -sine, -cosine, sine */
    return ((q + 1) & 2) ? -base : base;
}}
R_FN double r_normal_words(r_u64 w0, r_u64 w1) {{
    return sqrt(-2.0 * r_log(1.0 - r_unit(w0))) * r_cos_turns(r_unit(w1));
}}
R_FN r_i64 r_integers_word(r_u64 w0, r_i64 low, r_i64 high, r_i64 *st) {{
    if (high <= low) return r_fail(st);
    r_u64 drawn;
    r_mulhilo(w0, (r_u64)high - (r_u64)low, &drawn);
    return (r_i64)((r_u64)low + drawn);
}}
R_FN double r_uniform(r_u64 t, r_u64 e, r_u64 c, r_u64 seed) {{
    r_u64 w0, w1;
    r_philox(t, e, c, seed, &w0, &w1);
    return r_unit(w0);
}}
R_FN double r_normal(r_u64 t, r_u64 e, r_u64 c, r_u64 seed) {{
    r_u64 w0, w1;
    r_philox(t, e, c, seed, &w0, &w1);
    return r_normal_words(w0, w1);
}}
R_FN r_i64 r_integers(r_u64 t, r_u64 e, r_u64 c, r_u64 seed, r_i64 low, r_i64 high,
                      r_i64 *st) {{
    r_u64 w0, w1;
    r_philox(t, e, c, seed, &w0, &w1);
    return r_integers_word(w0, low, high, st);
}}
"""
