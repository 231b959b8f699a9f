"""A plain-Python reference evaluator for small recurrences, independent of recur.

It knows nothing of YAML or of recur's expression language: a test describes a
recurrence directly, with each output's step as a Python function of a `Reads`
object, and gets back what SPEC.md says the run must give. Everything is computed
with Python loops over Python numbers, one lane at a time; NumPy is only used to
package the finished rows as arrays.

Integer outputs use `CheckedInt`, whose every operation is checked against the range
of its dtype, so the step where an integer computation first leaves int32/int64 is
found without any wrapping arithmetic.

    >>> out = Output("x", lambda r: r.tap("x", 1) + r.tap("x", 2), initial=[0, 1])
    >>> run_reference([out], steps=5).trajectories["x"].tolist()
    [1.0, 2.0, 3.0, 5.0, 8.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

INT_BITS = {"int32": 32, "int64": 64}


class RefFault(Exception):
    """An evaluation failure (overflow, division by zero) in output `name` at step `t`."""

    def __init__(self, kind: str, name: str | None = None, t: int | None = None,
                 names: frozenset[str] = frozenset()) -> None:
        super().__init__(f"{kind} in {name!r} at t={t}")
        self.kind = kind
        self.name = name
        self.t = t
        # every output that faults at step t, evaluated in any order that respects
        # same-step reads (independent outputs may be evaluated either way round)
        self.names = names or (frozenset({name}) if name else frozenset())


class _Unavailable(Exception):
    """A same-step read of an output whose step faulted."""


class CheckedInt:
    """An integer of a fixed width: every result outside its range raises `RefFault`.

    Python ints combined with it take its width (NumPy 2's weak scalars); two widths
    combine to the wider one.
    """

    __slots__ = ("bits", "value")

    def __init__(self, value: int, bits: int = 64) -> None:
        self.value = int(value)
        self.bits = bits
        if not -(2 ** (bits - 1)) <= self.value < 2 ** (bits - 1):
            raise RefFault("integer overflow")

    def _other(self, other: Any) -> tuple[int, int]:
        if isinstance(other, CheckedInt):
            return other.value, max(self.bits, other.bits)
        if isinstance(other, bool) or not isinstance(other, int):
            raise TypeError(f"CheckedInt only mixes with ints, not {type(other).__name__}")
        return other, self.bits

    def _binary(self, other: Any, op: Callable[[int, int], int], swap: bool = False) -> Any:
        value, bits = self._other(other)
        a, b = (value, self.value) if swap else (self.value, value)
        try:
            result = op(a, b)
        except ZeroDivisionError:
            raise RefFault("integer division by zero") from None
        return CheckedInt(result, bits)

    def __add__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a + b)

    def __radd__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a + b, swap=True)

    def __sub__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a - b)

    def __rsub__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a - b, swap=True)

    def __mul__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a * b)

    def __rmul__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a * b, swap=True)

    def __floordiv__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a // b)

    def __rfloordiv__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a // b, swap=True)

    def __mod__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a % b)

    def __rmod__(self, other: Any) -> CheckedInt:
        return self._binary(other, lambda a, b: a % b, swap=True)

    def __pow__(self, other: Any) -> CheckedInt:
        value, _ = self._other(other)
        if value < 0:
            raise RefFault("integer to a negative integer power")
        return self._binary(other, lambda a, b: a**b)

    def __neg__(self) -> CheckedInt:
        return CheckedInt(-self.value, self.bits)

    def __pos__(self) -> CheckedInt:
        return self

    def __abs__(self) -> CheckedInt:
        return CheckedInt(abs(self.value), self.bits)

    def _compare(self, other: Any) -> int:
        return other.value if isinstance(other, CheckedInt) else other

    def __eq__(self, other: object) -> bool:
        return self.value == self._compare(other)

    def __ne__(self, other: object) -> bool:
        return self.value != self._compare(other)

    def __lt__(self, other: Any) -> bool:
        return self.value < self._compare(other)

    def __le__(self, other: Any) -> bool:
        return self.value <= self._compare(other)

    def __gt__(self, other: Any) -> bool:
        return self.value > self._compare(other)

    def __ge__(self, other: Any) -> bool:
        return self.value >= self._compare(other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"CheckedInt({self.value}, bits={self.bits})"


@dataclass
class Output:
    """One output: its step as `step(reads) -> number`, evaluated once per lane.

    `initial` lists the states before step 0, oldest first (x[t-depth] ... x[t-1]);
    each row is a number (shared by all lanes) or a list of one number per lane.
    `laned_by` names what the step reads that may carry lanes (params, outputs).
    """

    name: str
    step: Callable[[Reads], Any]
    initial: Sequence[Any] | None = None
    laned_by: frozenset[str] = frozenset()
    dtype: str = "float64"


@dataclass
class Result:
    """Trajectories (steps_run, *state), final states (*state), and how the run ended."""

    trajectories: dict[str, numpy.ndarray]
    last: dict[str, numpy.ndarray]
    steps_run: int
    stopped_by: str
    laned: dict[str, bool] = field(default_factory=dict)


class Reads:
    """What a step sees in one lane at step `t`."""

    def __init__(self, run: _Run, lane: int, t: int) -> None:
        self._run = run
        self.lane = lane
        self.t = t

    def tap(self, name: str, k: int) -> Any:
        """`name[t-k]`, k >= 1: from the history, or from the initial rows while t < k."""
        if k < 1:
            raise ValueError("tap needs k >= 1; use now() for x[t]")
        return self._run.value(name, self.t - k, self.lane)

    def now(self, name: str) -> Any:
        """`name[t]`: an output already computed in this step."""
        if self.t >= len(self._run.history[name]):
            raise RuntimeError(f"{name}[t] read before it was computed")
        if self._run.history[name][self.t] is None:
            raise _Unavailable(name)
        return self._run.value(name, self.t, self.lane)

    def seq(self, name: str, k: int = 0) -> Any:
        """`name[t+k]` under Theano's rule: element t - kmin + k of the (reversed) sequence."""
        values, kmin = self._run.sequences[name]
        return values[self.t - kmin + k]

    def param(self, name: str) -> Any:
        value = self._run.params[name]
        return value[self.lane] if isinstance(value, list) else value


class _Run:
    def __init__(self, outputs: Sequence[Output], lanes: int,
                 params: Mapping[str, Any], sequences: dict[str, tuple[list[Any], int]]):
        self.outputs = outputs
        self.lanes = lanes
        self.params = dict(params)
        self.sequences = sequences
        self.history: dict[str, list[list[Any]]] = {o.name: [] for o in outputs}
        self.initial: dict[str, list[list[Any]]] = {
            o.name: [self.row(o, r) for r in (o.initial or [])] for o in outputs
        }

    def row(self, output: Output, row: Any) -> list[Any]:
        if isinstance(row, list | tuple):
            if len(row) != self.lanes:
                raise ValueError(f"initial row of {output.name} has {len(row)} lanes")
            return [self.wrap(output, v) for v in row]
        return [self.wrap(output, row)] * self.lanes

    @staticmethod
    def wrap(output: Output, value: Any) -> Any:
        if output.dtype in INT_BITS:
            return CheckedInt(int(value), INT_BITS[output.dtype])
        if output.dtype in ("float64", "float32"):
            return float(value)
        return value

    def value(self, name: str, step: int, lane: int) -> Any:
        if step >= 0:
            return self.history[name][step][lane]
        initial = self.initial[name]
        if -step > len(initial):
            raise RuntimeError(f"{name}[{step}] read, but it has {len(initial)} initial rows")
        return initial[len(initial) + step][lane]


def laned_outputs(outputs: Sequence[Output], laned_params: frozenset[str],
                  lanes: int | None) -> dict[str, bool]:
    """Which states carry lanes: a fixed point over what each step reads."""
    laned = {o.name: lanes is not None and any(isinstance(r, list | tuple)
                                               for r in (o.initial or []))
             for o in outputs}
    if lanes is None:
        return laned
    changed = True
    while changed:
        changed = False
        for o in outputs:
            if not laned[o.name] and any(
                name in laned_params or laned.get(name, False) for name in o.laned_by
            ):
                laned[o.name] = changed = True
    return laned


def allowed_steps(length: int, offsets: set[int]) -> int:
    """Steps a sequence of `length` elements allows when read at offsets (Theano's rule)."""
    kmin, kmax = min(offsets | {0}), max(offsets | {0})
    return length - (kmax - kmin)


def run_reference(
    outputs: Sequence[Output],
    *,
    steps: int | None = None,
    params: Mapping[str, Any] | None = None,
    lanes: int | None = None,
    sequences: Mapping[str, tuple[Sequence[Any], set[int]]] | None = None,
    reverse: bool = False,
    until: Callable[[list[Reads]], bool] | None = None,
) -> Result:
    """Run `outputs` (given in an evaluation order: same-step reads only look earlier).

    params: name -> number, or a list of one number per lane (then `lanes` is its length).
    sequences: name -> (elements, the offsets k that the spec reads as s[t+k]).
    until: given the per-lane reads after a step (one entry without lanes), True to stop.

    Raises:
        RefFault: an integer fault, with the output's name and the step.
    """
    params = dict(params or {})
    laned_params = frozenset(k for k, v in params.items() if isinstance(v, list))
    n_lanes = 1 if lanes is None else lanes
    seqs: dict[str, tuple[list[Any], int]] = {}
    limits = []
    for name, (values, offsets) in (sequences or {}).items():
        values = list(values)
        if reverse:
            values.reverse()
        seqs[name] = (values, min(set(offsets) | {0}))
        limits.append(allowed_steps(len(values), set(offsets)))
    if steps is None:
        if not limits:
            raise ValueError("no steps and no sequences")
        steps = min(limits)
    if limits and steps > min(limits):
        raise ValueError(f"{steps} steps, but the sequences allow {min(limits)}")

    run = _Run(outputs, n_lanes, params, seqs)
    steps_run, stopped_by = steps, "steps"
    for t in range(steps):
        faults: list[tuple[str, str]] = []
        for output in outputs:
            row: list[Any] | None = []
            for lane in range(n_lanes):
                try:
                    row.append(_Run.wrap(output, output.step(Reads(run, lane, t))))
                except RefFault as fault:
                    faults.append((fault.kind, output.name))
                    row = None
                    break
                except _Unavailable:
                    row = None
                    break
            run.history[output.name].append(row)
        if faults:
            kind, name = faults[0]
            raise RefFault(kind, name, t, frozenset(name for _, name in faults))
        if until is not None and until([Reads(run, lane, t) for lane in range(n_lanes)]):
            steps_run, stopped_by = t + 1, "until"
            break

    laned = laned_outputs(outputs, laned_params, lanes)
    trajectories: dict[str, numpy.ndarray] = {}
    last: dict[str, numpy.ndarray] = {}
    for output in outputs:
        dtype = output.dtype
        rows = run.history[output.name][:steps_run]
        state = (n_lanes,) if laned[output.name] else ()

        def pack(row: list[Any], laned_: bool = laned[output.name]) -> Any:
            plain = [_plain(v) for v in row]
            return plain if laned_ else plain[0]

        trajectories[output.name] = numpy.array(
            [pack(row) for row in rows], dtype=dtype
        ).reshape((len(rows), *state))
        final = rows[-1] if rows else (run.initial[output.name] or [None])[-1]
        if final is not None:
            last[output.name] = numpy.array(pack(final), dtype=dtype).reshape(state)
    return Result(trajectories, last, steps_run, stopped_by, laned)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, CheckedInt) else value
