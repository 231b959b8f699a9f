"""Each function's derivative as recur expressions, for reverse-mode gradients.

The rules live in the function table (`Function.derivative`), as text, so that an
adjoint `Program` is written in the language every engine already runs. A partial is
an expression over the call's arguments (`ARGUMENTS`: `a`, `b`, `c`, ...) and its value
`y`; the adjoint of an argument is the incoming adjoint times the partial, summed over
the axes that argument was broadcast along. A partial "0" means that nothing flows
back (piecewise-constant functions, integer and bool results). The text is parsed and
checked once, on first use, not at import: start-up stays as it was.
"""

from __future__ import annotations

import functools

from recur.diagnostics import Origin
from recur.lang import nodes as n
from recur.lang.functions import ARGUMENTS, CONSTANTS, FUNCTIONS, chooser_partials
from recur.lang.parse import parse_expression

# The rules that are not element-wise partials: what the adjoint of a call does.
STRUCTURAL: dict[str, str] = {
    "chooser": "min/max of several arguments: the partials of chooser_partials; of one "
               "argument: a reduction whose elements equal to the value share its adjoint",
    "reduction": "the adjoint is spread back over the reduced axes: sum copies it, mean "
                 "divides it by the count, prod multiplies it by the product of the others, "
                 "norm multiplies it by a / y",
    "product": "a matrix product: the adjoint of each factor is the adjoint times the "
               "other factor, transposed",
    "shape": "a rearrangement: the adjoint is rearranged back (split, unstacked, "
             "reshaped to the argument's shape, transposed by the inverse axes)",
}


def rule_texts(name: str, count: int) -> tuple[str, ...] | None:
    """The partials of a call of `name` with `count` arguments, as text; None where the
    rule is structural (`STRUCTURAL[FUNCTIONS[name].gradient]`)."""
    function = FUNCTIONS[name]
    if not function.min_args <= count <= function.max_args:
        raise ValueError(f"{name} takes {function.min_args} to {function.max_args} "
                         f"arguments, not {count}")
    if function.gradient == "chooser":
        return chooser_partials(count) if count > 1 else None
    if function.gradient != "partials":
        return None
    if function.derivative is None or len(function.derivative) != function.max_args:
        raise ValueError(f"{name} has no partial derivative for each argument")
    return function.derivative[:count]


@functools.cache
def partials(name: str, count: int) -> tuple[n.Node, ...] | None:
    """The parsed and checked partials of a call of `name` with `count` arguments; None
    where the rule is structural."""
    texts = rule_texts(name, count)
    if texts is None:
        return None
    return tuple(_checked(name, text, ARGUMENTS[:count]) for text in texts)


def _checked(name: str, text: str, arguments: tuple[str, ...]) -> n.Node:
    """`text` parsed; it may read only the arguments, `y` and the constants, and call only
    functions of the table with as many arguments as they take."""
    tree = parse_expression(text, Origin(f"<derivative of {name}>", 1, 1))
    readable = {*arguments, "y", *CONSTANTS}
    for node in n.walk(tree):
        if isinstance(node, n.Name) and node.id not in readable:
            raise ValueError(f"the derivative of {name} reads '{node.id}': {text}")
        if isinstance(node, n.TimeIndex | n.Subscript):
            raise ValueError(f"the derivative of {name} indexes: {text}")
        if isinstance(node, n.Call):
            called = FUNCTIONS.get(node.func)
            if called is None or not called.min_args <= len(node.args) <= called.max_args:
                raise ValueError(f"the derivative of {name} calls {node.func} wrongly: {text}")
    return tree
