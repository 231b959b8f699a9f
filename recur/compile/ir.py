"""The `Program`: one typed, frozen description of a run that every engine reads.

Lowering (`recur.compile.lower`) turns a spec's expression trees and a run's values
into this. Every node says what it computes (its dtype and shape, as the probe step
saw them), and whether it varies at all, only with the step, or with the state. Names
are resolved: a read of an output is a `Tap`, of a sequence a `SequenceRead` with the
row it reads at step 0; sub-expressions moved out of the loop are `Hoisted` (one value)
or `Swept` (a row per step), whose values the `Program` holds in slots. An engine
walks these trees and reads the slots; it never sees the spec, and never looks a node
up by its identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from recur.diagnostics import Span
from recur.lang.nodes import Scalar

# How a node's value varies: the same at every step (literals, params, `steps`), with
# the step only (`t`, sequences: it can be computed for all steps at once), or with the
# state (it reads an output).
CONSTANT, PER_STEP, PER_STATE = "constant", "step", "state"
# What a checked arithmetic node saw in the probe (`Type.arithmetic`): Python numbers,
# integer arrays, or anything else (floats, complex, bools: nothing to check).
PY, INT, OTHER = "py", "int", "other"


@dataclass(frozen=True, slots=True)
class Type:
    """What a node gave in the probe step."""

    dtype: str
    shape: tuple[int, ...]
    python: bool  # a Python number (NumPy's "weak" scalar, NEP 50), not an array
    arithmetic: str | None = None  # PY, INT or OTHER where the operation is checked


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """A node of a `Program`; `type` is None before the probe step, and where it saw no
    value of the node (a list literal, a slice, an `Exponent`)."""

    span: Span
    type: Type | None
    varies: str  # CONSTANT, PER_STEP or PER_STATE


@dataclass(frozen=True, slots=True, eq=False)
class Literal(Node):
    value: Scalar  # a number, or a named constant (pi, e, inf, nan) by its value


@dataclass(frozen=True, slots=True, eq=False)
class Exponent(Literal):
    """The literal exponent of `x ** k` computed without `pow` (`recur.lang.exact`): an
    integer k (an int, or a float such as 2.0) or 0.5. Never evaluated alone."""


@dataclass(frozen=True, slots=True, eq=False)
class Param(Node):
    """A value bound for the whole run: a param (in an initial, also a whole sequence)."""

    name: str


@dataclass(frozen=True, slots=True, eq=False)
class Time(Node):
    """`t`, the step being computed."""


@dataclass(frozen=True, slots=True, eq=False)
class Steps(Node):
    """`steps`, the number of steps of the run."""


@dataclass(frozen=True, slots=True, eq=False)
class TimeIndex(Node):
    """`t + offset` as an index other than a tap's or a sequence read's."""

    offset: int


@dataclass(frozen=True, slots=True, eq=False)
class Tap(Node):
    """`output[t - lag]`; lag 0 is this step's value of an output computed earlier."""

    output: str
    lag: int


@dataclass(frozen=True, slots=True, eq=False)
class SequenceRead(Node):
    """`sequence[t + offset]` (a bare sequence name in a step: offset 0), which is row
    `t + row` of the sequence's array as walked (`Program.sequences`)."""

    sequence: str
    offset: int
    row: int  # offset less the sequence's lowest offset read: the row at t = 0


@dataclass(frozen=True, slots=True, eq=False)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node


@dataclass(frozen=True, slots=True, eq=False)
class Binary(Node):
    op: str  # "+", "-", "*", "/", "//", "%", "**", "@", "and", "or"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True, eq=False)
