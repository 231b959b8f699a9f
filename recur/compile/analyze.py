"""Name resolution, taps and evaluation order: everything knowable without values.

`analyze_spec` checks every expression of a spec against the names visible where it
stands, collects what each step reads (`x[t-k]`, `x[t]`, `s[t+k]`), checks declared
taps and `initial`s, and orders the outputs of one step by their same-step reads.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import cast

from recur.diagnostics import ExprError, Span, SpecError, did_you_mean
from recur.lang import exact
from recur.lang import nodes as n
from recur.lang.functions import CONSTANTS, DRAWS, FUNCTIONS, unknown_function_notes
from recur.lang.nodes import constant_axis
from recur.spec import OutputSpec, Spec

MAX_TAP_DEPTH = 10_000
MAX_SEQUENCE_OFFSET = 1_000_000
DRAW_REACH = ("random numbers are drawn at every step: only a step or 'until' may call "
              "uniform, normal or integers; params, sequences, initials and 'steps' are "
              "computed once, before the loop")
INITIAL_REACH = ("an initial may use params, sequences (whole, or indexed as s[0]), constants "
                 "and functions; not outputs, 't' or 'steps'")


@dataclass(frozen=True, slots=True)
class Context:
    """The names visible to one expression, and how to describe it in messages."""

    where: str  # "the step of output 'x'", "param 'a'", ...
    params: AbstractSet[str]
    sequences: frozenset[str] = frozenset()
    outputs: frozenset[str] = frozenset()
    time: bool = False  # `t` and `steps` are defined
    reach: str | None = None  # a note on what the expression may use, for unknown names


@dataclass
class Reads:
    """What one expression reads of outputs (look-back k >= 0) and sequences (offsets)."""

    outputs: dict[str, dict[int, Span]] = field(default_factory=dict)
    sequences: dict[str, set[int]] = field(default_factory=dict)
    draws: list[n.Call] = field(default_factory=list)  # random calls, parents first

    def merge(self, other: Reads) -> None:
        for name, lags in other.outputs.items():
            for lag, span in lags.items():
                self.outputs.setdefault(name, {}).setdefault(lag, span)
        for name, offsets in other.sequences.items():
            self.sequences.setdefault(name, set()).update(offsets)


@dataclass(frozen=True, slots=True)
class DrawSite:
    """A random call: its number c, counted in file order, and whose state it draws for
    (`output`; "" in `until`)."""

    site: int
    output: str
    kind: str
    span: Span


@dataclass(frozen=True, slots=True)
class Analysis:
    """The value-free facts the compiler needs about a spec."""

    order: tuple[str, ...]  # outputs in evaluation order within a step
    taps: dict[str, tuple[int, ...]]  # output -> look-backs read, e.g. (-2, -1)
    sequence_offsets: dict[str, tuple[int, int]]  # sequence -> (kmin <= 0, kmax >= 0)
    draws: tuple[DrawSite, ...] = ()  # by site
    # output ("" for `until`) -> the sites of its random calls, parents first
    draw_sites: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def depth(self, output: str) -> int:
        taps = self.taps[output]
        return -taps[0] if taps else 0


def analyze_spec(spec: Spec) -> Analysis:
    """Check every expression of `spec`; return evaluation order, taps and offsets.

    The analysis is kept with the spec: `load` makes it, and each run reuses it.

    Raises:
        ExprError: an unknown name, a misused output or sequence, a bad call.
        SpecError: taps that differ from those read, a missing initial, a cycle.
    """
    analysis = spec.derived.get("analysis")
    if analysis is None:
        analysis = spec.derived["analysis"] = _analyze(spec)
    return cast(Analysis, analysis)


def _analyze(spec: Spec) -> Analysis:
    # One set grows as params are declared: each sees the earlier ones (a fresh frozenset
    # for each would be quadratic in the number of params).
    params: set[str] = set()
    for param in spec.params:
        if param.value is not None:
            check_expression(param.value, Context(f"param '{param.name.name}'", params))
        params.add(param.name.name)
    visible = frozenset(params)
    for sequence in spec.sequences:
        if sequence.value is not None:
            check_expression(sequence.value, Context(f"sequence '{sequence.name.name}'", visible))
    if spec.steps is not None:
        check_expression(spec.steps, Context("'steps'", visible))
    # An initial is a value before the loop: sequences are whole arrays there, as params.
    initial_names = visible | {s.name.name for s in spec.sequences}
    for output in spec.outputs:
        if output.initial is not None:
            where = f"the initial of output '{output.name.name}'"
            check_expression(output.initial, Context(where, initial_names, reach=INITIAL_REACH))

    step_context = Context(
        "", visible,
        frozenset(s.name.name for s in spec.sequences),
        frozenset(o.name.name for o in spec.outputs),
        time=True,
    )
    all_reads = Reads()
    same_step: dict[str, dict[str, Span]] = {}
    draws: dict[str, list[n.Call]] = {}
    for output in spec.outputs:
        context = _with_where(step_context, f"the step of output '{output.name.name}'")
        reads = check_expression(output.step, context)
        same_step[output.name.name] = {
            name: lags[0] for name, lags in reads.outputs.items() if 0 in lags
        }
        all_reads.merge(reads)
        draws[output.name.name] = reads.draws
    if spec.until is not None:
        reads = check_expression(spec.until, _with_where(step_context, "'until'"))
        all_reads.merge(reads)
        draws[""] = reads.draws

    taps = {o.name.name: _check_taps(o, all_reads.outputs.get(o.name.name, {}), spec)
            for o in spec.outputs}
    offsets = {
        s.name.name: _offset_range(all_reads.sequences.get(s.name.name, set()))
        for s in spec.sequences
    }
    sites, by_output = _number_draws(draws)
    return Analysis(_order(spec, same_step), taps, offsets, sites, by_output)


def _number_draws(draws: dict[str, list[n.Call]]) -> tuple[
        tuple[DrawSite, ...], dict[str, tuple[int, ...]]]:
    """Number the random calls in file order: by where each is written (line, then
    column), and in the order of the tree where YAML moved the text (equal places)."""
    calls = [(call.span.line, call.span.col, output, k, call)
             for output, found in draws.items() for k, call in enumerate(found)]
    calls.sort(key=lambda entry: entry[:2])  # stable: equal places keep the tree's order
    sites = tuple(DrawSite(c, output, call.func, call.span)
                  for c, (_, _, output, _, call) in enumerate(calls))
    numbered = {(output, k): c for c, (_, _, output, k, _) in enumerate(calls)}
    by_output = {output: tuple(numbered[output, k] for k in range(len(found)))
                 for output, found in draws.items()}
    return sites, by_output


def _with_where(context: Context, where: str) -> Context:
    return Context(where, context.params, context.sequences, context.outputs, context.time,
                   context.reach)


def check_expression(node: n.Node, context: Context) -> Reads:
    """Resolve every name in `node`; return what it reads of outputs and sequences."""
    reads = Reads()
    _Checker(context, reads).visit(node)
    return reads


class _Checker:
    def __init__(self, context: Context, reads: Reads) -> None:
        self.context = context
        self.reads = reads

    def error(self, message: str, span: Span, *notes: str) -> ExprError:
        return ExprError(f"{message} in {self.context.where}", span, notes)

    def visit(self, node: n.Node) -> None:
        if isinstance(node, n.Name):
            self.name(node)
        elif isinstance(node, n.Subscript):
            self.subscript(node)
        elif isinstance(node, n.Call):
            self.call(node)
        elif isinstance(node, n.TimeIndex):
            self.time_index(node)
        else:
            for child in n.children(node):
                self.visit(child)

    def name(self, node: n.Name) -> None:
        name, context = node.id, self.context
        if name in context.params or name in CONSTANTS:
            return
        if name in context.sequences:
            self.reads.sequences.setdefault(name, set()).add(0)
            return
        if name in context.outputs:
            raise self.error(
                f"output '{name}' needs a time index", node.span,
                f"write {name}[t-1] for its previous value, or {name}[t] for the value "
                "computed in this step",
            )
        if name in ("t", "steps") and context.time:
            return
        if name in FUNCTIONS or name in DRAWS:
            raise self.error(f"'{name}' is a function; call it, as in {name}(...)", node.span)
        if name in ("t", "steps"):
            raise self.error(f"'{name}' is defined only in steps and 'until'", node.span,
                             *self.reach())
        visible = [*context.params, *context.sequences, *context.outputs, *CONSTANTS]
        if context.time:
            visible += ["t", "steps"]
        raise self.error(f"unknown name '{name}'", node.span, *did_you_mean(name, visible),
                         *self.reach())

    def reach(self) -> tuple[str, ...]:
        return (self.context.reach,) if self.context.reach else ()

    def time_index(self, node: n.TimeIndex) -> None:
        if not self.context.time:
            raise self.error("'t' is defined only in steps and 'until'", node.span,
                             *self.reach())

    def subscript(self, node: n.Subscript) -> None:
        target = node.value
        if isinstance(target, n.Name) and target.id in self.context.outputs:
            self.output_read(node, target.id)
        elif isinstance(target, n.Name) and target.id in self.context.sequences:
            self.sequence_read(node, target.id)
        else:
            self.visit(target)
            for part in node.index:
                self.visit(part)

    def output_read(self, node: n.Subscript, name: str) -> None:
        index = node.index[0] if len(node.index) == 1 else None
        if not isinstance(index, n.TimeIndex) or index.offset > 0:
            raise self.error(
                f"output '{name}' must be read as {name}[t-k] (k >= 1) or {name}[t]",
                node.span,
                f"to index its state, index the read: {name}[t-1][0]",
            )
        if -index.offset > MAX_TAP_DEPTH:
            raise self.error(f"look-back {-index.offset} is deeper than {MAX_TAP_DEPTH}",
                             node.span)
        self.reads.outputs.setdefault(name, {}).setdefault(-index.offset, node.span)

    def sequence_read(self, node: n.Subscript, name: str) -> None:
        index = node.index[0] if len(node.index) == 1 else None
        if not isinstance(index, n.TimeIndex):
            raise self.error(
                f"sequence '{name}' must be read as {name}[t+k] or {name}[t-k]", node.span,
                f"to index its element, index the read: {name}[t][0]",
            )
        if abs(index.offset) > MAX_SEQUENCE_OFFSET:
            raise self.error(f"offset {index.offset} is larger than {MAX_SEQUENCE_OFFSET}",
                             node.span)
        self.reads.sequences.setdefault(name, set()).add(index.offset)

    def call(self, node: n.Call) -> None:
        if node.func in DRAWS:
            self.draw(node)
            return
        function = FUNCTIONS.get(node.func)
        if function is None:
            known = self.context.params | self.context.sequences | self.context.outputs
            if node.func in known:
                raise self.error(f"'{node.func}' is not a function", node.func_span)
            raise self.error(f"unknown function '{node.func}'", node.func_span,
                             *unknown_function_notes(node.func))
        count = len(node.args)
        if not function.min_args <= count <= function.max_args:
            raise self.error(
                f"{node.func}() takes {_arity(function.min_args, function.max_args)}, "
                f"not {count}", node.span,
            )
        if node.axis is not None and (not function.axis or count > 1):
            raise self.error(f"{node.func}() with these arguments takes no 'axis='",
                             node.axis.span)
        if node.axis is not None and constant_axis(node.axis) is None:
            raise self.error("'axis=' must be an integer or a tuple of integers",
                             node.axis.span)
        for arg in node.args:
            self.visit(arg)


    def draw(self, node: n.Call) -> None:
        if not self.context.time:
            raise self.error(f"{node.func}() draws random numbers, which it may not do",
                             node.span, DRAW_REACH)
        counts = DRAWS[node.func]
        if len(node.args) not in counts:
            allowed = " or ".join(str(count) for count in counts)
            raise self.error(f"{node.func}() takes {allowed} arguments, not {len(node.args)}",
                             node.span)
        if node.axis is not None:
            raise self.error(f"{node.func}() takes no 'axis='", node.axis.span)
        if node.func == "integers":
            _check_literal_range(node, self.context.where)
        self.reads.draws.append(node)
        for arg in node.args:
            self.visit(arg)


def _check_literal_range(node: n.Call, where: str) -> None:
    """`integers(3, 3)`: an empty range of literals is an error of the spec (one of
    values, at the step where it happens)."""
    low, high = (exact.literal(arg) for arg in node.args)
    if type(low) is int and type(high) is int and high <= low:
        raise ExprError(f"integers({low}, {high}) draws from an empty range in {where}",
                        node.span, ("integers(low, high) draws from low up to high - 1: "
                                    "high must be greater than low",))


def _arity(low: int, high: int) -> str:
    if low == high:
        return f"{low} argument" + ("s" if low != 1 else "")
    return f"{low} to {high} arguments"


def _check_taps(output: OutputSpec, lags: dict[int, Span], spec: Spec) -> tuple[int, ...]:
    read = tuple(sorted(-lag for lag in lags if lag > 0))
    name = output.name.name
    if output.taps is not None and output.taps_span is not None:
        declared = tuple(sorted(set(output.taps)))
        if declared != read:
            notes = []
            if set(declared) - set(read):
                notes.append(f"declared but never read: {sorted(set(declared) - set(read))}")
            if set(read) - set(declared):
                notes.append(f"read but not declared: {sorted(set(read) - set(declared))}")
            raise SpecError(
                f"output '{name}' declares taps {list(output.taps)}, but the spec reads "
                f"{list(read)}", output.taps_span, tuple(notes),
            )
    if read and output.initial is None:
        deepest = -read[0]
        first = lags[deepest]
        raise SpecError(
            f"output '{name}' is read as {name}[t-{deepest}] but has no 'initial'", first,
            (f"give output '{name}' an initial value: "
             + ("its previous state at t = 0" if deepest == 1
                else f"{deepest} states, oldest first"),),
        )
    return read


def _offset_range(offsets: set[int]) -> tuple[int, int]:
    return min(offsets | {0}), max(offsets | {0})


def _order(spec: Spec, same_step: dict[str, dict[str, Span]]) -> tuple[str, ...]:
    """Outputs in an order where every `x[t]` is computed before it is read."""
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name):], name]
            span = same_step[path[-1]][name]
            raise SpecError(
                "outputs read each other's value of the same step in a cycle: "
                + " -> ".join(cycle), span,
                (f"one of these reads must look back: write {name}[t-1] instead of {name}[t]",),
            )
        state[name] = "visiting"
        for dependency in same_step[name]:
            visit(dependency, [*path, name])
        state[name] = "done"
        order.append(name)

    for output in spec.outputs:
        visit(output.name.name, [])
    return tuple(order)
