"""The compiled engine: a generated C kernel, built by the system's C compiler, cached.

The kernel's shared library is cached under the SHA-256 of its source, the compiler
command and the machine (CPU and compiler binary), so the second run of a spec with the
same structure loads it in a millisecond instead of compiling (a fraction of a second).
Nothing is imported for it but ctypes: a run that does not use it pays nothing. A cache
that is damaged heals, and one that cannot be used gives way to a temporary folder (see
`load`); the compiler runs under a time limit, in a process group of its own.

The kernel runs in chunks of steps, so that progress is reported and Ctrl-C is seen
between them. When it reports a fault, `KernelFault` hands the run back to the caller
to replay with the interpreter, which tells exactly what went wrong where.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import signal
import stat
import subprocess
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import numpy

from recur.compile import ir
from recur.diagnostics import CompileError, KernelFault
from recur.engine.c.generate import STATUS_FAULT, STATUS_UNTIL, Kernel, bind
from recur.engine.plan import Buffers

CHUNK_ELEMENTS = 1 << 22  # lane-steps per kernel call: a few milliseconds of work
# Steps per call of the lane kernel's blocks at least, which load every lane's taps at
# the start of a call and store them at its end: 10^6 lanes x 100 steps of W5 took 20.5
# ms in calls of 4 steps, 12.0 in calls of 64.
BLOCK_CALL_STEPS = 32
# IEEE arithmetic as NumPy does it: no -ffast-math, and no fused multiply-adds. -O3
# vectorises loops across lanes, which leaves each lane's order of operations alone
# (W6 34 ms against 45-67 at -O2, W5 22 against 25, on the 2-core benchmark machine).
# On x86-64 the vectors are as wide as the CPU's (-march=native: AVX2, AVX-512), the
# same operations on more lanes at once, so the same bits; the cache key names the CPU,
# so a kernel never runs on a machine it was not built for (W6's loop 5.4 ms against
# 15.3 with SSE2 vectors, on the same machine). The lane kernel's blocks need them
# (recur.engine.c.lanes): W8 took 155 ms with SSE2 alone, 29 ms with AVX-512, where
# int64 comparisons and conversions have vector forms.
_WIDE = ("-march=native",) if platform.machine().lower() in ("x86_64", "amd64") else ()
FLAGS = ("-O3", "-fPIC", "-shared", "-std=gnu11", "-ffp-contract=off", "-fno-math-errno",
         *_WIDE)

# The compiler's time limit: this floor, or the cost model's estimate of the compile
# times this margin (`recur.engine.c.engine.compile_limit`). The largest kernel we made (60
# outputs of 90 sin() terms each, 400 KB of C) compiled in 45 s on the 2-core machine.
COMPILE_FLOOR = 60.0
COMPILE_MARGIN = 10.0
STALE_SCRATCH = 86_400.0  # seconds after which a scratch folder is a killed run's
LOW_SPACE = 16 << 20  # bytes: a compile that fails with less free is blamed on the disk

_loaded: dict[str, Callable[..., int]] = {}


class EngineNote(UserWarning):
    """An engine could not be used as configured, and the run went on another way."""


def note(message: str) -> None:
    """Tell the user (as a warning: the command line prints it as a `recur: note:` line)."""
    warnings.warn(message, EngineNote, stacklevel=2)


@functools.cache
def compiler() -> list[str] | None:
    """The C compiler command: $CC where it is set (that one only: a user who names a
    compiler means it), else Python's own, else cc/gcc/clang on PATH."""
    chosen = os.environ.get("CC", "").strip()
    configured = sysconfig.get_config_var("CC") or ""
    candidates = [_split(chosen)] if chosen else [
        _split(configured), ["cc"], ["gcc"], ["clang"]]
    for command in candidates:
        found = shutil.which(command[0]) if command else None
        if found:
            return [found, *command[1:]]
    return None


def missing_compiler() -> str:
    """Why `compiler()` found none, in words for a reason or an error."""
    chosen = os.environ.get("CC", "").strip()
    if chosen:
        return f"CC names {chosen!r}, which is not a program found here"
    return "no C compiler was found"


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes: not a command line
        return []


def available() -> bool:
    return compiler() is not None


def cache_dir() -> Path:
    """Where kernels live: $RECUR_CACHE_DIR, else the user's cache folder."""
    environ = os.environ
    return _cache_dir(environ.get("RECUR_CACHE_DIR"), environ.get("XDG_CACHE_HOME"),
                      environ.get("HOME"))


@functools.lru_cache(maxsize=8)
def _cache_dir(configured: str | None, base: str | None, home: str | None) -> Path:
    """`cache_dir` for these variables (`home`: Path.home's), found once: a run asks
    for it each time."""
    if configured:
        return Path(configured)
    return Path(base or Path.home() / ".cache") / "recur" / "kernels"


