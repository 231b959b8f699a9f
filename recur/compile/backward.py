"""The adjoint of a run: a loop that runs backwards over the forward states.

Reverse mode through time (Theano's back-propagation through time) as a transformation
of a `Program` into another, so that every engine runs it without code of its own.
With T the steps the forward run took, backward step u stands for forward step
t = T - 1 - u. Each float output z gets an adjoint output `dJ/dz`, the derivative of
the objective J by z[t]: the direct part (J's own sum), plus, for every output w that
reads z[t - k], the cotangent `recur.compile.adjoint.step_vjp` gives that read in w's
step at forward step t + k, fed w's adjoint at that step. That one is k backward steps
earlier: a tap of `dJ/dw` at lag k (and at lag 0 this step's, which is why the adjoints
run in the reverse of the forward order). The forward values those cotangents read
(taps, sequence rows, the numbers drawn) come in as sequences, reversed. A guard keeps
each read inside the steps run; zero initial states are the adjoint past the end.

The gradients of params are sums over steps (outputs kept last); those of sequences
one row per step read (kept whole, added up on the host); those of initial states the
adjoints at t = -1 ... -depth, which the loop reaches by running `depth` steps more.
`--truncate K` runs only K backward steps: only the last K forward steps pass anything
back, as Theano's `truncate_gradient`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy

from recur.compile import ir
from recur.compile.adjoint import (
    ParamKey,
    SequenceKey,
    TapKey,
    outer_factors,
    read_name,
    step_vjp,
)
from recur.compile.lower import CARRIED, LoopOutput

_COTANGENT = "\0cotangent"  # stands for w's adjoint in w's step VJP; no output is named so


def adjoint_name(output: str) -> str:
    return f"dJ/d{output}"


@dataclass(frozen=True, slots=True)
class Part:
    """One backward output that adds to a gradient: `rows` is the sequence row (as
    walked) that its row for backward step 0 adds to; None for a sum kept last. With
    `by`, the output is the column of an outer product at every step and `by` its row:
    the gradient is their rows' matrix product, sum over steps of column * row, made
    on the host in one call rather than added up in the loop a product at a time."""

    output: str
    rows: int | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """Backward steps `first` to `stop` (exclusive) of the adjoint, ready to run: its
    sequences (host arrays whose row 0 is for step `first`)."""

    first: int
    stop: int
    sequences: dict[str, Any]
    outputs: tuple[LoopOutput, ...]  # the loop, without the tests true at all its steps

    @property
    def steps(self) -> int:
        return self.stop - self.first


def unmoved(node: ir.Node) -> ir.Node:
    """A tree with the sub-trees moved out of the loop put back (their sources typed)."""
    if isinstance(node, ir.Hoisted | ir.Swept):
        return unmoved(node.source)
    return ir.map_children(node, unmoved)


def backward_steps(program: ir.Program, wrt: tuple[str, ...], steps_run: int,
                   truncate: int) -> int:
    """The steps the backward loop runs: the last `truncate` forward ones (-1: all), and
    past them, where every step is covered, the initial states of those in `wrt`."""
    if 0 <= truncate < steps_run:
        return truncate
    names = {o.name for o in program.outputs}
    deepest = max((program.output(name).depth for name in wrt if name in names), default=0)
    return steps_run + deepest


@dataclass(frozen=True, slots=True)
class Source:
    """Forward values the backward loop reads, on the host: `rows[j]` is position
    `first + j` of a source `length` positions long (`rows` an array, or a tuple of
    arrays that follow one another, not joined: only what a window reads is copied).
    The sources: ("output", name), its states with its initial rows first;
    ("sequence", name), as walked; ("draw", site), the numbers a random call drew, one
    row per step (the unit draw of `uniform` and `normal`, the draw itself of
    `integers`)."""

    rows: Any
    first: int
    length: int

    @classmethod
    def whole(cls, rows: Any) -> Source:
        return cls(rows, 0, len(rows))


Reach = dict[tuple[str, Any], tuple[int, int]]  # positions of each source a window reads
FIRST_STEP = "\0first backward step"  # a param of the adjoint: where its window starts


class Backward:
    """The adjoint of a run of `program` that took `steps_run` steps, J the sum of
    output `of` as kept: its outputs (`LoopOutput`s, made once) and where each gradient
    comes from in their results. It runs in windows of backward steps (`window`), each
    reading the forward values it reaches (`reach`), so that the forward states can be
    recomputed a segment at a time; the loop's `t` counts from a window's first step,
    which the param `FIRST_STEP` gives, so that every window is the same loop.
    `lengths` gives the length of each source (`Source`) read."""

    def __init__(self, program: ir.Program, of: str, wrt: tuple[str, ...], steps_run: int,
                 truncate: int, lengths: Mapping[tuple[str, Any], int]) -> None:
        self.program = program
        self.of = of
        self.wrt = wrt
        self.T = steps_run
        self.U = backward_steps(program, wrt, steps_run, truncate)
        self.reads = _Reads(steps_run, lengths)
        self.trees = {o.name: unmoved(o.step) for o in program.outputs}
        self.rows = _sequence_rows(self.trees.values())
        self.params: dict[str, list[Part]] = {}
        self.sequence_parts: dict[str, list[Part]] = {}
        self.initials: dict[str, list[str | None]] = {}  # oldest first
        self.deepest = max((o.depth for o in program.outputs), default=0)
        self._span: tuple[int, int] | None = None  # the steps of the window being made
        self.outputs = self._outputs()  # for any window: every read the adjoint makes
        self._made: dict[tuple[Any, ...], tuple[LoopOutput, ...]] = {}

    @property
    def steps(self) -> int:
        """The steps the backward loop runs, in all."""
        return self.U

    def reach(self, first: int, stop: int) -> Reach:
        """The positions of each source that backward steps `first` to `stop` read
        (inclusive bounds, within the source)."""
        return self.reads.reach((first, stop))

    def window(self, first: int, stop: int, sources: Mapping[tuple[str, Any], Source]
               ) -> Window:
        """Backward steps `first` to `stop`, reading `sources`, which must hold the
        positions `reach` gives."""
        return Window(first, stop, self.reads.arrays((first, stop), sources),
                      self.outputs_for(first, stop))

    def outputs_for(self, first: int, stop: int) -> tuple[LoopOutput, ...]:
        """The outputs for backward steps `first` to `stop`, without the tests that are
        the same at all of them (a guard true everywhere, a capture that is not there):
        the windows away from the ends of the run are one loop, with no test at all."""
        captures = tuple(first <= self.T - 1 + back < stop
                         for back in range(1, self.deepest + 1))
        key = (min(first, self.deepest + 1), min(max(stop - self.T, 0), self.deepest + 1),
               captures)
        made = self._made.get(key)
        if made is None:
            self._span = (first, stop)
            made = self._made[key] = self._outputs()
            self._span = None
        return made

    def _outputs(self) -> tuple[LoopOutput, ...]:
        program = self.program
        self.params, self.sequence_parts, self.initials = {}, {}, {}
        vjps: dict[str, dict[Any, ir.Node]] = {}
        relevant = self._relevant(vjps)
        outputs: list[LoopOutput] = []
        for z in reversed(program.outputs):
            if z.name in relevant:
                outputs.append(self._adjoint_of(z, vjps, relevant))
        outputs += self._param_sums(vjps, relevant)
        outputs += self._sequence_rows(vjps, relevant)
        outputs += self._initial_captures(relevant)
        return tuple(_with_rows(o, self.reads.lowest())
                     for output in outputs for o in _factored(output))

    def _relevant(self, vjps: dict[str, dict[Any, ir.Node]]) -> set[str]:
        """The outputs whose adjoint is not zero: `of`, and those a relevant one reads;
        `vjps` gets each one's step VJP, its cotangent a stand-in for its adjoint."""
        relevant, pending = {self.of}, [self.of]
        while pending:
            name = pending.pop()
            output = self.program.output(name)
            cotangent = ir.Tap(output.span, None, ir.PER_STATE, _COTANGENT, 0)
            vjps[name] = step_vjp(self.trees[name], cotangent, summed=False)
            for key in vjps[name]:
                if isinstance(key, TapKey) and key.output not in relevant:
                    relevant.add(key.output)
                    pending.append(key.output)
        return relevant

    def _adjoint_of(self, z: ir.Output, vjps: Mapping[str, dict[Any, ir.Node]],
                    relevant: set[str]) -> LoopOutput:
        terms: list[ir.Node] = []
        direct = self._direct(z) if z.name == self.of else None
        if direct is not None:
            terms.append(direct)
        for w in self.program.outputs:
            if w.name not in relevant:
                continue
            for key, tree in vjps.get(w.name, {}).items():
                if isinstance(key, TapKey) and key.output == z.name:
                    term = self._shift(tree, key.lag, w.name)
                    if w.shape != z.shape:
                        term = ir.SumTo(z.span, None, term.varies, term, z.shape)
                    terms.append(self._guard(term, key.lag))
        step = _sum(terms) if terms else _literal(z, 0.0)
        # a window's last rows are where the next one starts
        return LoopOutput(adjoint_name(z.name), step, z.dtype, z.shape, CARRIED, z.span)

    def _direct(self, z: ir.Output) -> ir.Node | None:
        """d(J)/d(z[t]) of J itself: 1 at every step run (`keep: all`), or at the last
        (none in a window without it)."""
        if z.keep == "all":
            return self._guard(_literal(z, 1.0), 0)
        if self._span is not None and self._span[0] > 0:
            return None
        at_end = _compare(z, "==", _time(z), _literal(z, 0))
        return _where(z, at_end, _literal(z, 1.0), _literal(z, 0.0))

    def _guard(self, tree: ir.Node, lag: int) -> ir.Node:
        """`tree` where its forward step t + lag is one run (0 <= t + lag <= T - 1)."""
        tests, span = [], self._span or (0, self.U)
        if lag > 0 and span[0] < lag:
            tests.append(_compare(tree, ">=", _time(tree), _literal(tree, lag)))
        if self.T + lag < span[1]:
            tests.append(_compare(tree, "<=", _time(tree), _literal(tree, self.T - 1 + lag)))
        if not tests:
            return tree
        test = tests[0] if len(tests) == 1 else ir.Binary(tree.span, None, ir.PER_STEP,
                                                          "and", tests[0], tests[1])
        return _where(tree, test, tree, _literal(tree, 0.0))

    def _param_sums(self, vjps: Mapping[str, dict[Any, ir.Node]], relevant: set[str]
                    ) -> list[LoopOutput]:
        outputs = []
        for w, key, tree in self._reads_of_wrt(vjps, relevant, ParamKey):
            name = f"dJ/d{key.name} in {w.name}"
            outer = outer_factors(tree) if len(w.shape) == 1 else None
            if outer is not None:  # W in `W @ h`: its rows, a product on the host
                column, row = (self._shift(factor, 0, w.name) for factor in outer)
                outputs += [
                    LoopOutput(name, self._guard(column, 0), w.dtype, (), "all", w.span),
                    LoopOutput(f"{name} by", row, w.dtype, (), "all", w.span)]
                self.params.setdefault(key.name, []).append(Part(name, by=f"{name} by"))
                continue
            total = ir.Binary(w.span, None, ir.PER_STATE, "+",
                              ir.Tap(w.span, None, ir.PER_STATE, name, 1),
                              self._guard(self._shift(tree, 0, w.name), 0))
            dtype = str(numpy.result_type(self.program.params[key.name], w.dtype))
            outputs.append(LoopOutput(name, total, dtype, w.shape, "last", w.span))
            self.params.setdefault(key.name, []).append(Part(name))
        return outputs

    def _sequence_rows(self, vjps: Mapping[str, dict[Any, ir.Node]], relevant: set[str]
                       ) -> list[LoopOutput]:
        outputs = []
        for w, key, tree in self._reads_of_wrt(vjps, relevant, SequenceKey):
            name = f"dJ/d{key.sequence}[t{key.offset:+d}] in {w.name}"
            dtype = str(numpy.result_type(self.program.sequences[key.sequence], w.dtype))
            outputs.append(LoopOutput(name, self._guard(self._shift(tree, 0, w.name), 0),
                                      dtype, w.shape, "all", w.span))
            row = self.rows[key.sequence, key.offset]
            self.sequence_parts.setdefault(key.sequence, []).append(Part(name, row))
        return outputs

    def _reads_of_wrt(self, vjps: Mapping[str, dict[Any, ir.Node]], relevant: set[str],
                      kind: type[Any]) -> Iterator[tuple[ir.Output, Any, ir.Node]]:
        """Each read of a value in `wrt` of the `kind` given (params, sequences) by the
        step of a relevant output, with the read's cotangent tree."""
        for w in self.program.outputs:
            if w.name not in relevant:
                continue
            for key, tree in vjps.get(w.name, {}).items():
                if isinstance(key, kind) and read_name(key) in self.wrt:
                    yield w, key, tree

    def _initial_captures(self, relevant: set[str]) -> list[LoopOutput]:
        """The adjoint at t = -j for j = depth ... 1, taken as the loop passes it."""
        outputs = []
        for name in self.wrt:
            if name not in self.trees:
                continue
            z = self.program.output(name)
            captures: list[str | None] = []
            for back in range(z.depth, 0, -1):
                u = self.T - 1 + back
                if name not in relevant or u >= self.U:
                    captures.append(None)
                    continue
                capture = f"dJ/d{name}[{-back}]"
                held = ir.Tap(z.span, None, ir.PER_STATE, capture, 1)
                now = ir.Tap(z.span, None, ir.PER_STATE, adjoint_name(name), 0)
                passed = self._span is None or self._span[0] <= u < self._span[1]
                step = (_where(z, _compare(z, "==", _time(z), _literal(z, u)), now, held)
                        if passed else held)
                outputs.append(LoopOutput(capture, step, z.dtype, z.shape, "last", z.span))
                captures.append(capture)
            self.initials[name] = captures
        return outputs

    def _shift(self, node: ir.Node, lag: int, consumer: str) -> ir.Node:
        """A cotangent tree of `consumer`'s step, as read at backward step u for forward
        step t + lag: its reads of the forward run become reads of the reversed
        sequences, `t` becomes T - 1 - u + lag, its cotangent `consumer`'s adjoint."""
        if isinstance(node, ir.Hoisted | ir.Swept):
            return self._shift(node.source, lag, consumer)
        if node is self.trees[consumer] and self._stored_as_computed(consumer):
            depth = self.program.output(consumer).depth  # the step's value: read, not redone
            return self.reads.read(node, ("output", consumer), lag + depth)
        if isinstance(node, ir.Tap):
            if node.output == _COTANGENT:
                return ir.Tap(node.span, None, ir.PER_STATE, adjoint_name(consumer), lag)
            depth = self.program.output(node.output).depth
            return self.reads.read(node, ("output", node.output), lag - node.lag + depth)
        if isinstance(node, ir.SequenceRead):
            return self.reads.read(node, ("sequence", node.sequence), lag + node.row)
        if isinstance(node, ir.Draw):
            return self._draw(node, lag, consumer)
        if isinstance(node, ir.Time):
            return _binary("-", _literal(node, self.T - 1 + lag), _time(node))
        if isinstance(node, ir.TimeIndex):
            return _binary("-", _literal(node, self.T - 1 + lag + node.offset), _time(node))
        if isinstance(node, ir.Steps):
            return _literal(node, self.program.steps)
        copy = ir.map_children(node, lambda child: self._shift(child, lag, consumer))
        inputs = ir.children(copy)
        return replace(copy, type=None, varies=ir.varies_of(*inputs) if inputs else copy.varies)

    def _stored_as_computed(self, name: str) -> bool:
        """Whether output `name` stores its step's value as computed (no cast, no
        broadcast), so that a rule's `y` can be read back from the forward states."""
        output, seen = self.program.output(name), self.trees[name].type
        return seen is not None and (seen.dtype, seen.shape) == (output.dtype, output.shape)

    def _draw(self, node: ir.Draw, lag: int, consumer: str) -> ir.Node:
        """The numbers the call drew at forward step t + lag, read back: the unit draw,
        moved and scaled as the closures do it (`low + (high - low) * u`)."""
        drawn = self.reads.read(node, ("draw", node.site), lag)
        if node.kind == "integers" or not node.args:
            return drawn
        first, second = (self._shift(arg, lag, consumer) for arg in node.args)
        scale = _binary("-", second, first) if node.kind == "uniform" else second
        return _binary("+", first, _binary("*", scale, drawn))


