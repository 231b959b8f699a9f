"""The numba twin of recur's draws (benchmarks/handwritten_numba.py, W9's `normal()`):
its Philox words against NumPy's own Philox, its normals against recur's, bit for bit.

cpu.py times W9's twin only where it gives recur's arrays; this checks the draws it is
made of on counters the benchmark never reaches (large steps, elements and seeds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy
import pytest

from recur.lang import philox

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import handwritten_numba as twin

# (t, element, call, seed): small, and with every word's high bits set
COUNTERS = [(1, 0, 0, 1), (5, 7, 2, 1), (1999, 9999, 0, 1), (2**63 + 5, 2**64 - 1, 3, 2**64 - 1),
            (123456789, 2**40 + 3, 17, 0xDEADBEEFCAFEF00D)]


@pytest.mark.parametrize(("t", "element", "call", "seed"), COUNTERS)
def test_the_words_are_numpys_philox(t: int, element: int, call: int, seed: int) -> None:
    # NumPy's Philox adds one to the counter before a block: start it one step earlier.
    numpys = numpy.random.Philox(counter=numpy.array([t - 1, element, call, 0], numpy.uint64),
                                 key=numpy.array([seed, 0], numpy.uint64))
    expected = [int(word) for word in numpys.random_raw(2)]
    words = twin._philox_words(*(numpy.uint64(n) for n in (t, element, call, seed)))
    assert [int(word) for word in words] == expected


def test_the_normals_are_recurs_bit_for_bit() -> None:
    rng = numpy.random.default_rng(3)
    w0, w1 = (rng.integers(0, 2**64, 20_000, dtype=numpy.uint64, endpoint=False)
              for _ in range(2))
    # The ends of the range: U1 = 0 and the largest, U2 at each quarter turn.
    w0[:4] = [0, 2**64 - 1, 2**63, 1 << 11]
    w1[:4] = [0, 2**62, 2**63, 3 * 2**62]
    expected = philox.normal(numpy, w0, w1)
    actual = numpy.array([twin._normal_words(a, b) for a, b in zip(w0, w1, strict=True)])
    assert actual.view(numpy.uint64).tolist() == expected.view(numpy.uint64).tolist()