# The lines of /proc/cpuinfo that name what a CPU can run (x86, then ARM); not its
# clock, which changes by the second.
_CPU_IDENTITY = frozenset({"vendor_id", "cpu family", "model", "model name", "flags",
                           "Features", "CPU implementer", "CPU architecture", "CPU variant",
                           "CPU part"})


@functools.cache
def machine() -> str:
    """What a kernel is built for: the CPU (model and flags) and the compiler's binary (its
    size and time: a new version is a new binary). Part of the cache key, so that a kernel
    built elsewhere (a home folder shared or copied between machines) is never loaded."""
    parts = [platform.machine()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if not line.strip():
                    break  # the first processor says it for all
                if line.split(":")[0].strip() in _CPU_IDENTITY:
                    parts.append(line.strip())
    except OSError:
        parts.append(platform.processor())
    command = compiler()
    if command is not None:
        with contextlib.suppress(OSError):
            binary = os.path.realpath(command[0])
            found = os.stat(binary)
            parts.append(f"{binary} {found.st_size} {found.st_mtime_ns}")
    return "\n".join(parts)


def library_path(source: str) -> Path:
    return _library_path(cache_dir(), machine(), tuple(compiler() or ()), FLAGS, source)


@functools.lru_cache(maxsize=64)
def _library_path(folder: Path, machine: str, command: tuple[str, ...],
                  flags: tuple[str, ...], source: str) -> Path:
    """Kept for the kernels run lately: a run would hash the source each time."""
    key = "\0".join([machine, *command, *flags, source])
    digest = hashlib.sha256(key.encode()).hexdigest()
    return folder / f"kernel_{digest[:32]}.so"


def is_cached(source: str) -> bool:
    """Whether this kernel was compiled before."""
    return library_path(source).exists()


def load(source: str, time_limit: float = COMPILE_FLOOR) -> Callable[..., int]:
    """The kernel function of `source`, loaded from the cache or compiled now, the compiler
    given `time_limit` seconds. A cached kernel that does not load (truncated, overwritten,
    not a library, a folder) is removed and rebuilt once.

    Raises:
        CompileError: no compiler, the compiler failed or ran out of time, or the kernel
            it built does not load either.
    """
    path = library_path(source)
    key = str(path)  # the cache folder, the machine, the compiler and the flags are in it
    if key not in _loaded:
        _loaded[key] = _cached(path) or _build(source, path, time_limit)
    return _loaded[key]


def _cached(path: Path) -> Callable[..., int] | None:
    """The kernel cached at `path`; None where there is none, or a damaged one (removed)."""
    try:
        before = path.lstat()
    except OSError:  # absent, or the cache is not a folder
        return None
    try:
        return _open(path)
    except (OSError, AttributeError) as error:
        _remove_if_unchanged(path, before)
        reason = _reason(error).replace(f"{path.absolute()}: ", "")
        note(f"the cached kernel {path} does not load ({reason}); rebuilding it")
        return None


def _open(path: Path) -> Callable[..., int]:
    """The `kernel` function of the library at `path` (absolute: dlopen searches the
    library path for a bare name)."""
    function = ctypes.CDLL(str(path.absolute())).kernel
    function.restype = ctypes.c_int64
    function.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                         ctypes.c_void_p, ctypes.c_void_p]
    return function  # type: ignore[no-any-return]