class _Reads:
    """The forward values the backward loop reads, as sequences: each source reversed,
    so that backward step u reads row u + offset, its offsets the same for every window
    of the run (a window's arrays start at its first step)."""

    def __init__(self, steps_run: int, lengths: Mapping[tuple[str, Any], int]) -> None:
        self.T = steps_run
        self.lengths = lengths
        self.offsets: dict[str, set[int]] = {}
        self.keys: dict[str, tuple[str, Any]] = {}

    def read(self, at: ir.Node, source: tuple[str, Any], shift: int) -> ir.Node:
        """The source's position p = T - 1 - u + shift: reversed, row u + (length - T -
        shift)."""
        name = _source_name(source)
        offset = self.lengths[source] - self.T - shift
        self.offsets.setdefault(name, set()).add(offset)
        self.keys[name] = source
        return ir.SequenceRead(at.span, None, ir.PER_STEP, name, offset, offset)

    def lowest(self) -> dict[str, int]:
        return {name: min(found) for name, found in self.offsets.items()}

    def reach(self, window: tuple[int, int]) -> Reach:
        """The positions of each source that the backward steps `window` read (from, to:
        inclusive), as far as the source has them."""
        reached = {}
        for name, found in self.offsets.items():
            length = self.lengths[self.keys[name]]
            first = length - 1 - (window[1] - 1 + max(found))
            last = length - 1 - (window[0] + min(found))
            reached[self.keys[name]] = (max(first, 0), min(last, length - 1))
        return reached

    def arrays(self, window: tuple[int, int], sources: Mapping[tuple[str, Any], Source]
               ) -> dict[str, Any]:
        """Each source read, reversed, from row `window[0]` + its lowest offset; rows
        outside the source repeat its edge (read only where a guard drops the value)."""
        arrays = {}
        for name, found in self.offsets.items():
            source = sources[self.keys[name]]
            chunks = [numpy.asarray(rows) for rows in (
                source.rows if isinstance(source.rows, tuple) else (source.rows,))]
            low, high = min(found), max(found)
            count = window[1] - window[0] + high - low
            if source.length == 0:
                arrays[name] = numpy.zeros((count, *chunks[0].shape[1:]), chunks[0].dtype)
                continue
            # rows i = 0 .. count-1 read positions length-1 - (i + first): a reversed
            # slice, with the edge rows repeated where it runs past the source
            top = source.length - 1 - (window[0] + low)
            bottom = top - count + 1
            if top < 0 or bottom > source.length - 1:  # all past one edge: that edge
                edge = min(max(top, 0), source.length - 1) - source.first
                arrays[name] = numpy.repeat(_rows(chunks, edge, edge), count, axis=0)
                continue
            above, below = max(top - (source.length - 1), 0), max(-bottom, 0)
            inside = (max(bottom, 0) - source.first, min(top, source.length - 1) - source.first)
            if count and (inside[0] < 0 or inside[1] >= sum(map(len, chunks))):
                raise AssertionError(f"{name}: positions {bottom}..{top} are not in the "
                                     "source")
            arrays[name] = numpy.concatenate([
                numpy.repeat(_rows(chunks, inside[1], inside[1]), above, axis=0),
                *(part[::-1] for part in reversed(_pieces(chunks, *inside))),
                numpy.repeat(_rows(chunks, inside[0], inside[0]), below, axis=0)])
        return arrays


