"""The vector-Jacobian product of one step tree, as `Program` trees (reverse mode).

Gradients through time (issue 13) turn a `Program` into its adjoint, a recurrence run
backwards, so that every engine runs it without code of its own. This is its building
block: given a step tree and a tree for the cotangent of the step's value,
`step_vjp` gives a tree for the cotangent of each value the step reads (a tap, a
sequence row, a param). The trees are made of the step's own sub-trees and the
derivative rules of the function table (`recur.lang.derivatives`), so the closures
evaluate them like any step; the nodes made here are untyped (the closures check them
at run time). Integer and bool values, comparisons and piecewise-constant functions
pass nothing back; `where` and `a if c else b` pass the cotangent to the branch taken.
Reductions, matrix products, indexing and shape functions have structural rules not
built yet: a step that needs one is refused with the node's place.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy

from recur.compile import ir
from recur.compile.program import Scope, program_tree
from recur.diagnostics import ExprError
from recur.lang import exact
from recur.lang.derivatives import partials
from recur.lang.functions import ARGUMENTS


@dataclass(frozen=True, slots=True)
class TapKey:
    """A tap `output[t - lag]`, whatever node reads it."""

    output: str
    lag: int


@dataclass(frozen=True, slots=True)
class SequenceKey:
    """A sequence read `sequence[t + offset]`."""

    sequence: str
    offset: int


@dataclass(frozen=True, slots=True)
class ParamKey:
    name: str


Read = TapKey | SequenceKey | ParamKey

_NOT_YET = ("element-wise arithmetic and functions, selects, taps, sequence reads and "
            "params are differentiated; reductions, matrix products, indexing and shape "
            "functions not yet",)


def read_of(node: ir.Node) -> Read | None:
    """The value a leaf reads, which a gradient is a gradient of; None for other nodes."""
    if isinstance(node, ir.Tap):
        return TapKey(node.output, node.lag)
    if isinstance(node, ir.SequenceRead):
        return SequenceKey(node.sequence, node.offset)
    if isinstance(node, ir.Param):
        return ParamKey(node.name)
    return None


def step_vjp(tree: ir.Node, cotangent: ir.Node) -> dict[Read, ir.Node]:
    """The cotangent of each float value `tree` reads, given `cotangent`, that of its value
    (of its shape): the sum over the reads of each. A cotangent is never larger than the
    value it belongs to, and broadcasts to it (summed back where the value was broadcast:
    a scalar param read by every lane gets one number).

    Raises:
        ExprError: at a node whose rule is not built yet (a reduction, `@`, indexing).
    """
    sums: dict[Read, ir.Node] = {}
    _Pullback(tree, sums).pull(tree, cotangent)
    return sums


class _Pullback:
    """Walks a tree from its root, passing each node's cotangent on to its inputs."""

    def __init__(self, tree: ir.Node, sums: dict[Read, ir.Node]) -> None:
        self.sums = sums
        self.live = _live(tree)  # the nodes a float read sits under (by id)

    def pull(self, node: ir.Node, cotangent: ir.Node) -> None:
        """Pass `cotangent`, the cotangent of `node`, to the reads under it."""
        if id(node) not in self.live:
            return
        key = read_of(node)
        if key is not None:
            before = self.sums.get(key)
            self.sums[key] = cotangent if before is None else _add(before, cotangent)
            return
        rule: Callable[[ir.Node, ir.Node], None] | None = getattr(
            self, f"_pull_{type(node).__name__}", None)
        if rule is None:
            raise ExprError(f"no gradient through {_described(node)} yet", node.span, _NOT_YET)
        rule(node, cotangent)

    def _send(self, child: ir.Node, parent: ir.Node, cotangent: ir.Node) -> None:
        """`cotangent`, computed at `parent`'s shape, to `child`, summed to its shape."""
        if (child.type is not None and parent.type is not None
                and child.type.shape != parent.type.shape):
            cotangent = ir.SumTo(child.span, None, cotangent.varies, cotangent,
                                 child.type.shape)
        self.pull(child, cotangent)

    def _pull_Hoisted(self, node: ir.Hoisted, cotangent: ir.Node) -> None:
        self.pull(node.source, cotangent)  # a param in a constant gets its gradient

    def _pull_Swept(self, node: ir.Swept, cotangent: ir.Node) -> None:
        self.pull(node.source, cotangent)

    def _pull_Unary(self, node: ir.Unary, cotangent: ir.Node) -> None:
        if node.op == "-":
            self._send(node.operand, node, _negative(cotangent))
        elif node.op == "+":
            self._send(node.operand, node, cotangent)

    def _pull_Binary(self, node: ir.Binary, cotangent: ir.Node) -> None:
        left, right, op = node.left, node.right, node.op
        if ir.fixed_exponent(node) is not None:
            partial = _fixed_power_partial(node)
            if not _is_zero(partial):
                self._send(left, node, _times(cotangent, partial))
        elif op == "+":
            self._send(left, node, cotangent)
            self._send(right, node, cotangent)
        elif op == "-":
            self._send(left, node, cotangent)
            self._send(right, node, _negative(cotangent))
        elif op == "*":
            self._send(left, node, _times(cotangent, right))
            self._send(right, node, _times(cotangent, left))
        elif op == "/":  # d(l / r)/dr = -(l / r) / r
            share = _binary("/", cotangent, right)
            self._send(left, node, share)
            self._send(right, node, _negative(_times(share, node)))
        elif op == "%":  # l % r = l - r * (l // r)
            self._send(left, node, cotangent)
            self._send(right, node, _negative(_times(cotangent, _binary("//", left, right))))
        elif op == "**":
            self._pull_power(node, cotangent)
        elif op == "@":
            raise ExprError("no gradient through a matrix product (@) yet", node.span,
                            _NOT_YET)
        # `//`, `and`, `or`: piecewise constant, or bool

    def _pull_power(self, node: ir.Binary, cotangent: ir.Node) -> None:
        """`l ** r`: r * l ** (r - 1) for l, and y * log(l) for r, with log(1) where l is
        0 (the value is then 0 or 1 and flat in r; jax does the same)."""
        left, right = node.left, node.right
        lowered = _binary("**", left, _binary("-", right, _literal(node, 1)))
        self._send(left, node, _times(cotangent, _times(right, lowered)))
        zero = _literal(node, 0)
        is_zero = ir.Compare(node.span, None, left.varies, ("==",), (left, zero))
        safe = _call(node, "where", (is_zero, _literal(node, 1.0), left))
        self._send(right, node, _times(cotangent, _times(node, _call(node, "log", (safe,)))))

    def _pull_Select(self, node: ir.Select, cotangent: ir.Node) -> None:
        self._pull_branches(node, node.test, node.body, node.orelse, cotangent)

    def _pull_branches(self, node: ir.Node, test: ir.Node, body: ir.Node, orelse: ir.Node,
                       cotangent: ir.Node) -> None:
        """Each branch gets the cotangent where it is taken, and 0 elsewhere (not the
        cotangent times 0, which an infinite one would make NaN)."""
        zero = _literal(node, 0.0)
        self._send(body, node, _call(node, "where", (test, cotangent, zero)))
        self._send(orelse, node, _call(node, "where", (test, zero, cotangent)))

    def _pull_Call(self, node: ir.Call, cotangent: ir.Node) -> None:
        if node.func == "where":
            test, body, orelse = node.args
            self._pull_branches(node, test, body, orelse, cotangent)
            return
        rules = _partials(node.func, len(node.args))
        if rules is None:
            raise ExprError(f"no gradient through {_described(node)} yet", node.span,
                            _NOT_YET)
        values = {**dict(zip(ARGUMENTS, node.args, strict=False)), "y": node}
        for arg, rule in zip(node.args, rules, strict=True):
            if rule is not None:
                self._send(arg, node, _times(cotangent, _substituted(rule, values, node)))

    def _pull_Draw(self, node: ir.Draw, cotangent: ir.Node) -> None:
        """uniform(low, high) = low + (high - low) * u, normal(mean, std) = mean + std * z,
        where u and z are the draw without arguments at the same counter: the same
        numbers (`recur.closures`), so that the gradient is that of the values drawn."""
        if node.kind == "integers" or not node.args:
            return
        unit = replace(node, args=())
        first, second = node.args
        if node.kind == "uniform":
            self._send(first, node, _times(cotangent, _binary("-", _literal(node, 1), unit)))
        else:
            self._send(first, node, cotangent)
        self._send(second, node, _times(cotangent, unit))