def _remove_if_unchanged(path: Path, before: os.stat_result) -> None:
    """Remove a damaged kernel, unless another run replaced it meanwhile."""
    with contextlib.suppress(OSError):
        now = path.lstat()
        if (now.st_dev, now.st_ino, now.st_mtime_ns) != (before.st_dev, before.st_ino,
                                                         before.st_mtime_ns):
            return
        if stat.S_ISDIR(now.st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()


def run_kernel(program: ir.Program, buffers: Buffers, kernel: Kernel,
               function: Callable[..., int],
               progress: Callable[[int, int], None] | None = None) -> tuple[int, str]:
    """Run every step of `program` into `buffers` through `function`, `kernel` loaded:
    the steps run and what stopped them. Raises `KernelFault` where the interpreter
    must take over."""
    arrays = bind(kernel.arguments, buffers)
    status = numpy.zeros(2, dtype=numpy.int64)
    pointers = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
    dims = numpy.array([size for a in arrays for size in a.shape] or [0], dtype=numpy.int64)
    chunk = max(1, CHUNK_ELEMENTS // max(program.lanes, 1))
    if kernel.lane_block:  # a call loads and stores every lane's taps: not for a few steps
        chunk = max(chunk, BLOCK_CALL_STEPS)
    steps, end = program.steps, program.end
    steps_run, stopped_by = end, "steps"
    for start in range(program.start, end, chunk):
        stop = min(start + chunk, end)
        function(start, stop, status.ctypes.data, steps, ctypes.addressof(pointers),
                 dims.ctypes.data)
        if status[0] == STATUS_FAULT:
            raise KernelFault.at(int(status[1]))
        if status[0] == STATUS_UNTIL:
            steps_run, stopped_by = int(status[1]) + 1, "until"
            break
        if progress is not None:
            progress(stop, steps)
    return steps_run, stopped_by


class _CacheProblem(Exception):
    """The cache folder cannot hold a kernel; the message says why."""


def _build(source: str, path: Path, time_limit: float) -> Callable[..., int]:
    """Compile `source` and load it. Where the cache cannot be used, say why and compile in
    a temporary folder instead, removed once the kernel is loaded."""
    command = compiler()
    if command is None:
        raise CompileError(f"{missing_compiler()} (set CC, or install gcc or clang)")
    try:
        return _build_in(command, source, time_limit, path)
    except _CacheProblem as problem:
        note(f"cannot use the kernel cache {path.parent}: {problem}; compiling in a "
             "temporary folder (removed after loading)")
    return _build_in(command, source, time_limit, None)


def _build_in(command: list[str], source: str, time_limit: float,
              target: Path | None) -> Callable[..., int]:
    """Compile in a private scratch folder inside the cache (or the system's temporary
    folder, where `target` is None), load the kernel from there and rename it to `target`:
    concurrent runs each rename a whole kernel, and an unloadable one is never cached."""
    folder = None if target is None else target.parent
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            _sweep(folder)
        scratch = Path(tempfile.mkdtemp(dir=folder, prefix="build-"))
    except OSError as error:
        raise _trouble(folder, _reason(error)) from None
    try:
        with _on_sigterm(lambda: shutil.rmtree(scratch, ignore_errors=True)):
            built = _compile(command, source, scratch, time_limit)
        try:
            function = _open(built)
        except (OSError, AttributeError) as error:
            raise CompileError(f"the kernel just built does not load: {_reason(error)}") \
                from None
        if target is not None:
            try:
                os.replace(built, target)
            except OSError as error:
                note(f"cannot store the kernel in the cache {folder}: {_reason(error)}")
        return function
    except OSError as error:  # writing the source
        raise _trouble(folder, _reason(error)) from None
    except CompileError as error:
        free = _free_space(folder)
        if free < LOW_SPACE:
            raise _CacheProblem(f"its disk is full ({free // 1024} KiB free; the compiler "
                                f"said: {error})") from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _free_space(folder: Path | None) -> int:
    """Bytes free for the cache folder (`LOW_SPACE` where that is not the question)."""
    if folder is None:
        return LOW_SPACE
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return LOW_SPACE


def _sweep(folder: Path) -> None:
    """Remove the scratch folders that runs killed outright (SIGKILL, a power cut) left."""
    stale = time.time() - STALE_SCRATCH
    for scratch in folder.glob("build-*"):
        with contextlib.suppress(OSError):
            if scratch.lstat().st_mtime < stale:
                shutil.rmtree(scratch)


def _trouble(folder: Path | None, reason: str) -> Exception:
    """The error for a folder that cannot hold a kernel: the cache's (the caller then
    tries a temporary folder), or the temporary one (the run cannot compile)."""
    if folder is None:
        return CompileError(f"cannot compile in a temporary folder: {reason}")
    if folder.exists() and not folder.is_dir():
        return _CacheProblem("it is not a folder")
    return _CacheProblem(reason)


def _compile(command: list[str], source: str, scratch: Path, time_limit: float) -> Path:
    """Run the compiler in its own process group, so that it is killed with all its
    children (cc1, as, ld) on a time-out, an exception, Ctrl-C or SIGTERM."""
    c_file, built = scratch / "kernel.c", scratch / "kernel.so"
    c_file.write_text(source)
    try:
        process = subprocess.Popen([*command, *FLAGS, "-o", str(built), str(c_file), "-lm"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   errors="replace", start_new_session=True)
    except OSError as error:
        raise CompileError(f"cannot run the C compiler {command[0]}: {_reason(error)}") \
            from None
    finished = False
    try:
        with _on_sigterm(lambda: _kill_group(process)):
            _, stderr = process.communicate(timeout=time_limit)
        finished = True
    except subprocess.TimeoutExpired:
        raise CompileError(f"the C compiler did not finish within {time_limit:g} s "
                           f"({command[0]})") from None
    finally:
        if not finished:
            _kill_group(process)
            process.communicate()
    if process.returncode != 0:
        raise CompileError(f"the C compiler failed: {_first_error(stderr)}")
    return built


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def _on_sigterm(cleanup: Callable[[], None]) -> Iterator[None]:
    """Run `cleanup` before SIGTERM does what it did before: stop the process (status
    143), or call the handler installed then. Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed = signal.getsignal(signal.SIGTERM)
    previous = signal.SIG_DFL if installed is None else installed  # None: set outside Python

    def handler(signum: int, frame: FrameType | None) -> None:
        if previous == signal.SIG_IGN:
            return
        cleanup()
        signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            previous(signum, frame)
        else:
            signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _reason(error: BaseException) -> str:
    """An error in words, without its errno and the path the caller names already."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if "error" in line:
            return line.strip()
    return stderr.strip().splitlines()[0] if stderr.strip() else "no message"
