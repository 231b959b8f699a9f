"""The C array kernel's draws: the Philox words of a block of lanes at once.

`recur.lang.philox` defines a draw as Philox4x64-10 of the counter (t, e, c, 0), e the
element; the array kernel (`recur.engine.c.generate`) draws for a block of consecutive
elements before its lane loop (`r_draw_words`) and transforms the words in it. Two
things make that faster than a draw per lane, with the same bits:

- In a block, t, c and the key are the same for every element, and so are all but two
  of the products of rounds 1-3 (`r_stream`): 15 products per element, not 20. Round 10
  needs only one of its two for the words recur reads (W0 and W1).
- Where the CPU has AVX-512 IFMA (checked at run time: cpuid), eight elements at a time
  in 512-bit registers, the 64x64-bit products made of 52-bit ones. Integer arithmetic,
  so the words are the same as one at a time, which is the portable path (other CPUs,
  other architectures, and a block's last elements). `RECUR_PORTABLE_DRAWS=1` in the
  environment when a kernel is made keeps it on the portable path (to compare the two).

Both paths are one C text (`_LANES`), written for a type that is a word or a vector of
eight: GCC's and Clang's vector extensions give `^` and `+` on both.
"""

from __future__ import annotations

import os

from recur.lang import philox

BLOCK = 256  # elements drawn at once: two words each, on the kernel's stack
SITES = 16  # an output's random calls drawn in blocks, at most (64 KB of stack); the
# rest draw lane by lane (the same numbers)

# Rounds 2-10 for `groups` x `width` elements, from the block's element `k` on, written
# to w0[k...] and w1[k...]: the groups interleaved, so that the CPU has independent
# products to overlap; what the elements share comes in `s`.
_LANES = """\
{attribute} void {name}(r_u64 *restrict w0, r_u64 *restrict w1, int64_t k,
                       const r_stream *s) {{
    const {word} zero = {{0}};  /* zero + x: x in every element */
    {word} c0[{groups}], c1[{groups}], c2[{groups}], c3[{groups}], high, low;
    for (int g = 0; g < {groups}; g++) {{
        {word} e = s->e + (r_u64)(k + {width} * g) + {offsets};
        low = {mulhilo}(R_M0, e ^ s->a, &high);
        c2[g] = high ^ s->b; c3[g] = low;
        c1[g] = {mulhilo}(R_M1, c2[g], &high);
        c0[g] = high ^ s->d; c2[g] = s->f ^ c3[g]; c3[g] = zero + s->g;
    }}
    for (int r = 3; r < {last}; r++) {{
        for (int g = 0; g < {groups}; g++) {{
            {word} high0, high1;
            {word} low0 = {mulhilo}(R_M0, c0[g], &high0), low1 = {mulhilo}(R_M1, c2[g], &high1);
            c0[g] = high1 ^ c1[g] ^ s->k0[r]; c1[g] = low1;
            c2[g] = high0 ^ c3[g] ^ s->k1[r]; c3[g] = low0;
        }}
    }}
    for (int g = 0; g < {groups}; g++) {{
        low = {mulhilo}(R_M1, c2[g], &high);
        {word} word0 = high ^ c1[g] ^ s->k0[{last}];
        __builtin_memcpy(w0 + k + {width} * g, &word0, sizeof word0);
        __builtin_memcpy(w1 + k + {width} * g, &low, sizeof low);
    }}
}}
"""

_STREAM = f"""\
#define R_DRAW_BLOCK {BLOCK}
#define R_M0 {philox.MULTIPLIERS[0]:#x}ULL
#define R_M1 {philox.MULTIPLIERS[1]:#x}ULL
/* What the elements of a block share: rounds 1-3 of Philox for counters (t, e, c, 0)
   multiply t, c and values made of them alone, except M0 * c0 in round 2 (c0 = a ^ e)
   and M1 * c2 in round 3 (c2 = hi(M0 * c0) ^ b); after round 3, c0 = hi(M1 * c2) ^ d,
   c1 = lo(M1 * c2), c2 = f ^ lo(M0 * c0), c3 = g. k0 and k1: the key of each round. */
typedef struct {{ r_u64 e, a, b, d, f, g, k0[{philox.ROUNDS}], k1[{philox.ROUNDS}]; }} r_stream;
R_FN void r_stream_at(r_stream *s, r_u64 t, r_u64 e, r_u64 c, r_u64 seed) {{
    for (int r = 0; r < {philox.ROUNDS}; r++) {{
        s->k0[r] = seed + r * {philox.INCREMENTS[0]:#x}ULL;
        s->k1[r] = r * {philox.INCREMENTS[1]:#x}ULL;
    }}
    r_u64 high_t, high_c, high2, high3;
    r_u64 low_t = r_mulhilo(R_M0, t, &high_t), low_c = r_mulhilo(R_M1, c, &high_c);
    r_u64 low2 = r_mulhilo(R_M1, high_t ^ s->k1[0], &high2);
    r_u64 low3 = r_mulhilo(R_M0, high2 ^ low_c ^ s->k0[1], &high3);
    s->e = e; s->a = high_c ^ s->k0[0]; s->b = low_t ^ s->k1[1];
    s->d = low2 ^ s->k0[2]; s->f = high3 ^ s->k1[2]; s->g = low3;
}}
"""