class Compare(Node):
    """A chain `a < b <= c`: `(a < b) and (b <= c)` element-wise."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Select(Node):
    """`body if test else orelse`, both branches evaluated element-wise."""

    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True, slots=True, eq=False)
class Call(Node):
    func: str
    args: tuple[Node, ...]
    axis: int | tuple[int, ...] | None  # `axis=`, a constant


@dataclass(frozen=True, slots=True, eq=False)
class Draw(Node):
    """A random call (`recur.lang.philox`): at every step, one value for each element of
    `type.shape`, element e of call site `site` at step t drawn from Philox4x64-10 with
    counter (t, e, site, 0) and key (`Program.seed`, 0). It varies with the step but is
    never moved out of the loop. `output` is the output whose state it draws for ("" in
    `until`, which draws one value); the probe gives it that state's shape."""

    kind: str  # "uniform", "normal" or "integers"
    site: int
    output: str
    args: tuple[Node, ...]


def first_element(shape: tuple[int, ...], first_lane: int) -> int:
    """The number of a draw's element 0 in a chunk of lanes starting at `first_lane`: a
    single value is the same in every chunk; a draw over lanes is offset by theirs."""
    return first_lane * math.prod(shape[1:]) if shape else 0


@dataclass(frozen=True, slots=True, eq=False)
class Slice(Node):
    lower: Node | None
    upper: Node | None
    step: Node | None


@dataclass(frozen=True, slots=True, eq=False)
class Subscript(Node):
    value: Node
    index: tuple[Node, ...]  # several entries for `W[:, 0]`


