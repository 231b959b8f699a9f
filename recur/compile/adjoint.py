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
Matrix products (`@`, `dot`), `sum`, `mean`, `min`/`max` over all elements and
`transpose` have structural rules; indexing, reductions along an axis and the other
shape functions not yet: a step that needs one is refused with the node's place.

Broadcasting is taken back lazily: an element-wise node passes its cotangent on at
the shape it came in (its partial broadcasts against it), and only a node whose rule
needs its own shape (a reduction, a product) sums it first (`ir.SumTo`). With
`summed=True` the reads get theirs summed to their own shape; without, at the shape
they were used in, which keeps the sum over lanes out of the step (an adjoint
`Program` sums per lane, and the lanes after the run).
"""

from __future__ import annotations

import functools
import math
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

_NOT_YET = ("element-wise arithmetic and functions, selects, list literals, indexing by "
            "a literal integer or slice, matrix products, sum, mean, min/max (along axes too), "
            "norm, transpose, reshape, stack and concatenate of lists are differentiated; "
            "other indexing, and norm or prod along an axis, not yet",)
# The calls whose rule needs the cotangent at their own shape (`_Pullback._send`).
_STRUCTURAL = frozenset({"sum", "mean", "min", "max", "dot", "transpose", "norm", "reshape",
                         "stack", "concatenate"})


def read_name(key: Read) -> str:
    """The name of the value a read reads."""
    if isinstance(key, TapKey):
        return key.output
    return key.sequence if isinstance(key, SequenceKey) else key.name


def read_of(node: ir.Node) -> Read | None:
    """The value a leaf reads, which a gradient is a gradient of; None for other nodes."""
    if isinstance(node, ir.Tap):
        return TapKey(node.output, node.lag)
    if isinstance(node, ir.SequenceRead):
        return SequenceKey(node.sequence, node.offset)
    if isinstance(node, ir.Param):
        return ParamKey(node.name)
    return None


def step_vjp(tree: ir.Node, cotangent: ir.Node, *, summed: bool = True
             ) -> dict[Read, ir.Node]:
    """The cotangent of each float value `tree` reads, given `cotangent`, that of its value
    (of its shape): the sum over the reads of each. With `summed`, a cotangent is never
    larger than the value it belongs to, and broadcasts to it (summed back where the
    value was broadcast: a scalar param read by every lane gets one number); without,
    it may be larger, and summing it to the value's shape is the caller's.

    Raises:
        ExprError: at a node whose rule is not built yet (indexing, `axis=`).
    """
    sums: dict[Read, ir.Node] = {}
    _Pullback(tree, sums, summed).pull(tree, cotangent)
    return sums


Shape = tuple[int, ...] | None  # a cotangent's shape as far as known (None: unknown)


class _Pullback:
    """Walks a tree from its root, passing each node's cotangent on to its inputs."""

    def __init__(self, tree: ir.Node, sums: dict[Read, ir.Node], summed: bool) -> None:
        self.sums = sums
        self.summed = summed
        self.live = _live(tree)  # the nodes a float read sits under (by id)

    def pull(self, node: ir.Node, cotangent: ir.Node, at: Shape = None) -> None:
        """Pass `cotangent`, the cotangent of `node` (of shape `at`, which may be larger
        than the node's: see the module docstring), to the reads under it."""
        if id(node) not in self.live:
            return
        if at is None:
            at = _shape(node)
        key = read_of(node)
        if key is not None:
            before = self.sums.get(key)
            self.sums[key] = cotangent if before is None else _add(before, cotangent)
            return
        rule: Callable[[ir.Node, ir.Node, Shape], None] | None = getattr(
            self, f"_pull_{type(node).__name__}", None)
        if rule is None:
            raise ExprError(f"no gradient through {_described(node)} yet", node.span, _NOT_YET)
        rule(node, cotangent, at)

    def _send(self, child: ir.Node, parent: ir.Node, cotangent: ir.Node, at: Shape) -> None:
        """An element-wise rule's `cotangent` for `child`: at most the shape of the
        parent's cotangent (`at`) broadcast with the parent's own."""
        shape = _broadcast(at, _shape(parent))
        if self._exact(child) and shape is not None and shape != _shape(child):
            cotangent = ir.SumTo(child.span, None, cotangent.varies, cotangent,
                                 _shape(child) or ())
            shape = _shape(child)
        self.pull(child, cotangent, shape)

    def _send_exact(self, child: ir.Node, cotangent: ir.Node) -> None:
        """A structural rule's `cotangent` for `child`, made at the child's shape."""
        self.pull(child, cotangent, _shape(child))

    def _exact(self, node: ir.Node) -> bool:
        """Whether `node` takes its cotangent at its own shape only."""
        while isinstance(node, ir.Hoisted | ir.Swept):
            node = node.source
        if read_of(node) is not None:
            return self.summed
        if isinstance(node, ir.Binary):
            return node.op == "@"
        if isinstance(node, ir.Subscript):
            return True
        return isinstance(node, ir.Call) and node.func in _STRUCTURAL and (
            node.func not in ("min", "max") or len(node.args) == 1)

    def _pull_Hoisted(self, node: ir.Hoisted, cotangent: ir.Node, at: Shape) -> None:
        self.pull(node.source, cotangent, at)  # a param in a constant gets its gradient

    def _pull_Swept(self, node: ir.Swept, cotangent: ir.Node, at: Shape) -> None:
        self.pull(node.source, cotangent, at)

    def _pull_Unary(self, node: ir.Unary, cotangent: ir.Node, at: Shape) -> None:
        if node.op == "-":
            self._send(node.operand, node, _negative(cotangent), at)
        elif node.op == "+":
            self._send(node.operand, node, cotangent, at)

    def _pull_Binary(self, node: ir.Binary, cotangent: ir.Node, at: Shape) -> None:
        left, right, op = node.left, node.right, node.op
        if ir.fixed_exponent(node) is not None:
            partial = _fixed_power_partial(node)
            if not _is_zero(partial):
                self._send(left, node, _times(cotangent, partial), at)
        elif op == "+":
            self._send(left, node, cotangent, at)
            self._send(right, node, cotangent, at)
        elif op == "-":
            self._send(left, node, cotangent, at)
            self._send(right, node, _negative(cotangent), at)
        elif op == "*":
            self._send(left, node, _times(cotangent, right), at)
            self._send(right, node, _times(cotangent, left), at)
        elif op == "/":  # d(l / r)/dr = -(l / r) / r
            share = _binary("/", cotangent, right)
            self._send(left, node, share, at)
            self._send(right, node, _negative(_times(share, node)), at)
        elif op == "%":  # l % r = l - r * (l // r)
            self._send(left, node, cotangent, at)
            self._send(right, node, _negative(_times(cotangent, _binary("//", left, right))),
                       at)
        elif op == "**":
            self._pull_power(node, cotangent, at)
        elif op == "@":
            self._pull_product(node, left, right, cotangent)
        # `//`, `and`, `or`: piecewise constant, or bool

    def _pull_power(self, node: ir.Binary, cotangent: ir.Node, at: Shape) -> None:
        """`l ** r`: r * l ** (r - 1) for l, and y * log(l) for r, with log(1) where l is
        0 (the value is then 0 or 1 and flat in r; jax does the same)."""
        left, right = node.left, node.right
        lowered = _binary("**", left, _binary("-", right, _literal(node, 1)))
        self._send(left, node, _times(cotangent, _times(right, lowered)), at)
        zero = _literal(node, 0)
        is_zero = ir.Compare(node.span, None, left.varies, ("==",), (left, zero))
        safe = _call(node, "where", (is_zero, _literal(node, 1.0), left))
        self._send(right, node, _times(cotangent, _times(node, _call(node, "log", (safe,)))),
                   at)

    def _pull_product(self, node: ir.Node, left: ir.Node, right: ir.Node,
                      cotangent: ir.Node) -> None:
        """`l @ r` (and `dot`): each factor gets the cotangent times the other, transposed;
        a vector's outer product with the cotangent is `reshape(a, [-1, 1]) * b`."""
        ranks = (len(_shape(left) or ()), len(_shape(right) or ()))
        if ranks == (2, 1):
            for_left, for_right = _outer(cotangent, right), _product(_transposed(left),
                                                                      cotangent)
        elif ranks == (1, 2):
            for_left, for_right = _product(right, cotangent), _outer(left, cotangent)
        elif ranks == (2, 2):
            for_left = _product(cotangent, _transposed(right))
            for_right = _product(_transposed(left), cotangent)
        elif ranks == (1, 1):
            for_left, for_right = _times(cotangent, right), _times(cotangent, left)
        else:
            raise ExprError("no gradient through a matrix product of more than two "
                            "dimensions yet", node.span, _NOT_YET)
        self._send_exact(left, for_left)
        self._send_exact(right, for_right)

    def _pull_Select(self, node: ir.Select, cotangent: ir.Node, at: Shape) -> None:
        self._pull_branches(node, node.test, node.body, node.orelse, cotangent, at)

    def _pull_branches(self, node: ir.Node, test: ir.Node, body: ir.Node, orelse: ir.Node,
                       cotangent: ir.Node, at: Shape) -> None:
        """Each branch gets the cotangent where it is taken, and 0 elsewhere (not the
        cotangent times 0, which an infinite one would make NaN)."""
        zero = _literal(node, 0.0)
        self._send(body, node, _call(node, "where", (test, cotangent, zero)), at)
        self._send(orelse, node, _call(node, "where", (test, zero, cotangent)), at)

    def _pull_Call(self, node: ir.Call, cotangent: ir.Node, at: Shape) -> None:
        if node.func == "where":
            test, body, orelse = node.args
            self._pull_branches(node, test, body, orelse, cotangent, at)
            return
        structural = getattr(self, f"_call_{node.func}", None)
        if structural is not None and self._exact(node):
            if node.axis is not None and node.func not in _ALONG_AXES:
                raise ExprError(f"no gradient through {node.func}() along an axis yet",
                                node.span, _NOT_YET)
            structural(node, cotangent)
            return
        rules = _partials(node.func, len(node.args))
        if rules is None:
            raise ExprError(f"no gradient through {_described(node)} yet", node.span,
                            _NOT_YET)
        values = {**dict(zip(ARGUMENTS, node.args, strict=False)), "y": node}
        for arg, rule in zip(node.args, rules, strict=True):
            if rule is not None:
                self._send(arg, node, _times(cotangent, _substituted(rule, values, node)), at)

    # Structural rules: the cotangent comes summed to the call's shape, and each argument
    # gets one at its own shape.

    def _call_sum(self, node: ir.Call, cotangent: ir.Node) -> None:
        arg = node.args[0]
        self._send_exact(arg, _spread(_kept(cotangent, node, arg), arg))

    def _call_mean(self, node: ir.Call, cotangent: ir.Node) -> None:
        (arg,) = node.args
        shape = _shape(arg) or ()
        count = math.prod(shape[axis] for axis in _axes(node, len(shape)))
        share = _binary("/", _kept(cotangent, node, arg), _literal(node, count))
        self._send_exact(arg, _spread(share, arg))

    def _call_max(self, node: ir.Call, cotangent: ir.Node) -> None:
        """The elements equal to the extreme share its cotangent equally (as jax.grad)."""
        (arg,) = node.args
        hit = ir.Compare(node.span, None, ir.varies_of(arg, node), ("==",),
                         (arg, _kept(node, node, arg)))
        ones = _call(node, "where", (hit, _literal(node, 1.0), _literal(node, 0.0)))
        count = ir.Call(node.span, None, ones.varies, "sum", (ones,), node.axis)
        share = _binary("/", ones, _kept(count, node, arg))
        self._send_exact(arg, _times(_kept(cotangent, node, arg), share))

    _call_min = _call_max

    def _call_norm(self, node: ir.Call, cotangent: ir.Node) -> None:
        (arg,) = node.args
        self._send_exact(arg, _times(cotangent, _binary("/", arg, node)))

    def _call_dot(self, node: ir.Call, cotangent: ir.Node) -> None:
        self._pull_product(node, node.args[0], node.args[1], cotangent)

    def _call_reshape(self, node: ir.Call, cotangent: ir.Node) -> None:
        value, shape = node.args[0], _shape(node.args[0])
        if shape is None:
            raise ExprError("no gradient through reshape() of a value of unknown shape",
                            node.span, _NOT_YET)
        sizes = ir.ListExpr(node.span, None, ir.CONSTANT,
                            tuple(_literal(node, size) for size in shape))
        self._send_exact(value, _call(node, "reshape", (cotangent, sizes)))

    def _call_stack(self, node: ir.Call, cotangent: ir.Node) -> None:
        """`stack([a, b])` is `[a, b]` as an array: as a list literal."""
        items = node.args[0]
        if not isinstance(items, ir.ListExpr):
            raise ExprError("no gradient through stack() of anything but a list literal "
                            "yet", node.span, _NOT_YET)
        self._pull_ListExpr(items, cotangent, _shape(node))

    def _call_concatenate(self, node: ir.Call, cotangent: ir.Node) -> None:
        """Each item gets its rows of the cotangent."""
        items = node.args[0]
        shapes = ([_shape(item) for item in items.items]
                  if isinstance(items, ir.ListExpr) else [None])
        if any(not shape for shape in shapes):
            raise ExprError("no gradient through concatenate() of anything but a list "
                            "literal of arrays yet", node.span, _NOT_YET)
        assert isinstance(items, ir.ListExpr)
        first = 0
        for item, shape in zip(items.items, shapes, strict=True):
            assert shape
            rows = ir.Slice(item.span, None, ir.CONSTANT, _literal(item, first),
                            _literal(item, first + shape[0]), None)
            self._send_exact(item, ir.Subscript(item.span, None, cotangent.varies,
                                                cotangent, (rows,)))
            first += shape[0]

    def _call_transpose(self, node: ir.Call, cotangent: ir.Node) -> None:
        if len(node.args) != 1:
            raise ExprError("no gradient through transpose() with axes yet", node.span,
                            _NOT_YET)
        self._send_exact(node.args[0], _transposed(cotangent))

    def _pull_Subscript(self, node: ir.Subscript, cotangent: ir.Node, at: Shape) -> None:
        """`v[i]`, i a literal integer: v gets the cotangent in its row i, 0 elsewhere;
        `v[a:b]`: in its rows a to b, between rows of zeros."""
        value, shape = node.value, _shape(node.value)
        index = node.index[0]
        while isinstance(index, ir.Hoisted):  # a constant slice is computed once
            index = index.source
        if len(node.index) == 1 and isinstance(index, ir.Slice) and shape:
            self._pull_slice(node, index, shape, cotangent)
            return
        position = _integer_literal(node.index[0]) if len(node.index) == 1 else None
        if position is None or not shape:
            raise ExprError("no gradient through indexing other than by one literal "
                            "integer or slice yet", node.span, _NOT_YET)
        rows = _call(node, "arange", (_literal(node, shape[0]),))
        if len(shape) > 1:
            column = ir.ListExpr(node.span, None, ir.CONSTANT,
                                 (_literal(node, -1), *(_literal(node, 1) for _ in shape[1:])))
            rows = _call(node, "reshape", (rows, column))
        hit = ir.Compare(node.span, None, ir.CONSTANT, ("==",),
                         (rows, _literal(node, position % shape[0])))
        self._send_exact(value, _call(node, "where", (hit, cotangent, _literal(node, 0.0))))

    def _pull_slice(self, node: ir.Subscript, rows: ir.Slice, shape: tuple[int, ...],
                    cotangent: ir.Node) -> None:
        bounds = [None if part is None else _integer_literal(part)
                  for part in (rows.lower, rows.upper)]
        literal = all(part is None or bound is not None
                      for part, bound in zip((rows.lower, rows.upper), bounds, strict=True))
        if rows.step is not None or not literal:
            raise ExprError("no gradient through a slice other than [a:b] of literal "
                            "integers yet", node.span, _NOT_YET)
        low, high, _ = slice(*bounds).indices(shape[0])
        high = max(high, low)

        def zeros(count: int) -> ir.Node:
            sizes = ir.ListExpr(node.span, None, ir.CONSTANT,
                                tuple(_literal(node, size) for size in (count, *shape[1:])))
            return _call(node, "zeros", (sizes,))

        parts = ir.ListExpr(node.span, None, cotangent.varies,
                            (zeros(low), cotangent, zeros(shape[0] - high)))
        self._send_exact(node.value, _call(node, "concatenate", (parts,)))

    def _pull_ListExpr(self, node: ir.ListExpr, cotangent: ir.Node, at: Shape) -> None:
        """`[a, b, ...]`: item i gets row i of the cotangent (summed to the list's shape
        first, where the list was broadcast)."""
        shape = _list_shape(node)
        if at is not None and shape is not None and at != shape:
            cotangent = ir.SumTo(node.span, None, cotangent.varies, cotangent, shape)
        for position, item in enumerate(node.items):
            row = ir.Subscript(item.span, None, cotangent.varies, cotangent,
                               (_literal(item, position),))
            self._send_exact(item, row)

    def _pull_Draw(self, node: ir.Draw, cotangent: ir.Node, at: Shape) -> None:
        """uniform(low, high) = low + (high - low) * u, normal(mean, std) = mean + std * z,
        where u and z are the draw without arguments at the same counter: the same
        numbers (`recur.closures`), so that the gradient is that of the values drawn."""
        if node.kind == "integers" or not node.args:
            return
        unit = replace(node, args=())
        first, second = node.args
        if node.kind == "uniform":
            self._send(first, node, _times(cotangent, _binary("-", _literal(node, 1), unit)),
                       at)
        else:
            self._send(first, node, cotangent, at)
        self._send(second, node, _times(cotangent, unit), at)


