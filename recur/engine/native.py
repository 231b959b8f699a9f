"""The compiled engine: a generated C kernel, built by the system's C compiler, cached.

The kernel's shared library is cached under the SHA-256 of its source and the compiler
command, so the second run of a spec with the same structure loads it in a millisecond
instead of compiling (a fraction of a second). Nothing is imported for it but ctypes:
a run that does not use it pays nothing.

The kernel runs in chunks of steps, so that progress is reported and Ctrl-C is seen
between them. When it reports a fault, `KernelFault` hands the run back to the caller
to replay with the interpreter, which tells exactly what went wrong where.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy

from recur.engine.frame import KernelFault
from recur.engine.plan import Plan

STATUS_FAULT, STATUS_UNTIL = 1, -1  # as the generated code writes them
CHUNK_ELEMENTS = 1 << 22  # lane-steps per kernel call: a few milliseconds of work
# IEEE arithmetic as NumPy does it: no -ffast-math, and no fused multiply-adds. -O3
# vectorises loops across lanes, which leaves each lane's order of operations alone
# (W6 34 ms against 45-67 at -O2, W5 22 against 25, on the 2-core benchmark machine).
FLAGS = ("-O3", "-fPIC", "-shared", "-std=gnu11", "-ffp-contract=off", "-fno-math-errno")

_loaded: dict[str, Callable[..., int]] = {}


class CompileError(Exception):
    """The C compiler failed on a generated kernel (a bug in recur; the message says how)."""


@functools.cache
def compiler() -> list[str] | None:
    """The C compiler command: $CC, else Python's own, else cc/gcc/clang on PATH."""
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or ""
    candidates = [shlex.split(configured)] if configured.strip() else []
    candidates += [["cc"], ["gcc"], ["clang"]]
    for command in candidates:
        found = shutil.which(command[0])
        if found:
            return [found, *command[1:]]
    return None



def available() -> bool:
    return compiler() is not None


def cache_dir() -> Path:
    """Where kernels live: $RECUR_CACHE_DIR, else the user's cache folder."""
    configured = os.environ.get("RECUR_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recur" / "kernels"


def library_path(source: str) -> Path:
    command = compiler() or []
    digest = hashlib.sha256("\0".join([*command, *FLAGS, source]).encode()).hexdigest()
    return cache_dir() / f"kernel_{digest[:32]}.so"


def is_cached(source: str) -> bool:
    """Whether this kernel was compiled before."""
    return library_path(source).exists()


def load(source: str) -> Callable[..., int]:
    """The kernel function of `source`, compiled now or loaded from the cache."""
    path = library_path(source)
    key = str(path)  # the cache folder, the compiler and the flags are part of it
    if key not in _loaded:
        if not path.exists():
            path = _compile(source, path)
        function = ctypes.CDLL(str(path)).kernel
        function.restype = ctypes.c_int64
        function.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                             ctypes.c_void_p, ctypes.c_void_p]
        _loaded[key] = function
    return _loaded[key]


def run_kernel(plan: Plan, kernel: Callable[..., int], arrays: tuple[numpy.ndarray, ...],
               progress: Callable[[int, int], None] | None = None) -> tuple[int, str]:
    """Run every step through `kernel`: the steps run and what stopped them. Raises
    `KernelFault` where the interpreter must take over."""
    status = numpy.zeros(2, dtype=numpy.int64)
    pointers = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
    dims = numpy.array([size for a in arrays for size in a.shape] or [0], dtype=numpy.int64)
    lanes = max((max(math.prod(o.history.shape), 1) for o in plan.outputs), default=1)
    chunk = max(1, CHUNK_ELEMENTS // lanes)
    steps_run, stopped_by = plan.steps, "steps"
    for start in range(0, plan.steps, chunk):
        stop = min(start + chunk, plan.steps)
        kernel(start, stop, status.ctypes.data, plan.steps, ctypes.addressof(pointers),
               dims.ctypes.data)
        if status[0] == STATUS_FAULT:
            raise KernelFault(int(status[1]))
        if status[0] == STATUS_UNTIL:
            steps_run, stopped_by = int(status[1]) + 1, "until"
            break
        if progress is not None:
            progress(stop, plan.steps)
    return steps_run, stopped_by


def _compile(source: str, path: Path) -> Path:
    """Compile into the cache folder (a private temporary one if that is not writable)."""
    command = compiler()
    if command is None:
        raise CompileError("no C compiler found (set CC, or install gcc or clang)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = path.parent
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="recur-kernels-"))
        path = folder / path.name
    with tempfile.TemporaryDirectory(dir=folder) as work:
        c_file = Path(work) / "kernel.c"
        c_file.write_text(source)
        built = Path(work) / "kernel.so"
        done = subprocess.run([*command, *FLAGS, "-o", str(built), str(c_file), "-lm"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CompileError(f"the C compiler failed: {_first_error(done.stderr)}")
        os.replace(built, path)
    return path


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if "error" in line:
            return line.strip()
    return stderr.strip().splitlines()[0] if stderr.strip() else "no message"
