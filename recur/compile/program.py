"""Spec trees -> the trees of a `Program` (`recur.compile.ir`), before the probe step.

`program_tree` resolves names (params, sequences, outputs, `t`, `steps`, constants),
numbers the random calls and gives each node its variation; the types come later,
from the probe (`recur.compile.lower`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from recur.compile import ir
from recur.lang import exact
from recur.lang import nodes as n
from recur.lang.functions import CONSTANTS, DRAWS


@dataclass(frozen=True, slots=True)
class Scope:
    """What the names of a step mean: params, sequences (with their lowest offset read)
    and outputs."""

    params: frozenset[str]
    sequences: Mapping[str, int]  # name -> lowest offset read (kmin <= 0)
    outputs: frozenset[str]


def program_tree(node: n.Node, scope: Scope, output: str = "",
                 sites: tuple[int, ...] = ()) -> ir.Node:
    """`node` as an untyped `Program` tree. `node` is the step of `output` ("" for
    `until`), whose random calls have `sites` (parents first: `recur.compile.analyze`)."""
    return _Lowering(scope, output, iter(sites)).lower(node)


class _Lowering:
    def __init__(self, scope: Scope, output: str, sites: Iterator[int]) -> None:
        self.scope = scope
        self.output = output
        self.sites = sites

    def lower(self, node: n.Node) -> ir.Node:
        span, typed = node.span, None  # types come from the probe step
        if isinstance(node, n.Number):
            return ir.Literal(span, typed, ir.CONSTANT, node.value)
        if isinstance(node, n.Name):
            return self._name(node, typed)
        if isinstance(node, n.TimeIndex):
            return ir.TimeIndex(span, typed, ir.PER_STEP, node.offset)
        if isinstance(node, n.Subscript):
            read = self._read(node, typed)
            if read is not None:
                return read
            value, index = self.lower(node.value), tuple(self.lower(i) for i in node.index)
            return ir.Subscript(span, typed, ir.varies_of(value, *index), value, index)
        if isinstance(node, n.Unary):
            operand = self.lower(node.operand)
            return ir.Unary(span, typed, operand.varies, node.op, operand)
        if isinstance(node, n.Binary):
            left = self.lower(node.left)
            right = (self._exponent(node.right) if _fixed_power(node)
                     else self.lower(node.right))
            return ir.Binary(span, typed, ir.varies_of(left, right), node.op, left, right)
        if isinstance(node, n.Compare):
            operands = tuple(self.lower(o) for o in node.operands)
            return ir.Compare(span, typed, ir.varies_of(*operands), node.ops, operands)
        if isinstance(node, n.Select):
            test, body, orelse = (self.lower(x) for x in (node.test, node.body, node.orelse))
            return ir.Select(span, typed, ir.varies_of(test, body, orelse), test, body, orelse)
        if isinstance(node, n.Call) and node.func in DRAWS:
            site = next(self.sites)  # before the arguments': parents first
            args = tuple(self.lower(a) for a in node.args)
            return ir.Draw(span, typed, ir.PER_STEP, node.func, site, self.output, args)
        if isinstance(node, n.Call):
            args = tuple(self.lower(a) for a in node.args)
            axis = n.constant_axis(node.axis) if node.axis is not None else None
            return ir.Call(span, typed, ir.varies_of(*args), node.func, args, axis)
        if isinstance(node, n.Slice):
            parts = [None if p is None else self.lower(p)
                     for p in (node.lower, node.upper, node.step)]
            varies = ir.varies_of(*[p for p in parts if p is not None])
            return ir.Slice(span, typed, varies, *parts)
        if isinstance(node, n.ListExpr):
            items = tuple(self.lower(item) for item in node.items)
            return ir.ListExpr(span, typed, ir.varies_of(*items), items)
        raise AssertionError(f"no lowering for {type(node).__name__}")

    def _name(self, node: n.Name, typed: ir.Type | None) -> ir.Node:
        name, span = node.id, node.span
        if name in CONSTANTS:
            return ir.Literal(span, typed, ir.CONSTANT, CONSTANTS[name])
        if name == "t":
            return ir.Time(span, typed, ir.PER_STEP)
        if name == "steps":
            return ir.Steps(span, typed, ir.CONSTANT)
        if name in self.scope.sequences:
            return self._sequence(node, name, 0, typed)
        return ir.Param(span, typed, ir.CONSTANT, name)

    def _read(self, node: n.Subscript, typed: ir.Type | None) -> ir.Node | None:
        """`x[t-k]` or `s[t+k]`, else None."""
        target = node.value
        if not (isinstance(target, n.Name) and len(node.index) == 1
                and isinstance(node.index[0], n.TimeIndex)):
            return None
        offset = node.index[0].offset
        if target.id in self.scope.outputs:
            return ir.Tap(node.span, typed, ir.PER_STATE, target.id, -offset)
        if target.id in self.scope.sequences:
            return self._sequence(node, target.id, offset, typed)
        return None

    def _sequence(self, node: n.Node, name: str, offset: int,
                  typed: ir.Type | None) -> ir.Node:
        return ir.SequenceRead(node.span, typed, ir.PER_STEP, name, offset,
                               offset - self.scope.sequences[name])

    def _exponent(self, node: n.Node) -> ir.Node:
        """The literal exponent of a power computed without `pow`, which is never
        evaluated alone (`-2` stays one literal)."""
        value = exact.literal(node)
        assert value is not None
        return ir.Exponent(node.span, None, ir.CONSTANT, value)


def _fixed_power(node: n.Binary) -> bool:
    """`x ** k`, k an integer literal or 0.5: computed without `pow` (`exact`)."""
    return node.op == "**" and (exact.integer_exponent(node.right) is not None
                                or exact.is_half(node.right))
