"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

Each backend is a small class whose heavy import happens in `__init__`, so that
importing recur never imports CuPy or SciPy; `get_backend` is the one lookup point.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any, Protocol

import numpy

from recur.diagnostics import BackendError, option
from recur.engine.memory import Room, host_room

DEVICES = ("cpu", "cuda", "auto")


def _cuda_hint() -> str:
    return (f"install CuPy with `pip install 'recur[cuda]'` (a CUDA GPU is needed), or use "
            f"{option('device', 'cpu')}")


class Backend(Protocol):
    name: str
    xp: ModuleType

    @property
    def special(self) -> ModuleType: ...

    def to_host(self, array: Any) -> numpy.ndarray: ...

    def errstate(self) -> contextlib.AbstractContextManager[Any]: ...

    def memory_room(self) -> Room | None: ...


class NumpyBackend:
    name = "cpu"

    def __init__(self) -> None:
        self.xp: ModuleType = numpy
        self._special: ModuleType | None = None

    @property
    def special(self) -> ModuleType:
        """`scipy.special`, imported on first use: it costs a tenth of a second."""
        if self._special is None:
            from scipy import special

            self._special = special
        return self._special

    def to_host(self, array: Any) -> numpy.ndarray:
        return numpy.asarray(array)

    def errstate(self) -> contextlib.AbstractContextManager[Any]:
        # Overflow and division are checked by recur itself where they matter (integers);
        # for floats, inf and nan are values, reported only under --check.
        return numpy.errstate(all="ignore")

    def memory_room(self) -> Room | None:
        return host_room()


class CupyBackend:
    name = "cuda"

    def __init__(self) -> None:
        try:
            import cupy
        except ImportError as exc:
            raise BackendError(
                f"{option('device', 'cuda')} needs CuPy, which is not installed ({exc})",
                notes=(_cuda_hint(),),
            ) from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CuPy raises its own CUDARuntimeError, or an ImportError
            raise BackendError(
                f"{option('device', 'cuda')}: no usable CUDA device ({exc})",
                notes=(_cuda_hint(),),
            ) from None
        if count == 0:
            raise BackendError(f"{option('device', 'cuda')}: no CUDA device found",
                               notes=(_cuda_hint(),))
        self.xp = cupy
        self._launcher: Any = None

    @property
    def launcher(self) -> Any:
        """Compiles and launches recur's generated kernels (`recur.engine.cuda.launch`)."""
        if self._launcher is None:
            from recur.engine.cuda.launch import CupyLauncher

            self._launcher = CupyLauncher(self.xp)
        return self._launcher

    @property
    def special(self) -> ModuleType:
        from cupyx.scipy import special

        return special

    def to_host(self, array: Any) -> numpy.ndarray:
        return numpy.asarray(self.xp.asnumpy(array))

    def errstate(self) -> contextlib.AbstractContextManager[Any]:
        return numpy.errstate(all="ignore")

    def memory_room(self) -> Room | None:
        free, _total = self.xp.cuda.runtime.memGetInfo()
        return Room(int(free), "the GPU's free memory")


def get_backend(device: str) -> Backend:
    """The backend for `--device`: `cpu`, `cuda`, or `auto` (CUDA where it works)."""
    if device == "cpu":
        return NumpyBackend()
    if device == "cuda":
        return CupyBackend()
    if device == "auto":
        try:
            return CupyBackend()
        except BackendError:
            return NumpyBackend()
    raise BackendError(f"unknown device '{device}'; choose one of {', '.join(DEVICES)}")
