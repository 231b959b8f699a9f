"""The C lane kernel for states with lanes (`recur.engine.c.lanes`, blocks of lanes that
each walk every step): against a plain-Python loop and the interpreter's bits, across
block boundaries (lane counts that are not a multiple of the block), 2-D grids of lanes
from broadcast params and sequences, int64 counters beside floats, every keep, draws,
faults in any lane of any block, and calls of a few steps each."""

from __future__ import annotations

import numpy
import pytest
from numpy.testing import assert_array_equal
from test_compiled import assert_same, both, failures

import recur
from recur import api
from recur.engine import registry
from recur.engine.c import engine as c_engine
from recur.engine.c import lanes as lanegen
from recur.engine.c import native
from recur.engine.plan import run_on

ROWS, COLUMNS = 13, 11  # 143 lanes: two full blocks and part of a third

JULIA = f"""\
params:
  x0: reshape(linspace(-1.6, 1.6, {COLUMNS}), (1, {COLUMNS}))
  y0: reshape(linspace(-1.0, 1.0, {ROWS}), ({ROWS}, 1))
  cr: -0.8
steps: 40
sequences:
  ci: reshape(linspace(0.15, 0.16, 40 * {COLUMNS}), (40, {COLUMNS}))
outputs:
  zr:
    initial: x0
    step: "zr[t-1] if zr[t-1]*zr[t-1] + zi[t-1]*zi[t-1] > 4
      else zr[t-1]*zr[t-1] - zi[t-1]*zi[t-1] + cr"
    keep: KEEP
  zi:
    initial: y0
    step: zi[t-1] if zr[t-1]*zr[t-1] + zi[t-1]*zi[t-1] > 4 else 2*zr[t-1]*zi[t-1] + ci
    keep: KEEP
  count:
    dtype: int64
    initial: 0
    step: count[t-1] + (zr[t-1]*zr[t-1] + zi[t-1]*zi[t-1] <= 4) - (t == 7)
    keep: KEEP
"""


def julia_by_hand(steps: int) -> dict[str, numpy.ndarray]:
    """Every step of JULIA, one lane at a time in plain Python."""
    xs = numpy.linspace(-1.6, 1.6, COLUMNS)
    ys = numpy.linspace(-1.0, 1.0, ROWS)
    cis = numpy.linspace(0.15, 0.16, 40 * COLUMNS).reshape(40, COLUMNS)
    out = {name: numpy.zeros((steps, ROWS, COLUMNS), dtype=dtype)
           for name, dtype in (("zr", float), ("zi", float), ("count", numpy.int64))}
    for row in range(ROWS):
        for column in range(COLUMNS):
            zr, zi, count = float(xs[column]), float(ys[row]), 0
            for t in range(steps):
                inside = zr * zr + zi * zi <= 4
                count = count + int(inside) - int(t == 7)
                if inside:
                    zr, zi = zr * zr - zi * zi + -0.8, 2 * zr * zi + float(cis[t, column])
                out["zr"][t, row, column] = zr
                out["zi"][t, row, column] = zi
                out["count"][t, row, column] = count
    return out


def kernel_source(text: str) -> str:
    program = api.prepare(recur.load(text)).program
    return c_engine.CEngine().kernel(program).source


@pytest.mark.parametrize("keep", ["all", "last", "last 3", "every 4"])
def test_a_broadcast_grid_with_an_int_counter_runs_in_blocks(keep: str) -> None:
    text = JULIA.replace("KEEP", keep)
    assert f"i0 += {lanegen.LANE_BLOCK}" in kernel_source(text)
    interpreted, compiled = both(text)
    assert_same(interpreted, compiled)
    want = julia_by_hand(40)
    rows = {"all": slice(None), "last": -1, "last 3": slice(-3, None),
            "every 4": slice(3, None, 4)}[keep]
    for name in want:
        assert_array_equal(compiled[name], want[name][rows], strict=True)


def test_blocks_carry_their_taps_across_calls_of_a_few_steps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "CHUNK_ELEMENTS", 3 * ROWS * COLUMNS)  # three steps a call
    monkeypatch.setattr(native, "BLOCK_CALL_STEPS", 3)
    interpreted, compiled = both(JULIA.replace("KEEP", "last 2"))
    assert_same(interpreted, compiled)
    assert_array_equal(compiled["count"], julia_by_hand(40)["count"][-2:], strict=True)


@pytest.mark.parametrize("op", ["+", "-"])
@pytest.mark.parametrize("lane", [0, 70, 142])
def test_an_overflow_in_any_lane_stops_the_kernel_at_its_step(op: str, lane: int) -> None:
    """Sums and differences wrap and flag (so that the lane loop vectorises): the flag of
    one lane among 143 stops the kernel at that step, and the interpreter reports it."""
    big = 2**62 if op == "+" else -(2**62)
    half = "n[t-1] // 2" if op == "+" else "(0 - n[t-1]) // 2"
    text = (f"params:\n  n0: where(arange({ROWS * COLUMNS}) == {lane}, {big}, 0)\n"
            f"steps: 9\noutputs:\n  n:\n    dtype: int64\n    initial: n0\n"
            f"    step: n[t-1] {op} {half} {op} 1\n    keep: last\n")
    spec = recur.load(text)
    with pytest.raises(native.KernelFault) as fault:
        prepared = api.prepare(spec)
        run_on(registry.choose(prepared.program, "compiled").engine, prepared.program,
               prepared.backend)
    value, t = big, 0
    while True:  # the step at which this lane leaves int64, by hand
        value = value + value // 2 + 1 if op == "+" else value - (-value) // 2 - 1
        if not -(2**63) <= value < 2**63:
            break
        t += 1
    assert fault.value.t == t
    messages = failures(spec)
    assert messages[0] == messages[1]
    assert messages[0].endswith(f"at t={t} (lane {lane})")


def test_check_finds_a_non_finite_value_in_the_last_block() -> None:
    text = ("params:\n  g: linspace(1.0, 1e30, 143)\nsteps: 20\noutputs:\n  x:\n"
            "    initial: 1.0\n    step: x[t-1] * g\n    keep: last\n")
    messages = failures(recur.load(text), check=True)
    assert messages[0] == messages[1] and "not finite" in messages[0]


def test_draws_in_blocks_give_the_interpreters_numbers() -> None:
    text = (f"seed: 7\nparams:\n  r: reshape(linspace(2.5, 4.0, {ROWS * COLUMNS}), "
            f"({ROWS}, {COLUMNS}))\nsteps: 30\noutputs:\n  x:\n    initial: 0.5\n"
            "    step: clip(r * x[t-1] * (1 - x[t-1]) + 0.01 * normal() + 0.001 * "
            "uniform(-1, 1), 0, 1)\n  k:\n    dtype: int64\n    initial: 0\n"
            "    step: k[t-1] + integers(0, 10)\n")
    assert_same(*both(text))


def test_until_with_lanes_stays_on_the_loop_over_all_lanes() -> None:
    text = ("params:\n  r: linspace(1, 2, 100)\nsteps: 50\noutputs:\n  x:\n"
            "    initial: 1.0\n    step: x[t-1] * r\nuntil: t >= 9\n")
    assert "i0 +=" not in kernel_source(text)
    interpreted, compiled = both(text)
    assert compiled.steps_run == 10
    assert_same(interpreted, compiled)