def _shape(node: ir.Node) -> tuple[int, ...] | None:
    if isinstance(node, ir.ListExpr):
        return _list_shape(node)
    return None if node.type is None else node.type.shape


def _integer_literal(node: ir.Node) -> int | None:
    """The value of an integer literal, signed ones included (`-1`), else None."""
    sign = 1
    while isinstance(node, ir.Hoisted) or (isinstance(node, ir.Unary)
                                           and node.op in ("-", "+")):
        if isinstance(node, ir.Hoisted):
            node = node.source
            continue
        sign, node = (-sign if node.op == "-" else sign), node.operand
    if isinstance(node, ir.Literal) and type(node.value) is int:
        return sign * node.value
    return None


def _list_shape(node: ir.ListExpr) -> Shape:
    """A list literal's shape, from its items' (the probe sees no list)."""
    shapes = [_list_shape(item) if isinstance(item, ir.ListExpr) else _shape(item)
              for item in node.items]
    if any(shape is None for shape in shapes):
        return None
    return (len(shapes), *numpy.broadcast_shapes(*(s for s in shapes if s is not None)))


def _broadcast(first: Shape, second: Shape) -> Shape:
    if first is None or second is None:
        return first if second is None else second
    return tuple(numpy.broadcast_shapes(first, second))


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


