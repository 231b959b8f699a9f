"""Values that may live on a GPU, brought to the host for the few things only NumPy does
(Python integers in object arrays, finding a lane, printing, JSON).

The engines copy their results with `Backend.to_host`; this is for the places that have
a value but not its backend. It imports no GPU library: a CuPy array is known by the
CUDA array interface it exposes.
"""

from __future__ import annotations

from typing import Any

import numpy


def to_host(value: Any) -> numpy.ndarray:
    """`value` as a NumPy array: a GPU array is copied to the host, anything else (an
    array, a number, a list) is only wrapped."""
    if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
        value = value.get()
    return numpy.asarray(value)