def _live(tree: ir.Node) -> set[int]:
    """The ids of the nodes with a float read under them (through moved sub-trees too):
    the only ones a cotangent goes to."""
    live: set[int] = set()

    def visit(node: ir.Node) -> bool:
        inside = [visit(child) for child in _inputs(node)]
        if not _floating(node):
            return False
        if any(inside) or read_of(node) is not None:
            live.add(id(node))
            return True
        return False

    visit(tree)
    return live


def _inputs(node: ir.Node) -> tuple[ir.Node, ...]:
    if isinstance(node, ir.Hoisted | ir.Swept):
        return (node.source,)
    return ir.children(node)


def _floating(node: ir.Node) -> bool:
    """Whether a node's value can carry a gradient: a float or complex one (or one the
    probe did not see, a list literal: its items decide)."""
    if isinstance(node, ir.Exponent | ir.Slice):
        return False
    return node.type is None or numpy.dtype(node.type.dtype).kind in "fc"


def _described(node: ir.Node) -> str:
    if isinstance(node, ir.Call):
        return f"{node.func}() of {len(node.args)} argument" + ("s" if len(node.args) > 1
                                                                  else "")
    if isinstance(node, ir.ListExpr):
        return "a list literal"
    if isinstance(node, ir.Subscript):
        return "indexing"
    return f"a {type(node).__name__.lower()} expression"


