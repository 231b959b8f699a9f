"""Every function of the language, evaluated by recur and by NumPy/SciPy directly."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy
import pytest
from scipy import special

import recur
from recur.lang.functions import FUNCTIONS, FUNCTIONS_LISTED

A = numpy.array([0.25, -1.5, 2.0])
B = numpy.array([1.0, 3.0, -0.5])
M = numpy.array([[1.0, 2.0], [3.0, 4.0]])

def _float32(value: float) -> float:
    """The float32 nearest `value`, by the struct module (not NumPy)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


# expression over params a, b, m  ->  the same computed by hand
CASES: dict[str, tuple[str, object]] = {
    "abs": ("abs(b)", numpy.abs(B)),
    "sign": ("sign(a)", numpy.sign(A)),
    "sqrt": ("sqrt(abs(a))", numpy.sqrt(numpy.abs(A))),
    "cbrt": ("cbrt(a)", numpy.cbrt(A)),
    "exp": ("exp(a)", numpy.exp(A)),
    "expm1": ("expm1(a)", numpy.expm1(A)),
    "log": ("log(abs(b))", numpy.log(numpy.abs(B))),
    "log1p": ("log1p(abs(a))", numpy.log1p(numpy.abs(A))),
    "log2": ("log2(abs(b))", numpy.log2(numpy.abs(B))),
    "log10": ("log10(abs(b))", numpy.log10(numpy.abs(B))),
    "sin": ("sin(a)", numpy.sin(A)),
    "cos": ("cos(a)", numpy.cos(A)),
    "tan": ("tan(a)", numpy.tan(A)),
    "arcsin": ("arcsin(a / 2)", numpy.arcsin(A / 2)),
    "arccos": ("arccos(a / 2)", numpy.arccos(A / 2)),
    "arctan": ("arctan(a)", numpy.arctan(A)),
    "arctan2": ("arctan2(a, b)", numpy.arctan2(A, B)),
    "sinh": ("sinh(a)", numpy.sinh(A)),
    "cosh": ("cosh(a)", numpy.cosh(A)),
    "tanh": ("tanh(a)", numpy.tanh(A)),
    "floor": ("floor(a)", numpy.floor(A)),
    "ceil": ("ceil(a)", numpy.ceil(A)),
    "round": ("round(a * 3.3, 1)", numpy.round(A * 3.3, 1)),
    "trunc": ("trunc(a)", numpy.trunc(A)),
    "gamma": ("gamma(b + 2)", special.gamma(B + 2)),
    "lgamma": ("lgamma(b + 2)", special.gammaln(B + 2)),
    "erf": ("erf(a)", special.erf(A)),
    "digamma": ("digamma(b + 2)", special.psi(B + 2)),
    "polygamma": ("polygamma(2, b + 2)", special.polygamma(2, B + 2)),
    "minimum": ("minimum(a, b)", numpy.minimum(A, B)),
    "maximum": ("maximum(a, b)", numpy.maximum(A, B)),
    "clip": ("clip(a, -1, 1)", numpy.clip(A, -1, 1)),
    "where": ("where(a > 0, a, b)", numpy.where(A > 0, A, B)),
    "hypot": ("hypot(a, b)", numpy.hypot(A, B)),
    "isnan": ("isnan(a / 0 * 0)", numpy.array([True, True, True])),
    "isfinite": ("isfinite(a / 0)", numpy.array([False, False, False])),
    "real": ("real(a + b * 1j)", A),
    "imag": ("imag(a + b * 1j)", B),
    "conj": ("conj(a + b * 1j)", [complex(x, -y) for x, y in zip(A, B, strict=True)]),
    "angle": ("angle(a + b * 1j)", [math.atan2(y, x) for x, y in zip(A, B, strict=True)]),
    "int64": ("int64(a * 3)", [math.trunc(x * 3) for x in A]),
    "int32": ("int32(b * -7)", [math.trunc(x * -7) for x in B]),
    "float32": ("float32(a / 3)", [_float32(x / 3) for x in A]),
    "float64": ("float64(arange(3))", [0.0, 1.0, 2.0]),
    "bool": ("bool(a - 0.25)", [False, True, True]),
    "complex128": ("complex128(a)", [complex(x) for x in A]),
    "sum": ("sum(m, axis=0)", M.sum(axis=0)),
    "prod": ("prod(m, axis=1)", M.prod(axis=1)),
    "mean": ("mean(m)", M.mean()),
    "min": ("min(m, axis=1)", M.min(axis=1)),
    "max": ("max(a, b, 0.5)", numpy.maximum(numpy.maximum(A, B), 0.5)),
    "any": ("any(a > 1)", True),
    "all": ("all(b > 0)", False),
    "norm": ("norm(m, axis=1)", numpy.linalg.norm(M, axis=1)),
    "dot": ("dot(m, m[0])", M @ M[0]),
    "arange": ("arange(1, 7, 2)", numpy.arange(1, 7, 2)),
    "linspace": ("linspace(0, 1, 5)", numpy.linspace(0, 1, 5)),
    "zeros": ("zeros((2, 3))", numpy.zeros((2, 3))),
    "ones": ("ones(3)", numpy.ones(3)),
    "full": ("full((2,), 7.5)", numpy.full((2,), 7.5)),
    "eye": ("eye(3)", numpy.eye(3)),
    "concatenate": ("concatenate([a, b])", numpy.concatenate([A, B])),
    "stack": ("stack([a, b], axis=1)", numpy.stack([A, B], axis=1)),
    "reshape": ("reshape(m, (4,))", M.reshape(4)),
    "transpose": ("transpose(m)", M.T),
}


def test_every_function_has_a_case() -> None:
    assert set(CASES) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_function_matches_numpy(name: str) -> None:
    expression, expected = CASES[name]
    want = numpy.asarray(expected)
    dtype = "complex128" if want.dtype.kind == "c" else "float64"
    text = (
        f"params:\n  a: {A.tolist()}\n  b: {B.tolist()}\n  m: {M.tolist()}\n"
        f"steps: 2\noutputs:\n  y:\n    dtype: {dtype}\n    step: '{expression}'\n"
    )
    got = recur.run(recur.load(text))["y"]
    assert got.shape == (2, *want.shape)
    numpy.testing.assert_allclose(got[1], want.astype(dtype), rtol=1e-15, atol=0)


def test_the_functions_section_of_the_docs_lists_every_function() -> None:
    """The section that an unknown function's note points at."""
    assert "'Functions' in docs/spec.md" in FUNCTIONS_LISTED
    text = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()
    section = text.split("\n### Functions\n", 1)[1].split("\n#", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")][2:]
    listed = {name for row in table for name in re.findall(r"`(\w+)`", row.split("|")[2])}
    assert listed == set(FUNCTIONS)
