"""Steps affine in their own state, `y[t] = a[t] * y[t-1] + b[t]`, and their a and b.

The affine maps `y -> a*y + b` compose associatively ((a2, b2) after (a1, b1) is
(a2*a1, a2*b1 + b2)), so such a recurrence is a scan that can run in parallel
(`recur.engine.cuda.scan`): a long run with few lanes then takes a few passes over memory
instead of one step after another. Recognised: one output of a float dtype with the
single tap `-1`, no `until`, and a step that is `y[t-1]`, `c * y[t-1]` or `y[t-1] * c`,
plus or minus a term free of the state, every operation in the output's dtype; `a` and
`b` are read from the values the compiler already moved out of the loop (the `Program`'s
slots).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recur.compile import ir
from recur.diagnostics import Unsupported


@dataclass(frozen=True, slots=True)
class Affine:
    """`y[t] = coefficient[t] * y[t-1] + offset[t]` for the program's one output.

    Both are device arrays of shape (1 or steps, 1 or lanes), in the output's dtype.
    """

    coefficient: Any
    offset: Any


def affine(program: ir.Program, xp: Any) -> Affine:
    """The step's a and b (arrays of `xp`), or `Unsupported` saying why the step is not
    affine."""
    return _Affine(program, xp).split()


class _Affine:
    def __init__(self, program: ir.Program, xp: Any) -> None:
        self.program = program
        self.xp = xp
        if len(program.outputs) != 1:
            raise Unsupported("a scan runs one output, and this spec has several")
        self.output = program.outputs[0]
        self.name = self.output.name
        if self.output.dtype not in ("float32", "float64"):
            raise Unsupported(f"a scan runs floats, and '{self.name}' is {self.output.dtype}")
        if self.output.taps != (-1,) or program.until is not None:
            raise Unsupported("a scan needs the one tap [t-1] and no 'until'")
        self.step = self.output.step
        self.lanes = self.output.lanes
        self.steps = program.steps

    def split(self) -> Affine:
        node = self.step
        self._same_dtype(node)
        if self._is_state(node):
            return self._affine(None, None, 1)
        if isinstance(node, ir.Binary) and node.op in ("+", "-"):
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

    def _coefficient(self, node: ir.Node) -> Any:
        """`c` of a state term `y[t-1]`, `c * y[t-1]` or `y[t-1] * c` (None for 1)."""
        self._same_dtype(node)
        if self._is_state(node):
            return None
        if isinstance(node, ir.Binary) and node.op == "*":
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

    def _same_dtype(self, node: ir.Node) -> None:
        if node.type is None or node.type.dtype != self.output.dtype:
            raise Unsupported(f"the step computes in another dtype than {self.output.dtype}")

    def _is_state(self, node: ir.Node) -> bool:
        return isinstance(node, ir.Tap) and node.output == self.name and node.lag == 1

    def _reads_state(self, node: ir.Node) -> bool:
        return any(isinstance(part, ir.Tap) and part.output == self.name
                   for part in ir.walk(node))

    def _values(self, node: ir.Node) -> Any:
        """A state-free term's values by step and lane: (1 or steps, 1 or lanes)."""
        program, xp = self.program, self.xp
        if isinstance(node, ir.Hoisted):
            return self._by_lane(xp.asarray(program.hoisted[node.slot]).reshape(1, -1))
        if isinstance(node, ir.Swept):
            rows = program.swept[node.slot]
            if rows is None:
                raise Unsupported("a sub-expression free of the state that fails to compute")
            rows = xp.asarray(rows)
            return self._by_lane(rows.reshape(rows.shape[0], -1))
        if isinstance(node, ir.Literal):
            return xp.asarray(node.value).reshape(1, 1)
        if isinstance(node, ir.Unary) and node.op == "-":
            return -self._values(node.operand)
        if isinstance(node, ir.Param):
            return self._by_lane(xp.asarray(program.params[node.name]).reshape(1, -1))
        if isinstance(node, ir.SequenceRead):
            rows = xp.asarray(program.sequences[node.sequence])[node.row:node.row + self.steps]
            return self._by_lane(rows.reshape(rows.shape[0], -1))
        if any(isinstance(part, ir.Draw) for part in ir.walk(node)):
            raise Unsupported("a random call, which the loop draws step by step")
        raise Unsupported("a term of the step that was not computed before the loop")

    def _by_lane(self, values: Any) -> Any:
        if values.shape[1] not in (1, self.lanes):
            raise Unsupported("a term whose elements are not the state's lanes")
        return values