_GROUPS = 4  # vectors of 8 interleaved: 2 gave 211 million uniforms a second, 4 237, 8 236
_ONE = _LANES.format(attribute="R_FN", name="r_lanes_1", word="r_u64", groups=1, width=1,
                     offsets="0", mulhilo="r_mulhilo", last=philox.ROUNDS - 1)

# AVX-512 IFMA multiplies the low 52 bits of two words: a = a0 + a1 2**52 and m = m0 + m1
# 2**52 (a1, m1 < 2**12) give a m = x0 + x1 2**52 + x2 2**104, x0 < 2**52 and x1, x2 sums
# of the partial products' halves, none of which carries out of 64 bits.
_VECTOR = f"""\
#if defined(__x86_64__) && !defined(R_PORTABLE_DRAWS) \\
    && (defined(__clang__) ? __clang_major__ >= 8 : __GNUC__ >= 8)
#define R_VECTOR_DRAWS 1
#include <immintrin.h>
#define R_AVX512 static inline __attribute__((target("avx512f,avx512ifma")))
typedef r_u64 r_v8 __attribute__((vector_size(64)));
#define R_OFFSETS8 ((r_v8){{0, 1, 2, 3, 4, 5, 6, 7}})
R_AVX512 r_v8 r_mulhilo8(r_u64 m, r_v8 a, r_v8 *high) {{
    const __m512i zero = _mm512_setzero_si512(), x = (__m512i)a;
    const __m512i m0 = _mm512_set1_epi64((long long)(m & 0xfffffffffffffULL));
    const __m512i m1 = _mm512_set1_epi64((long long)(m >> 52)), a1 = _mm512_srli_epi64(x, 52);
    __m512i x0 = _mm512_madd52lo_epu64(zero, x, m0);
    __m512i x1 = _mm512_madd52hi_epu64(zero, x, m0);
    x1 = _mm512_madd52lo_epu64(x1, x, m1);
    x1 = _mm512_madd52lo_epu64(x1, a1, m0);
    __m512i x2 = _mm512_madd52hi_epu64(zero, x, m1);
    x2 = _mm512_madd52hi_epu64(x2, a1, m0);
    x2 = _mm512_madd52lo_epu64(x2, a1, m1);
    *high = (r_v8)_mm512_add_epi64(_mm512_srli_epi64(x1, 12), _mm512_slli_epi64(x2, 40));
    return (r_v8)_mm512_or_si512(x0, _mm512_slli_epi64(x1, 52));
}}
{_LANES.format(attribute="R_AVX512", name="r_lanes_8", word="r_v8", groups=_GROUPS, width=8,
               offsets="R_OFFSETS8", mulhilo="r_mulhilo8", last=philox.ROUNDS - 1)}\
/* Whether the CPU and the operating system run AVX-512 IFMA (the OS saves the mask and
   512-bit registers: XCR0 bits 1, 2 and 5-7). */
static int r_has_avx512ifma(void) {{
    unsigned a, b, c, d, low, high;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    if (a < 7) return 0;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 27))) return 0;  /* OSXSAVE */
    __asm__("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    if ((low & 0xe6) != 0xe6) return 0;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    return (b & (1u << 16)) && (b & (1u << 21));  /* AVX512F, AVX512IFMA */
}}
__attribute__((noinline, target("avx512f,avx512ifma")))
static int64_t r_vector_words(r_u64 *w0, r_u64 *w1, int64_t n, const r_stream *s) {{
    int64_t k = 0;
    for (; k + {8 * _GROUPS} <= n; k += {8 * _GROUPS}) r_lanes_8(w0, w1, k, s);
    return k;
}}
static int r_vector_usable = -1;  /* not known yet */
static int r_vector_here(void) {{
    int usable = __atomic_load_n(&r_vector_usable, __ATOMIC_RELAXED);
    if (usable < 0) {{
        usable = r_has_avx512ifma();
        __atomic_store_n(&r_vector_usable, usable, __ATOMIC_RELAXED);
    }}
    return usable;
}}
#else
#define r_vector_here() 0
#define r_vector_words(w0, w1, n, s) 0
#endif
"""

# `r_draw_words(w0, w1, n, t, e, c, seed)`: W0 and W1 of Philox4x64-10 for the counters
# (t, e + k, c, 0), key (seed, 0), into w0[k] and w1[k], k < n.
_DRAW_WORDS = """\
R_FN void r_draw_words(r_u64 *w0, r_u64 *w1, int64_t n, r_u64 t, r_u64 e, r_u64 c,
                       r_u64 seed) {
    r_stream s;
    r_stream_at(&s, t, e, c, seed);
    int64_t k = r_vector_here() ? r_vector_words(w0, w1, n, &s) : 0;
    for (; k < n; k++) r_lanes_1(w0, w1, k, &s);
}
"""


def c_source() -> str:
    """`r_draw_words` and what it needs (after `recur.lang.philox.C_SOURCE`), on the
    portable path alone where `RECUR_PORTABLE_DRAWS` is set (and not 0)."""
    portable = os.environ.get("RECUR_PORTABLE_DRAWS", "0") not in ("", "0")
    return ("#define R_PORTABLE_DRAWS 1\n" if portable else "") + _STREAM + _ONE + _VECTOR + \
        _DRAW_WORDS
