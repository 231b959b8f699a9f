"""Gradients through the values a run starts from.

A param can be defined from earlier params (`b: 2 * a`), a sequence from params
(`u: sin(w * arange(n))`), an initial state from params and sequences (`initial: x0`).
The backward pass gives the gradient of J by each value as the loop read it; these are
then carried back through the expressions that made them, in the reverse of the order
they were evaluated in (initials, sequences, params last to first), with the same
vector-Jacobian products as a step (`recur.compile.adjoint`), evaluated once on the host.
A value given as an array (`--input`, an array for `params=`) starts nothing upstream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy

from recur.compile import ir
from recur.compile.adjoint import ParamKey, step_vjp
from recur.compile.closures import Builder
from recur.compile.evaluate import ParamBindings, lowered_value
from recur.compile.frame import Frame
from recur.compile.lower import with_types
from recur.lang import nodes as n
from recur.spec import Spec

_COTANGENT = "\0cotangent"  # stands for the value's cotangent; no value is named so


@dataclass(frozen=True, slots=True)
class Definition:
    """A value of the run and the expression that made it (None: given as an array)."""

    name: str
    kind: str  # "param", "sequence" or "initial" (of the output `name`)
    node: n.Node | None


class Upstream:
    """The values of a run in the order they were evaluated, and what each reads."""

    def __init__(self, spec: Spec, overrides: Mapping[str, Any], inputs: Iterable[str]
                 ) -> None:
        given = set(inputs)
        self.spec = spec
        self.definitions: list[Definition] = []
        for param in spec.params:
            name = param.name.name
            override = overrides.get(name)
            node = (override if isinstance(override, n.Node)
                    else None if override is not None or name in given else param.value)
            self.definitions.append(Definition(name, "param", node))
        for sequence in spec.sequences:
            name = sequence.name.name
            self.definitions.append(Definition(
                name, "sequence", None if name in given else sequence.value))
        for output in spec.outputs:
            self.definitions.append(Definition(output.name.name, "initial", output.initial))
        self.reads = {d.name: self._names(d.node) for d in self.definitions}

    def _names(self, node: n.Node | None) -> frozenset[str]:
        if node is None:
            return frozenset()
        return frozenset(leaf.name for leaf in ir.walk(lowered_value(node, self.spec))
                         if isinstance(leaf, ir.Param))

    def reached(self, wrt: Iterable[str]) -> tuple[str, ...]:
        """`wrt` and every value made from one of them, in evaluation order: what the
        backward pass must give a gradient of."""
        found = set(wrt)
        for definition in self.definitions:
            if self.reads[definition.name] & found:
                found.add(definition.name)
        return tuple(d.name for d in self.definitions if d.name in found)

    def carried_back(self, gradients: Mapping[str, Any], values: Mapping[str, Any],
                     backend: Any) -> dict[str, Any]:
        """`gradients` (of J by each value as the loop read it, shaped as the value)
        with what each value passes back to those it was made from added in."""
        totals = dict(gradients)
        for definition in reversed(self.definitions):
            cotangent = totals.get(definition.name)
            if cotangent is None or definition.node is None:
                continue
            for name, part in _value_vjp(definition.node, self.spec, values, cotangent,
                                         backend).items():
                if name in totals:
                    target = numpy.shape(values[name])
                    totals[name] = totals[name] + fit(part, target)
        return totals


def _value_vjp(node: n.Node, spec: Spec, values: Mapping[str, Any], cotangent: Any,
               backend: Any) -> dict[str, Any]:
    """The cotangent of each value an expression reads, given that of its value."""
    tree = lowered_value(node, spec)
    observed: dict[ir.Node, ir.Type] = {}
    with backend.errstate():
        Builder(backend, ParamBindings(values), observe=observed).build(tree)(Frame())
    typed = with_types(tree, observed)
    stand_in = ir.Param(tree.span, None, ir.CONSTANT, _COTANGENT)
    bindings = ParamBindings({**values, _COTANGENT: cotangent})
    parts = {}
    for key, cotangent_tree in step_vjp(typed, stand_in, summed=False).items():
        assert isinstance(key, ParamKey)
        with backend.errstate():
            parts[key.name] = Builder(backend, bindings).build(cotangent_tree)(Frame())
    return parts


def fit(value: Any, shape: tuple[int, ...]) -> numpy.ndarray:
    """A cotangent summed over what broadcasting `shape` to it added, or broadcast to
    `shape` where it is smaller (a value every element of which it stands for)."""
    array = numpy.asarray(value)
    extra = array.ndim - len(shape)
    if extra > 0:
        array = array.sum(axis=tuple(range(extra)))
    axes = tuple(axis for axis in range(array.ndim)
                 if shape[axis + len(shape) - array.ndim] == 1 and array.shape[axis] != 1)
    if axes:
        array = array.sum(axis=axes, keepdims=True)
    return numpy.broadcast_to(array, shape)
