"""Programs kept between runs, by everything that decides them but the values.

Lowering a spec (`recur.compile.lower`) probes a step to type every node and moves
parts out of the loop; a second run of the same spec with values of the same kinds
would come out the same but for the values, so it takes the kept program and binds its
own values (`lower.compile_spec`): no probe, and the parts moved out computed again.

The key holds what the probe sees besides values: the spec (text and path), the
device, the step count, the seed, the keeps and `check_finite`, and the kind of every
param, sequence and initial state: an array's type, dtype and shape; a Python number's
type, and an int's sign and bits (an operation on a narrower dtype checks that it
fits). A param or sequence read where its value decides a shape or an error (an
argument of a constructor or of reshape, an index, a slice, an exponent, a random
call's bounds) is keyed by its value as well; a spec that reads a state there is not
kept at all.

A kept program holds no values; beside it the last program made of it is kept whole
(`Kept.last`: run again where the values have the same bits), only where its values
are the run's own and take at most `LAST_BYTES`. So the cache stays small: `ENTRIES`
programs, the least recently used dropped first.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from recur.compile import ir
from recur.lang.functions import FUNCTIONS

ENTRIES = 32
LAST_BYTES = 2**20  # the values a kept program may hold (`Kept.last`)
_DIGESTED = 4096  # bytes of an array beyond which `bits` gives its digest


@dataclass(frozen=True, slots=True)
class Kept:
    """A program without its values, and what binding new ones recomputes: the
    sources of its `Hoisted` and `Swept` slots, by slot, and the sub-trees whose move
    out of the loop failed (a value that lets one move makes another program).

    `last` is the last program made of it, whole, where its values are the run's own
    (made by the spec, not arrays a caller holds) and few: a run whose values have the
    same bits (`values`, a snapshot) runs it again, and engines reuse what they made of
    it (a kernel)."""

    program: ir.Program
    hoisted: tuple[ir.Node, ...]
    swept: tuple[ir.Node, ...]
    unmoved: tuple[ir.Node, ...]  # the constant sub-trees that failed to compute
    last: ir.Program | None = None
    values: Hashable = None


def own_params(program: ir.Program) -> dict[str, Any]:
    """A program's params for a result to hand out: copies where a kept program may hold
    them (`remembered`: at most `LAST_BYTES`), so that a caller changing them cannot change
    a later run; larger ones are never kept, and handed out as they are."""
    params = program.params
    if sum(getattr(value, "nbytes", 0) for value in params.values()) > LAST_BYTES:
        return dict(params)
    return {name: value.copy() if hasattr(value, "copy") else value
            for name, value in params.items()}


def remembered(kept: Kept, last: ir.Program, values: tuple[Hashable, ...] | None) -> Kept:
    """`kept` with `last`, made of `values` (None: a caller's arrays), where they and
    what was computed of them hold at most `LAST_BYTES`."""
    held = sum(getattr(array, "nbytes", 0) for array in (  # swept rows: made when read
        *last.params.values(), *last.sequences.values(), *last.hoisted,
        *(output.initial for output in last.outputs)))
    if values is None or held > LAST_BYTES:
        return replace(kept, last=None, values=None)
    return replace(kept, last=last, values=values)


class Programs:
    """The kept programs by key, most recently used last; safe across threads."""

    def __init__(self, entries: int = ENTRIES) -> None:
        self.entries = entries
        self._kept: OrderedDict[Hashable, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Kept | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
            return kept

    def put(self, key: Hashable, kept: Kept) -> None:
        with self._lock:
            self._kept[key] = kept
            self._kept.move_to_end(key)
            while len(self._kept) > self.entries:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)


PROGRAMS = Programs()


def key(identity: Hashable, deciding: frozenset[str], params: Mapping[str, Any],
        sequences: Mapping[str, Any], initials: Mapping[str, Any]) -> Hashable:
    """The key of a run: `identity` (the spec, device, steps, seed, keeps...), and
    the values' kinds; the values too of the `deciding` params and sequences."""
    return (identity,
            *((name, kind(value), bits(value) if name in deciding else None)
              for values in (params, sequences) for name, value in values.items()),
            *((name, None if value is None else kind(value))
              for name, value in initials.items()))


def kind(value: Any) -> Hashable:
    """What the probe step sees of a value, short of the value."""
    if isinstance(value, bool | float | complex):
        return type(value).__name__
    if isinstance(value, int):  # whether it fits a dtype: its sign and bits
        return "int", value < 0, (~value if value < 0 else value).bit_length()
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return type(value), value.dtype, tuple(value.shape)
    return type(value), repr(value)


def bits(value: Any) -> Hashable:
    """A value to compare bit for bit (0.0 is not -0.0, nan is nan)."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, complex):
        return struct.pack("<dd", value.real, value.imag)
    if hasattr(value, "tobytes"):
        raw = value.tobytes()  # a large array by its digest: keys stay small
        digest = raw if len(raw) <= _DIGESTED else hashlib.sha256(raw).digest()
        return type(value), value.dtype, tuple(value.shape), digest
    return type(value), value


def snapshot(*values: Mapping[str, Any]) -> tuple[Hashable, ...] | None:
    """The bits of every value of these mappings, in order; None where they hold more
    than `LAST_BYTES` (no program is kept for them: hashing 8 MB took 5 ms a run)."""
    if sum(getattr(value, "nbytes", 0) for named in values
           for value in named.values()) > LAST_BYTES:
        return None
    return tuple(bits(value) for named in values for value in named.values())


def deciding(trees: Mapping[str, ir.Node]) -> frozenset[str] | None:
    """The params and sequences whose values decide more than the values a step
    computes: read (at any depth) by an argument of a constructor, the shape or axes
    of a shape function, an index or a slice, an exponent or a random call's bounds.
    None where a state or a random value is read there: then every value may decide,
    and nothing is kept."""
    found: set[str] = set()
    try:
        for tree in trees.values():
            _visit(tree, False, found)
    except _Undecided:
        return None
    return frozenset(found)


class _Undecided(Exception):
    """A state or a random value read where values decide shapes or errors."""


def _visit(node: ir.Node, deciding: bool, found: set[str]) -> None:
    if deciding and isinstance(node, ir.Param | ir.SequenceRead):
        found.add(node.name if isinstance(node, ir.Param) else node.sequence)
    if deciding and isinstance(node, ir.Tap | ir.Draw):
        raise _Undecided
    if isinstance(node, ir.Subscript):
        _visit(node.value, deciding, found)
        for index in node.index:
            _visit(index, True, found)
        return
    if isinstance(node, ir.Binary) and node.op == "**":
        _visit(node.left, deciding, found)
        _visit(node.right, True, found)
        return
    if isinstance(node, ir.Call) and FUNCTIONS[node.func].kind == "shape" and node.args:
        _visit(node.args[0], deciding, found)  # the value reshaped, stacked: its kind
        for arg in node.args[1:]:  # (shape) is keyed already; the shape and axes decide
            _visit(arg, True, found)
        return
    decides = deciding or isinstance(node, ir.Slice | ir.Draw) or (
        isinstance(node, ir.Call) and FUNCTIONS[node.func].kind in ("constructor", "shape"))
    for child in ir.children(node):
        _visit(child, decides, found)
