"""What a spec is once loaded: typed declarations, each tied to its place in the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recur.diagnostics import Span
from recur.lang import nodes as n


@dataclass(frozen=True, slots=True)
class Declared:
    """A name declared in the spec, and where."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """A param or a sequence: an expression (numbers and lists included), or `input`."""

    name: Declared
    value: n.Node | None  # None: the array must come from --input
    span: Span


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: Declared
    step: n.Node
    initial: n.Node | None
    taps: tuple[int, ...] | None
    taps_span: Span | None
    dtype: str
    dtype_span: Span | None
    keep: str


@dataclass(frozen=True, slots=True)
class Spec:
    """A spec file, checked for structure; `source` is kept for error messages."""

    path: str
    source: str
    description: str
    params: tuple[ValueSpec, ...]
    sequences: tuple[ValueSpec, ...]
    outputs: tuple[OutputSpec, ...]
    steps: n.Node | None
    dtype: str
    reverse: bool
    until: n.Node | None
    span: Span
    seed: int = 0  # the stream of the random calls (`recur.lang.philox`)
    _by_name: dict[str, OutputSpec] = field(init=False, repr=False, compare=False)
    # Facts derived from the spec alone, kept by whoever derives them (the spec never
    # changes): a spec loaded once is analysed once, however often it runs.
    derived: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Passes look outputs up by name once per node: a scan of all would be quadratic.
        object.__setattr__(self, "_by_name", {o.name.name: o for o in self.outputs})
        object.__setattr__(self, "derived", {})

    def output(self, name: str) -> OutputSpec:
        return self._by_name[name]
