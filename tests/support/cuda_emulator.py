"""The CUDA engines on the CPU: generated CUDA source built by the C++ compiler, run by
one host thread, with NumPy standing in for CuPy.

Every kernel recur generates walks its threads with a grid-stride loop, so a grid of one
thread runs them all, in order. `EmulatedCuda` is a backend named "cuda" whose launcher
does that: the tests of the fused kernel, the scan and the dispatch run in CI, without a
GPU, on the very sources that NVRTC compiles on one. CUDA's math functions are replaced
by the C library's, so transcendental results can differ from a GPU's by a few ulp.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy

from recur.engine.backend import NumpyBackend
from recur.engine.cuda.launch import BLOCK

SHIM = """\
#include <cmath>
#include <cstdint>
using std::isfinite;
using std::isnan;
using std::signbit;
struct r_index { long long x; };
static const r_index threadIdx = {0}, blockIdx = {0}, blockDim = {1}, gridDim = {1};
#define __global__
#define __device__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __shared__ static
#define __syncthreads()
static inline long long atomicMin(long long *p, long long v)
{ long long old = *p; if (v < old) *p = v; return old; }
static inline long long __mul64hi(long long a, long long b)
{ return (long long)(((__int128)a * b) >> 64); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b)
{ return (unsigned long long)(((unsigned __int128)a * b) >> 64); }
static inline long long __double_as_longlong(double x)
{ long long b; __builtin_memcpy(&b, &x, sizeof b); return b; }
static inline double __longlong_as_double(long long b)
{ double x; __builtin_memcpy(&x, &b, sizeof x); return x; }
"""
FLAGS = ("-O1", "-fPIC", "-shared", "-std=c++17", "-ffp-contract=off", "-fno-math-errno")


def compiler() -> str | None:
    return shutil.which("g++") or shutil.which("clang++")


class EmulatedLauncher:
    """`recur.engine.cuda.launch.Launcher` on the host: one thread, the same source."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.launched: list[str] = []  # the kernels launched, in order

    def function(self, source: str, name: str) -> Any:
        library = self._library(source)
        kernel = getattr(library, name)
        kernel.restype = None

        def launch(threads: int, arguments: tuple[Any, ...], block: int = BLOCK) -> None:
            assert threads >= 1 and 1 <= block <= 1024
            self.launched.append(name)
            kernel(*[_argument(a) for a in arguments])

        return launch

    def _library(self, source: str) -> ctypes.CDLL:
        digest = hashlib.sha256(source.encode()).hexdigest()[:24]
        path = self.folder / f"emulated_{digest}.so"
        if not path.exists():
            command = compiler()
            assert command is not None, "no C++ compiler"
            with tempfile.TemporaryDirectory(dir=self.folder) as work:
                code = Path(work) / "kernel.cpp"
                code.write_text(SHIM + source)
                built = Path(work) / "kernel.so"
                done = subprocess.run([command, *FLAGS, "-o", str(built), str(code)],
                                      capture_output=True, text=True, check=False)
                assert done.returncode == 0, done.stderr
                built.replace(path)
        return ctypes.CDLL(str(path))


def _argument(value: Any) -> Any:
    if isinstance(value, numpy.ndarray):
        assert value.flags.c_contiguous
        return ctypes.c_void_p(value.ctypes.data)
    return ctypes.c_longlong(int(value))


class EmulatedCuda(NumpyBackend):
    """A backend named "cuda" whose arrays are NumPy's and whose kernels run on the host."""

    name = "cuda"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.launcher = EmulatedLauncher(folder)
