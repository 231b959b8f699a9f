"""Math functions the C kernels compute themselves instead of calling libm.

libm's `tanh` is a call per lane that the compiler cannot vectorise, and it was most
of W6's time (h = tanh(W @ h + u)). `r_tanh_d` is a tanh the compiler vectorises: no
branch and no call, only + - * / and integer operations on the bits, so the lanes of a
vector of any width and a scalar remainder compute the same operations and get the
same bits (IEEE arithmetic, no contraction: `recur.engine.c.native.FLAGS`). Its
selections are masks made by integer arithmetic: GCC turns a conditional into a branch
it will not vectorise (it must not speculate floating-point operations that may trap),
and SSE2, x86-64's baseline, has no 64-bit comparison to make a mask from.

For |x| < 0.625, x + x s P(s) / Q(s) with s = x * x (Cephes' rational approximation);
above, 1 - 2 / (exp(2|x|) + 1) with fdlibm's exp (Cody-Waite reduction by ln 2, its
rational remainder, 2^k put into the exponent); from 0x1.2fd86fe9a361bp+4 (18.99) on,
exactly 1, where NumPy's own tanh is 1 (a correctly rounded tanh is 1 - 2^-53 up to
19.06); the sign is x's, so -0.0 stays -0.0; NaN gives NaN and +-inf give +-1.
Measured over a million points against an 80-bit reference: within 1.3 ulp; within
2 ulp of NumPy's (docs/performance.md). The CUDA dialect keeps CUDA's own tanh.

This module must not import the code generators: they import it.
"""

from __future__ import annotations

from typing import TypeAlias

TANH = """\
/* r_bits_d and r_from_bits_d: the dialect's (recur.engine.c.generate's C_HEADER). */
/* All ones where a < b, else 0, for the bits of doubles >= +0.0 (NaN above all). */
R_FN uint64_t r_below_u(uint64_t a, uint64_t b) { return -((a - b) >> 63); }
R_FN uint64_t r_pick_u(uint64_t mask, uint64_t yes, uint64_t no)
{ return (yes & mask) | (no & ~mask); }
R_FN double r_tanh_d(double x) {
    const uint64_t sign = r_bits_d(x) & 0x8000000000000000ULL, bits = r_bits_d(x) ^ sign;
    const uint64_t small = r_below_u(bits, 0x3fe4000000000000ULL); /* |x| < 0.625 */
    const uint64_t below_one = r_below_u(bits, 0x4032fd86fe9a361bULL); /* tanh < 1 */
    const double a = r_from_bits_d(bits), s = a * a;
    const double p = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s
                     - 1.61468768441708447952e3;
    const double q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s
                     + 4.84406305325125486048e3;
    const double near_zero = a + a * (s * (p / q));
    /* exp(y), y = 2|x| (at most 2 * 18.99): y = k ln2 + r, |r| <= ln2 / 2 */
    const double y = 2 * r_from_bits_d(r_pick_u(below_one, bits, 0x4032fd86fe9a361bULL));
    const double shifted = y * 1.44269504088896338700e+00 + 0x1.8p52; /* k in its low bits */
    const double k = shifted - 0x1.8p52;
    const double hi = y - k * 6.93147180369123816490e-01, lo = k * 1.90821492927058770002e-10;
    const double r = hi - lo, t = r * r;
    const double c = r - t * (1.66666666666666019037e-01 + t * (-2.77777777770155933842e-03
                     + t * (6.61375632143793436117e-05 + t * (-1.65339022054652515390e-06
                     + t * 4.13813679705723846039e-08))));
    const double e = r_from_bits_d(r_bits_d(1 - ((lo - (r * c) / (2 - c)) - hi))
                                   + (r_bits_d(shifted) << 52));
    const double far = 1 - 2 / (e + 1);
    uint64_t out = r_pick_u(small, r_bits_d(near_zero),
                            r_pick_u(below_one, r_bits_d(far), 0x3ff0000000000000ULL));
    out = r_pick_u(r_below_u(0x7ff0000000000000ULL, bits), bits, out); /* NaN */
    return r_from_bits_d(out | sign);
}
"""

# (function, dtype) -> the C function of one argument the kernel calls, and its source.
Owned: TypeAlias = dict[tuple[str, str], tuple[str, str]]
FUNCTIONS: Owned = {("tanh", "float64"): ("r_tanh_d", TANH)}
