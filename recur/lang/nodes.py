"""recur's own expression tree.

The parser builds only these nodes, so anything outside the language has no way to
be represented, let alone run. Every node keeps its `Span`, relative to the
expression text (line 1 is the expression's first line) until the spec loader
moves it into the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from recur.diagnostics import Span

Scalar = int | float | complex | bool


@dataclass(frozen=True, slots=True)
class Node:
    span: Span


@dataclass(frozen=True, slots=True)
class Number(Node):
    value: Scalar


@dataclass(frozen=True, slots=True)
class Name(Node):
    id: str


@dataclass(frozen=True, slots=True)
class TimeIndex(Node):
    """The index `t + offset` (or `t`, or `t - k`) inside `x[...]` or `s[...]`."""

    offset: int


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "+", "-", "*", "/", "//", "%", "**", "@", "and", "or"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """A chain `a < b <= c`, which means `(a < b) and (b <= c)` element-wise."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Select(Node):
    """`body if test else orelse`, both branches evaluated element-wise."""

    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: str
    func_span: Span
    args: tuple[Node, ...]
    axis: Node | None


@dataclass(frozen=True, slots=True)
class Slice(Node):
    lower: Node | None
    upper: Node | None
    step: Node | None


@dataclass(frozen=True, slots=True)
class Subscript(Node):
    value: Node
    index: tuple[Node, ...]  # several entries for `W[:, 0]`


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    """`[a, b]` or `(a, b)`: shapes for `zeros`, sequences for `stack`, small arrays."""

    items: tuple[Node, ...]


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes, for passes that only need to walk the tree."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Compare):
        return node.operands
    if isinstance(node, Select):
        return (node.test, node.body, node.orelse)
    if isinstance(node, Call):
        return node.args if node.axis is None else (*node.args, node.axis)
    if isinstance(node, Slice):
        return tuple(n for n in (node.lower, node.upper, node.step) if n is not None)
    if isinstance(node, Subscript):
        return (node.value, *node.index)
    if isinstance(node, ListExpr):
        return node.items
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def constant_axis(node: Node) -> int | tuple[int, ...] | None:
    """The constant value of an `axis=` argument, or None if it is not a constant."""
    if isinstance(node, Number) and type(node.value) is int:
        return node.value
    if isinstance(node, Unary) and node.op == "-":
        inner = constant_axis(node.operand)
        return -inner if isinstance(inner, int) else None
    if isinstance(node, ListExpr):
        items = [constant_axis(item) for item in node.items]
        if all(isinstance(item, int) for item in items):
            return tuple(items)  # type: ignore[arg-type]
    return None
