"""Steps affine in their own state, `y[t] = a[t] * y[t-1] + b[t]`, and their a and b.

The affine maps `y -> a*y + b` compose associatively ((a2, b2) after (a1, b1) is
(a2*a1, a2*b1 + b2)), so such a recurrence is a scan that can run in parallel
(`recur.engine.cuda.scan`): a long run with few lanes then takes a few passes over memory
instead of one step after another. Recognised: one output of a float dtype with the
single tap `-1`, no `until`, and a step that is `y[t-1]`, `c * y[t-1]` or `y[t-1] * c`,
plus or minus a term free of the state, every operation in the output's dtype; `a` and
`b` are read from the values the compiler already moved out of the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from recur.compile.lower import Compiled
from recur.engine.c.generate import Unsupported
from recur.lang import nodes as n
from recur.spec import Spec


@dataclass(frozen=True, slots=True)
class Affine:
    """`y[t] = coefficient[t] * y[t-1] + offset[t]` for the plan's one output.

    Both are device arrays of shape (1 or steps, 1 or lanes), in the output's dtype.
    """

    coefficient: Any
    offset: Any


def affine(compiled: Compiled, spec: Spec) -> Affine:
    """The step's a and b, or `Unsupported` saying why the step is not affine."""
    return _Affine(compiled, spec).split()


class _Affine:
    def __init__(self, compiled: Compiled, spec: Spec) -> None:
        self.compiled = compiled
        self.xp = compiled.plan.backend.xp
        if len(compiled.plan.outputs) != 1:
            raise Unsupported("a scan runs one output, and this spec has several")
        self.output = compiled.plan.outputs[0]
        self.name = self.output.name
        if self.output.dtype not in ("float32", "float64"):
            raise Unsupported(f"a scan runs floats, and '{self.name}' is {self.output.dtype}")
        if compiled.analysis.taps[self.name] != (-1,) or spec.until is not None:
            raise Unsupported("a scan needs the one tap [t-1] and no 'until'")
        self.step = spec.output(self.name).step
        self.lanes = math.prod(self.output.history.shape)
        self.steps = compiled.plan.steps

    def split(self) -> Affine:
        node = self.step
        self._same_dtype(node)
        if self._is_state(node):
            return self._affine(None, None, 1)
        if isinstance(node, n.Binary) and node.op in ("+", "-"):
            for state, free, state_first in ((node.left, node.right, True),
                                             (node.right, node.left, False)):
                if self._reads_state(free):
                    continue
                coefficient, offset = self._coefficient(state), self._values(free)
                if node.op == "-" and state_first:  # c*y - b == c*y + (-b), exactly
                    offset = -offset
                sign = -1 if node.op == "-" and not state_first else 1  # b - c*y
                return self._affine(coefficient, offset, sign)
        coefficient = self._coefficient(node)
        return self._affine(coefficient, None, 1)

    def _coefficient(self, node: n.Node) -> Any:
        """`c` of a state term `y[t-1]`, `c * y[t-1]` or `y[t-1] * c` (None for 1)."""
        self._same_dtype(node)
        if self._is_state(node):
            return None
        if isinstance(node, n.Binary) and node.op == "*":
            if self._is_state(node.left) and not self._reads_state(node.right):
                return self._values(node.right)
            if self._is_state(node.right) and not self._reads_state(node.left):
                return self._values(node.left)
        raise Unsupported("the step is not a * y[t-1] + b with a and b free of the state")

    def _affine(self, coefficient: Any, offset: Any, sign: int) -> Affine:
        dtype = self.output.dtype
        xp = self.xp
        a = xp.ones((1, 1), dtype=dtype) if coefficient is None else coefficient.astype(dtype)
        b = xp.zeros((1, 1), dtype=dtype) if offset is None else offset.astype(dtype)
        if sign < 0:
            a = -a
        return Affine(xp.ascontiguousarray(a), xp.ascontiguousarray(b))

    def _same_dtype(self, node: n.Node) -> None:
        seen = self.compiled.observations.get(id(node))
        if seen is None or seen.dtype != self.output.dtype:
            raise Unsupported(f"the step computes in another dtype than {self.output.dtype}")

    def _is_state(self, node: n.Node) -> bool:
        return (isinstance(node, n.Subscript) and isinstance(node.value, n.Name)
                and node.value.id == self.name and len(node.index) == 1
                and isinstance(node.index[0], n.TimeIndex) and node.index[0].offset == -1)

    def _reads_state(self, node: n.Node) -> bool:
        if isinstance(node, n.Name) and node.id == self.name:
            return True
        return any(self._reads_state(child) for child in n.children(node))

    def _values(self, node: n.Node) -> Any:
        """A state-free term's values by step and lane: (1 or steps, 1 or lanes)."""
        compiled, xp = self.compiled, self.xp
        key = id(node)
        if key in compiled.hoisted_values:
            return self._by_lane(xp.asarray(compiled.hoisted_values[key]).reshape(1, -1))
        if key in compiled.swept_values:
            rows = xp.asarray(compiled.swept_values[key])
            return self._by_lane(rows.reshape(rows.shape[0], -1))
        if isinstance(node, n.Number):
            return xp.asarray(node.value).reshape(1, 1)
        if isinstance(node, n.Unary) and node.op == "-":
            return -self._values(node.operand)
        if isinstance(node, n.Name) and node.id in compiled.params:
            return self._by_lane(xp.asarray(compiled.params[node.id]).reshape(1, -1))
        if isinstance(node, n.Name) and node.id in compiled.sequences:
            return self._sequence(node.id, 0)
        if (isinstance(node, n.Subscript) and isinstance(node.value, n.Name)
                and node.value.id in compiled.sequences and len(node.index) == 1
                and isinstance(node.index[0], n.TimeIndex)):
            return self._sequence(node.value.id, node.index[0].offset)
        raise Unsupported("a term of the step that was not computed before the loop")

    def _sequence(self, name: str, offset: int) -> Any:
        shift = offset - self.compiled.analysis.sequence_offsets[name][0]
        rows = self.xp.asarray(self.compiled.sequences[name])[shift:shift + self.steps]
        return self._by_lane(rows.reshape(rows.shape[0], -1))

    def _by_lane(self, values: Any) -> Any:
        if values.shape[1] not in (1, self.lanes):
            raise Unsupported("a term whose elements are not the state's lanes")
        return values