def _product(left: ir.Node, right: ir.Node) -> ir.Node:
    return _binary("@", left, right)


def _transposed(node: ir.Node) -> ir.Node:
    return _call(node, "transpose", (node,))


def _outer(column: ir.Node, row: ir.Node) -> ir.Node:
    """The outer product of two vectors: `column` as a column, times `row`."""
    shape = ir.ListExpr(column.span, None, ir.CONSTANT,
                        (_literal(column, -1), _literal(column, 1)))
    return _binary("*", _call(column, "reshape", (column, shape)), row)


_ALONG_AXES = frozenset({"sum", "mean", "max", "min"})  # rules that take `axis=`


def _axes(node: ir.Call, rank: int) -> tuple[int, ...]:
    """The axes a reduction reduces (all of them without `axis=`), as non-negative."""
    if node.axis is None:
        return tuple(range(rank))
    given = node.axis if isinstance(node.axis, tuple) else (node.axis,)
    return tuple(sorted(axis % rank for axis in given))


def _kept(value: ir.Node, node: ir.Call, arg: ir.Node) -> ir.Node:
    """A value of a reduction's shape with its reduced axes put back as length 1, so that
    it broadcasts against the argument (NumPy's keepdims)."""
    shape = _shape(arg)
    if node.axis is None or shape is None:
        return value
    axes = _axes(node, len(shape))
    kept = ir.ListExpr(node.span, None, ir.CONSTANT, tuple(
        _literal(node, 1 if axis in axes else size) for axis, size in enumerate(shape)))
    return _call(node, "reshape", (value, kept))


def outer_factors(tree: ir.Node) -> tuple[ir.Node, ir.Node] | None:
    """The column and the row of a cotangent `_outer` made (the matrix's of a
    matrix-vector product: both vectors), for a caller that sums them otherwise (the
    backward pass, one product over all steps); None for any other tree."""
    if not (isinstance(tree, ir.Binary) and tree.op == "*"
            and isinstance(tree.left, ir.Call) and tree.left.func == "reshape"):
        return None
    column, shape = tree.left.args
    if not (isinstance(shape, ir.ListExpr)
            and [getattr(item, "value", None) for item in shape.items] == [-1, 1]):
        return None
    return column, tree.right


def _spread(cotangent: ir.Node, arg: ir.Node) -> ir.Node:
    """A reduction's cotangent over the elements of `arg`: the same for each."""
    shape = _shape(arg) or ()
    if not shape:
        return cotangent
    return _binary("*", cotangent, _call(arg, "ones", (ir.ListExpr(
        arg.span, None, ir.CONSTANT, tuple(_literal(arg, size) for size in shape)),)))


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