@dataclass(frozen=True, slots=True, eq=False)
class ListExpr(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Hoisted(Node):
    """A constant sub-expression computed once, before the loop: `Program.hoisted[slot]`.
    `source` is what it computes (for `explain`, and engines that look inside)."""

    slot: int
    source: Node


@dataclass(frozen=True, slots=True, eq=False)
class Swept(Node):
    """A sub-expression free of the state, computed for every step before the loop:
    `Program.swept[slot]` holds one row per step (time first, then `type.shape`)."""

    slot: int
    source: Node


@dataclass(frozen=True, slots=True, eq=False)
class SumTo(Node):
    """`operand` summed back to `shape` over the axes it was broadcast along: the
    cotangent of a value smaller than its use (`recur.compile.adjoint`), such as a scalar
    param read by every lane."""

    operand: Node
    shape: tuple[int, ...]


def varies_of(*parts: Node) -> str:
    """How a node made of `parts` varies: as the most varying of them."""
    kinds = {part.varies for part in parts}
    for kind in (PER_STATE, PER_STEP):
        if kind in kinds:
            return kind
    return CONSTANT


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes as evaluated in the loop (a moved sub-expression has none)."""
    if isinstance(node, Unary | SumTo):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Compare):
        return node.operands
    if isinstance(node, Call | Draw):
        return node.args
    if isinstance(node, ListExpr):
        return node.items
    if isinstance(node, Subscript):
        return (node.value, *node.index)
    if isinstance(node, Select):
        return (node.test, node.body, node.orelse)
    if isinstance(node, Slice):
        return tuple(part for part in (node.lower, node.upper, node.step) if part is not None)
    return ()


def fixed_exponent(node: Binary) -> int | float | None:
    """The `Exponent` of `x ** k` computed without `pow`; None for any other operation."""
    if not isinstance(node.right, Exponent):
        return None
    value = node.right.value
    assert isinstance(value, int | float)
    return value


def map_children(node: Node, change: Callable[[Node], Node], **fields: Any) -> Node:
    """A copy of `node` with `change` applied to each child (and `fields` replaced):
    the one place that knows which fields of each kind hold children."""
    if isinstance(node, Unary | SumTo):
        return replace(node, operand=change(node.operand), **fields)
    if isinstance(node, Binary):
        return replace(node, left=change(node.left), right=change(node.right), **fields)
    if isinstance(node, Compare):
        return replace(node, operands=tuple(map(change, node.operands)), **fields)
    if isinstance(node, Select):
        return replace(node, test=change(node.test), body=change(node.body),
                       orelse=change(node.orelse), **fields)
    if isinstance(node, Call | Draw):
        return replace(node, args=tuple(map(change, node.args)), **fields)
    if isinstance(node, Slice):
        lower, upper, step = (None if part is None else change(part)
                              for part in (node.lower, node.upper, node.step))
        return replace(node, lower=lower, upper=upper, step=step, **fields)
    if isinstance(node, Subscript):
        return replace(node, value=change(node.value),
                       index=tuple(map(change, node.index)), **fields)
    if isinstance(node, ListExpr):
        return replace(node, items=tuple(map(change, node.items)), **fields)
    return replace(node, **fields) if fields else node


def walk(node: Node) -> Iterator[Node]:
    """Every node evaluated in the loop, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


@dataclass(frozen=True, slots=True, eq=False)
class Output:
    """One output as the loop computes it."""

    name: str
    step: Node
    dtype: str
    shape: tuple[int, ...]  # one step's state (its lanes)
    taps: tuple[int, ...]  # look-backs read, e.g. (-2, -1)
    depth: int  # the deepest look-back: the initial states before step 0
    keep: str  # "all", "last", "none", "last N", "every K" (`recur.lang.keep`; `last=True`
    # and `every=K` already applied)
    initial: Any  # (depth, *shape) in `dtype` on the run's device, or None (depth 0)
    check_range: tuple[int, int] | None  # integer bounds where the step's dtype is wider
    span: Span  # the step expression, for errors at run time

    @property
    def lanes(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True, eq=False)
class Program:
    """Everything an engine needs to run a spec's loop, and nothing it could change.

    Arrays (params, sequences, slots, initials) live on the run's device. The states
    an engine writes are not here: `recur.engine.plan` builds them afresh for each run
    of the program, so a program can be run again (a fault replayed, a chunk resumed).
    """

    outputs: tuple[Output, ...]  # in evaluation order within a step
    until: Node | None  # one true/false value; the loop stops after a step where true
    until_span: Span | None
    steps: int
    device: str  # "cpu" or "cuda"
    xp: Any  # the array module its arrays live in (NumPy, CuPy): kernels' arrays go there
    params: Mapping[str, Any]
    sequences: Mapping[str, Any]  # arrays as walked (reversed under `reverse`), time first
    hoisted: tuple[Any, ...]  # the values of `Hoisted` slots
    swept: Sequence[Any]  # the rows by step of `Swept` slots (`recur.compile.sweeps`)
    check_finite: bool
    seed: int = 0  # the key of every draw (`Draw`)
    # Where this run's lanes start in a sweep split into chunks of lanes: a draw over
    # lanes (a state with a first axis) numbers its elements as the whole sweep does.
    first_lane: int = 0
    # The steps this run takes: from `start` (a continuation's first, or a block's of a run
    # streamed in blocks), up to `stop` (None: `steps`). Draws, sequences and `t` count
    # from step 0 all the same.
    start: int = 0
    stop: int | None = None
    _by_name: dict[str, Output] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {o.name: o for o in self.outputs})

    def output(self, name: str) -> Output:
        return self._by_name[name]

    def roots(self) -> tuple[Node, ...]:
        """The trees the loop evaluates: each output's step, then `until`."""
        return (*(o.step for o in self.outputs), *(() if self.until is None else (self.until,)))

    def draws(self) -> tuple[Draw, ...]:
        """Every random call of the loop, by site."""
        found = {node.site: node for root in self.roots() for node in walk(root)
                 if isinstance(node, Draw)}
        return tuple(found[site] for site in sorted(found))

    def runs_like(self, other: Program | None) -> bool:
        """Whether `other` is this program but for the steps it takes (`start`, `stop`):
        what an engine made of one (a kernel) runs the other, a block of it."""
        if other is None:
            return False
        return all(
            mine is theirs or (type(mine) in (int, bool, str) and mine == theirs)
            for name in _RUN_FIELDS
            for mine, theirs in [(getattr(self, name), getattr(other, name))])

    @property
    def end(self) -> int:
        """The step before which this run stops."""
        return self.steps if self.stop is None else self.stop

    @property
    def lanes(self) -> int:
        """The elements of the widest state: what a kernel runs side by side."""
        return max((o.lanes for o in self.outputs), default=1)


# What makes a program what it is, beside the steps a run of it takes.
_RUN_FIELDS = tuple(f.name for f in fields(Program) if f.init and f.name not in ("start", "stop"))
