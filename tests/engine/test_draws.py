"""The C array kernel's draws a block of lanes at a time (`recur.engine.c.draws`): the
vector path (AVX-512 IFMA, where the CPU has it) and the portable one give the words of
an independent Philox4x64-10, and runs give the same bits on either path."""

from __future__ import annotations

import ctypes
import platform
from dataclasses import replace
from pathlib import Path

import numpy
import pytest
from test_random import MASK, reference

import recur
from recur import api
from recur.engine.c import draws, generate, native
from recur.engine.plan import run_on
from recur.engine.registry import choose
from recur.lang import philox

# A kernel that fills args[0] (two rows of n words) with r_draw_words for the counter in
# args[1] (t, e, c, seed), and says in status[0] whether it took the vector path.
_WORDS_KERNEL = """\
int64_t kernel(int64_t t0, int64_t t1, int64_t *status, int64_t steps, void **args,
               const int64_t *dims) {
    (void)t0; (void)t1; (void)steps;
    r_u64 *words = (r_u64 *)args[0];
    const r_u64 *counter = (const r_u64 *)args[1];
    status[0] = r_vector_here();
    r_draw_words(words, words + dims[1], dims[1], counter[0], counter[1], counter[2],
                 counter[3]);
    return 0;
}
"""


def _drawn_words(t: int, e: int, c: int, seed: int, n: int) -> tuple[numpy.ndarray, bool]:
    """W0 and W1 of elements e.. e + n - 1 as the kernel draws them, and whether it took
    the vector path."""
    source = (generate.PRELUDE + generate.C_MULHILO + philox.C_SOURCE + draws.c_source()
              + _WORDS_KERNEL)
    function = native.load(source)
    words = numpy.zeros((2, n), dtype=numpy.uint64)
    counter = numpy.array([t, e, c, seed], dtype=numpy.uint64)
    status = numpy.zeros(2, dtype=numpy.int64)
    pointers = (ctypes.c_void_p * 2)(words.ctypes.data, counter.ctypes.data)
    dims = numpy.array([*words.shape, *counter.shape, 1], dtype=numpy.int64)
    function(0, 0, status.ctypes.data, 0, ctypes.addressof(pointers), dims.ctypes.data)
    return words, bool(status[0])


def _cpu_has_avx512ifma() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not cpuinfo.exists():
        return False
    flags = next((line for line in cpuinfo.read_text().splitlines()
                  if line.startswith("flags")), "").split()
    return "avx512f" in flags and "avx512ifma" in flags


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize(("t", "e", "c", "seed", "n"), [
    (0, 0, 0, 0, 300),  # a vector's groups and a tail
    (7, 3, 1, 42, 31),  # fewer than a group: all portable
    (2**40 + 3, MASK - 40, 5, MASK, 77),  # the element wraps around 2**64
    (MASK, 12345, 2**63, 99, 64),
])
def test_the_words_are_philoxs_on_either_path(t: int, e: int, c: int, seed: int, n: int,
                                              portable: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECUR_PORTABLE_DRAWS", "1" if portable else "0")
    words, vector = _drawn_words(t, e, c, seed, n)
    assert vector == (not portable and _cpu_has_avx512ifma())
    for k in range(n):
        want = reference((t, (e + k) & MASK, c, 0), (seed, 0))
        assert (int(words[0, k]), int(words[1, k])) == (want[0], want[1]), k


SWEEP = """
params:
  r: linspace(0.1, 0.9, 1000)
outputs:
  x:
    initial: 0.0
    step: r * x[t-1] + normal(0, 0.5)
  k:
    initial: 0
    dtype: int64
    step: k[t-1] + integers(-3, 4)
  u:
    step: uniform(-1, 1) * r
steps: 40
"""


@pytest.mark.parametrize("first", [0, 123])
def test_a_run_gives_the_same_bits_on_either_path(first: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """1000 lanes: three blocks and a part; a sweep's chunk from lane 123 draws as the
    whole does (`Program.first_lane`)."""
    spec = recur.load(SWEEP)
    program = replace(api.prepare(spec, seed=5).program, first_lane=first)
    want = run_on(choose(program, "interp").engine, program, api.get_backend("cpu")).arrays
    for portable in ("0", "1"):
        monkeypatch.setenv("RECUR_PORTABLE_DRAWS", portable)
        # a program that does not run like the last (`Program.runs_like`): the engine
        # makes its kernel anew, under this setting
        fresh = replace(program, outputs=tuple(list(program.outputs)))
        source = choose(fresh, "compiled").engine.kernel(fresh).source
        assert ("#define R_PORTABLE_DRAWS" in source) == (portable == "1")
        assert "r_draw_words(" in source
        got = run_on(choose(fresh, "compiled").engine, fresh, api.get_backend("cpu")).arrays
        for name in want:
            numpy.testing.assert_array_equal(got[name], want[name])


def test_random_calls_beyond_those_drawn_in_blocks_draw_lane_by_lane() -> None:
    """An output's first `draws.SITES` calls are drawn in blocks, the rest per lane."""
    calls = ["uniform()", "normal()", "integers(0, 5)"] * (draws.SITES // 3 + 2)
    spec = recur.load("params:\n  lanes: 40\noutputs:\n  x:\n    initial: zeros(lanes)\n"
                      f"    step: x[t-1] + {' + '.join(calls)}\nsteps: 4\n")
    program = api.prepare(spec).program
    source = choose(program, "compiled").engine.kernel(program).source
    assert source.count("r_draw_words(d") == draws.SITES
    assert "r_normal((r_u64)" in source and "r_integers((r_u64)" in source
    numpy.testing.assert_array_equal(recur.run(spec, engine="compiled", seed=9)["x"],
                                     recur.run(spec, engine="interp", seed=9)["x"])