def _pieces(chunks: list[Any], first: int, last: int) -> list[Any]:
    """Rows `first` to `last` (inclusive) of arrays that follow one another, as views."""
    pieces, start = [], 0
    for chunk in chunks:
        low, high = max(first - start, 0), min(last - start, len(chunk) - 1)
        if low <= high:
            pieces.append(chunk[low:high + 1])
        start += len(chunk)
    return pieces


def _rows(chunks: list[Any], first: int, last: int) -> Any:
    return numpy.concatenate(_pieces(chunks, first, last))


def _source_name(source: tuple[str, Any]) -> str:
    kind, name = source
    return {"output": f"{name} (forward)", "sequence": f"{name} (reversed)",
            "draw": f"draw {name} (forward)"}[kind]


def _with_rows(output: LoopOutput, lowest: Mapping[str, int]) -> LoopOutput:
    """The sequence reads' rows, now that each sequence's lowest offset is known."""

    def fix(node: ir.Node) -> ir.Node:
        if isinstance(node, ir.SequenceRead):
            return replace(node, row=node.offset - lowest[node.sequence])
        return ir.map_children(node, fix)

    return replace(output, step=fix(output.step))


def _factored(output: LoopOutput) -> list[LoopOutput]:
    """`output`, after an output of its own for each factor of a matrix product, and each
    value reshaped, that is computed in the step (a cotangent), read at lag 0: what a
    compiled kernel multiplies is a matrix and a state, and a value reshaped to an outer
    product is then computed once per element, not once per element of the product. The
    factors come first, in the order they are met."""
    factors: list[LoopOutput] = []

    def factor(node: ir.Node) -> ir.Node:
        if node.varies == ir.CONSTANT or isinstance(node, ir.Tap | ir.SequenceRead):
            return node
        name = f"{output.name} factor {len(factors) + 1}"
        factors.append(LoopOutput(name, node, output.dtype, (), "none", output.span))
        return ir.Tap(node.span, None, ir.PER_STATE, name, 0)

    def visit(node: ir.Node) -> ir.Node:
        copy = ir.map_children(node, visit)
        if isinstance(copy, ir.Binary) and copy.op == "@":
            return replace(copy, left=factor(copy.left), right=factor(copy.right))
        if isinstance(copy, ir.Call) and copy.func in ("reshape", "transpose"):
            return replace(copy, args=(factor(copy.args[0]), *copy.args[1:]))
        return copy

    step = visit(output.step)
    return [*factors, replace(output, step=step)]