# Building trees: a new node takes the span of a node it is made from, so that an error
# at run time points into the step.


def _binary(op: str, left: ir.Node, right: ir.Node) -> ir.Node:
    return ir.Binary(left.span, None, ir.varies_of(left, right), op, left, right)


def _times(cotangent: ir.Node, factor: ir.Node) -> ir.Node:
    if isinstance(factor, ir.Literal) and factor.value == 1:
        return cotangent
    return _binary("*", cotangent, factor)


def _add(left: ir.Node, right: ir.Node) -> ir.Node:
    return _binary("+", left, right)


def _negative(node: ir.Node) -> ir.Node:
    return ir.Unary(node.span, None, node.varies, "-", node)


def _literal(at: ir.Node, value: int | float) -> ir.Literal:
    return ir.Literal(at.span, None, ir.CONSTANT, value)


def _call(at: ir.Node, func: str, args: tuple[ir.Node, ...]) -> ir.Node:
    return ir.Call(at.span, None, ir.varies_of(*args), func, args, None)


def _fixed_power_partial(node: ir.Binary) -> ir.Node:
    """d(l ** k)/dl for a literal exponent k computed without `pow`: 0.5 / y for k = 0.5,
    else k * l ** (k - 1), the power computed the same way where it can be."""
    k = ir.fixed_exponent(node)
    assert k is not None
    if exact.is_half_of(k):
        return _binary("/", _literal(node, 0.5), node)
    if k == 0:
        return _literal(node, 0)
    if k == 1:
        return _literal(node, 1)
    lower = k - 1
    exponent = (ir.Exponent(node.span, None, ir.CONSTANT, lower)
                if exact.integer_exponent_of(lower) is not None else _literal(node, lower))
    return _binary("*", _literal(node, k), _binary("**", node.left, exponent))


@functools.cache
def _partials(func: str, count: int) -> tuple[ir.Node | None, ...] | None:
    """The table's partials of a call as `Program` trees over params named `a`, `b`, ...
    and `y`; None for a partial 0, and for all of them where the rule is structural."""
    trees = partials(func, count)
    if trees is None:
        return None
    scope = Scope(frozenset(), {}, frozenset())
    lowered = (program_tree(tree, scope) for tree in trees)
    return tuple(None if _is_zero(tree) else tree for tree in lowered)


def _is_zero(tree: ir.Node) -> bool:
    return isinstance(tree, ir.Literal) and tree.value == 0


def _substituted(rule: ir.Node, values: dict[str, ir.Node], at: ir.Node) -> ir.Node:
    """A partial with its arguments and `y` replaced by the call's trees, at its span."""
    if isinstance(rule, ir.Param):
        return values[rule.name]
    copy = ir.map_children(rule, lambda child: _substituted(child, values, at))
    inputs = ir.children(copy)
    return replace(copy, span=at.span, varies=ir.varies_of(*inputs) if inputs else copy.varies)