def _sequence_rows(trees: Any) -> dict[tuple[str, int], int]:
    """The row read at t = 0 by each sequence read, by sequence and offset."""
    return {(node.sequence, node.offset): node.row for tree in trees
            for node in ir.walk(unmoved(tree)) if isinstance(node, ir.SequenceRead)}


def _time(at: Any) -> ir.Node:
    """The backward step u, whichever window the loop runs."""
    first = ir.Param(at.span, None, ir.CONSTANT, FIRST_STEP)
    return _binary("+", ir.Time(at.span, None, ir.PER_STEP), first)


def _literal(at: Any, value: int | float) -> ir.Node:
    return ir.Literal(at.span, None, ir.CONSTANT, value)


def _binary(op: str, left: ir.Node, right: ir.Node) -> ir.Node:
    return ir.Binary(left.span, None, ir.varies_of(left, right), op, left, right)


def _compare(at: Any, op: str, left: ir.Node, right: ir.Node) -> ir.Node:
    return ir.Compare(at.span, None, ir.varies_of(left, right), (op,), (left, right))


def _where(at: Any, test: ir.Node, body: ir.Node, orelse: ir.Node) -> ir.Node:
    return ir.Call(at.span, None, ir.varies_of(test, body, orelse), "where",
                   (test, body, orelse), None)


def _sum(terms: list[ir.Node]) -> ir.Node:
    total = terms[0]
    for term in terms[1:]:
        total = _binary("+", total, term)
    return total
