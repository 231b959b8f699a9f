"""Expression text -> recur's node tree, through a whitelist over Python's `ast`.

Python's parser does the lexing and precedence; this module then walks the `ast`
once and admits only the node types in `_BUILDERS`. Anything else (attribute
access, lambdas, comprehensions, strings, ...) is an `ExprError` at its column, so
no spec text can ever reach `eval`, an attribute or an import.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
import warnings
from collections.abc import Callable

from recur.diagnostics import ExprError, Origin, Span
from recur.lang import nodes as n

MAX_EXPRESSION_LENGTH = 10_000
MAX_DEPTH = 100
INT64_MAX = 2**63 - 1

_BINARY_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
}
_UNARY_OPS: dict[type[ast.unaryop], str] = {ast.USub: "-", ast.UAdd: "+", ast.Not: "not"}
_COMPARE_OPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_REFUSED_HINTS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access is not part of the recur language",
    ast.Lambda: "lambdas are not part of the recur language",
    ast.ListComp: "comprehensions are not part of the recur language",
    ast.SetComp: "comprehensions are not part of the recur language",
    ast.DictComp: "comprehensions are not part of the recur language",
    ast.GeneratorExp: "comprehensions are not part of the recur language",
    ast.JoinedStr: "strings are not part of the recur language",
    ast.NamedExpr: "assignment expressions are not part of the recur language",
    ast.Starred: "unpacking with '*' is not part of the recur language",
    ast.Dict: "dictionaries are not part of the recur language",
    ast.Set: "sets are not part of the recur language",
}
_CONSTANT_KINDS: dict[type, str] = {
    str: "string literals",
    bytes: "bytes literals",
    type(None): "None and missing values",
    type(...): "'...' (Ellipsis)",
}
_BITWISE_HINT = "bitwise operators are not part of the recur language; use 'and', 'or', 'not'"
# The line breaks positions count (as `recur.diagnostics.source_lines` does), all made `\n`
# before parsing, so that Python's line numbers are the same.
_LINE_BREAK = re.compile("\r\n|[\r\x85\u2028\u2029]")
_DECIMAL = re.compile(r"(?<![\w.])[0-9][0-9_]*")


def parse_expression(text: str, origin: Origin) -> n.Node:
    """Parse one expression; every node's span is placed in the file through `origin`."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExprError(
            f"expression is {len(text)} characters long; the limit is {MAX_EXPRESSION_LENGTH}",
            origin.span(1, 1, 1, 2),
        )
    if not text.strip():
        raise ExprError("empty expression", origin.span(1, 1, 1, 2))
    text = _LINE_BREAK.sub("\n", text)
    # Parentheses let a `|` block scalar spread an expression over several lines.
    wrapped = f"({text}\n)"
    try:
        # Python warns about some valid text (`1if t else 2`) on stderr: not recur's output.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(wrapped, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, text, origin) from None
    except (RecursionError, MemoryError):
        raise ExprError(
            "expression is nested too deeply", origin.span(1, 1, 1, 2)
        ) from None
    body = tree.body
    if (body.lineno, body.col_offset) == (1, 0):  # it may have taken our '(' (`)(` -> `()()`)
        unmatched = _unmatched_parenthesis(wrapped)
        if unmatched is not None:
            line, col = unmatched
            raise ExprError("syntax error: unmatched ')'", origin.span(line, col, line, col + 1))
    return _Converter(text, origin).convert(body, 0)


def _unmatched_parenthesis(wrapped: str) -> tuple[int, int] | None:
    """Where the text closes the parenthesis added around it, if it does (1-based, in the
    text); None when that parenthesis is closed by its own, the last one."""
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(wrapped).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth -= 1
                if depth == 0:
                    line, col = token.start
                    if line == wrapped.count("\n") + 1:  # the added one, on its own line
                        return None
                    return line, col if line == 1 else col + 1
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return None


def _syntax_error(exc: SyntaxError, text: str, origin: Origin) -> ExprError:
    message = (exc.msg or "invalid syntax").removesuffix(" (<unknown>, line 1)")
    if "integer string conversion" in message:  # Python refuses > 4300 digits
        return _huge_literal(text, origin) or ExprError(
            "integer literal does not fit in int64", origin.span(1, 1, 1, 2)
        )
    unclosed = _unclosed_bracket(text, message, origin)
    if unclosed is not None:
        return unclosed
    line = exc.lineno or 1
    col = exc.offset or 1
    if line == 1:
        col = max(col - 1, 1)  # the added opening parenthesis
    lines = text.split("\n")
    if line > len(lines):  # the error is at our closing parenthesis: the text ended early
        unmatched = (_unmatched_parenthesis(f"({text}\n)")
                     if message.startswith("unmatched") else None)
        if unmatched is not None:
            line, col = unmatched
        else:  # at the end of the text's last line that is not blank
            line = max((i for i, part in enumerate(lines, 1) if part.strip()), default=1)
            col = len(lines[line - 1]) + 1
    return ExprError(f"syntax error: {message}", origin.span(line, col, line, col + 1))


def _unclosed_bracket(text: str, message: str, origin: Origin) -> ExprError | None:
    """The bracket the text leaves open, at its place. Around the added parentheses Python
    blames the outermost one, or a mismatch with the added ')'; the text alone, the
    innermost one, as Python does for a line of code."""
    if "was never closed" not in message and "does not match" not in message:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text, mode="eval")
    except SyntaxError as exc:
        if (exc.msg or "").endswith("was never closed") and exc.lineno and exc.offset:
            line, col = exc.lineno, exc.offset
            return ExprError(f"syntax error: {exc.msg}", origin.span(line, col, line, col + 1))
    except (RecursionError, MemoryError):
        pass
    return None


def _huge_literal(text: str, origin: Origin) -> ExprError | None:
    """The decimal literal too long for Python to convert, as one that does not fit."""
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
    for match in _DECIMAL.finditer(text):
        digits = len(match.group().replace("_", ""))
        if limit and digits > limit:
            line = text.count("\n", 0, match.start()) + 1
            col = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            end = col + len(match.group())
            return ExprError(f"integer literal of {digits} digits does not fit in int64",
                             origin.span(line, col, line, end))
    return None


def _is_int64_min(node: ast.UnaryOp) -> bool:
    """Whether `node` is `-9223372036854775808`: the one negated literal that int64 holds
    and its operand does not, so it is read as one literal, as C and NumPy users write it."""
    operand = node.operand
    return (isinstance(node.op, ast.USub) and isinstance(operand, ast.Constant)
            and type(operand.value) is int and operand.value == INT64_MAX + 1)


class _Converter:
    """One pass over the `ast`: each admitted node type has a `_convert_<Type>` method."""

    def __init__(self, text: str, origin: Origin) -> None:
        self._lines = ("(" + text).split("\n")
        self._origin = origin

    def convert(self, node: ast.AST, depth: int) -> n.Node:
        if depth > MAX_DEPTH:
            raise ExprError(
                f"expression is nested more than {MAX_DEPTH} levels deep", self.span(node)
            )
        builder: Callable[[ast.AST, int], n.Node] | None = getattr(
            self, f"_convert_{type(node).__name__}", None
        )
        if builder is None:
            raise ExprError(self._refusal(node), self.span(node), _attribute_hint(node))
        return builder(node, depth + 1)

    def span(self, node: ast.AST) -> Span:
        line = getattr(node, "lineno", 1)
        end_line = getattr(node, "end_lineno", None) or line
        col = self._char_col(line, getattr(node, "col_offset", 0))
        end_col = self._char_col(end_line, getattr(node, "end_col_offset", None) or 0)
        if line == 1:
            col -= 1
        if end_line == 1:
            end_col -= 1
        # A tuple or a generator may own the parentheses added around the text: keep its
        # span within the text.
        col = max(col, 0)
        if end_line > len(self._lines):
            end_line = len(self._lines)
            end_col = len(self._lines[-1]) - (1 if end_line == 1 else 0)
        return self._origin.span(line, col + 1, end_line, max(end_col + 1, col + 2))

    def _char_col(self, line: int, byte_offset: int) -> int:
        source = self._lines[line - 1] if line <= len(self._lines) else ""
        if source.isascii():  # a byte a character (and no encoding of the line per node)
            return min(byte_offset, len(source))
        return len(source.encode("utf-8")[:byte_offset].decode("utf-8", errors="replace"))

    @staticmethod
    def _refusal(node: ast.AST) -> str:
        for kind, hint in _REFUSED_HINTS.items():
            if isinstance(node, kind):
                return hint
        if isinstance(node, ast.Constant):
            what = _CONSTANT_KINDS.get(type(node.value), f"{type(node.value).__name__} values")
            return f"{what} are not part of the recur language"
        return f"'{type(node).__name__}' is not part of the recur language"

    def _convert_Constant(self, node: ast.Constant, depth: int) -> n.Node:
        value = node.value
        if isinstance(value, bool | int | float | complex):
            if isinstance(value, int) and not isinstance(value, bool) and value > INT64_MAX:
                raise ExprError(
                    f"integer literal {value} does not fit in int64", self.span(node)
                )
            return n.Number(self.span(node), value)
        raise ExprError(self._refusal(node), self.span(node))

    def _convert_Name(self, node: ast.Name, depth: int) -> n.Node:
        return n.Name(self.span(node), node.id)

    def _convert_UnaryOp(self, node: ast.UnaryOp, depth: int) -> n.Node:
        op = _UNARY_OPS.get(type(node.op))
        if op is None:
            raise ExprError(_BITWISE_HINT, self.span(node))
        if _is_int64_min(node):  # 2**63 alone is out of range; negated, it is the minimum
            return n.Number(self.span(node), -INT64_MAX - 1)
        return n.Unary(self.span(node), op, self.convert(node.operand, depth))

    def _convert_BinOp(self, node: ast.BinOp, depth: int) -> n.Node:
        op = _BINARY_OPS.get(type(node.op))
        if op is None:
            raise ExprError(_BITWISE_HINT, self.span(node))
        left = self.convert(node.left, depth)
        return n.Binary(self.span(node), op, left, self.convert(node.right, depth))

    def _convert_BoolOp(self, node: ast.BoolOp, depth: int) -> n.Node:
        op = "and" if isinstance(node.op, ast.And) else "or"
        result = self.convert(node.values[0], depth)
        for value in node.values[1:]:
            right = self.convert(value, depth)
            span = Span(result.span.path, result.span.line, result.span.col,
                        right.span.end_line, right.span.end_col)
            result = n.Binary(span, op, result, right)
        return result

    def _convert_Compare(self, node: ast.Compare, depth: int) -> n.Node:
        ops = []
        for op in node.ops:
            name = _COMPARE_OPS.get(type(op))
            if name is None:
                raise ExprError(
                    "'in' and 'is' are not part of the recur language; use '==' or '!='",
                    self.span(node),
                )
            ops.append(name)
        operands = tuple(self.convert(v, depth) for v in (node.left, *node.comparators))
        return n.Compare(self.span(node), tuple(ops), operands)

    def _convert_IfExp(self, node: ast.IfExp, depth: int) -> n.Node:
        return n.Select(
            self.span(node),
            self.convert(node.test, depth),
            self.convert(node.body, depth),
            self.convert(node.orelse, depth),
        )

    def _convert_Call(self, node: ast.Call, depth: int) -> n.Node:
        if not isinstance(node.func, ast.Name):
            self.convert(node.func, depth)  # a refused construct says what it is
            raise ExprError("only the functions of the recur language can be called",
                            self.span(node.func))
        axis = None
        for keyword in node.keywords:
            if keyword.arg != "axis":
                where = self.span(keyword) if keyword.arg is not None else self.span(node)
                raise ExprError(
                    f"unknown keyword argument '{keyword.arg}'; only 'axis=' is allowed"
                    if keyword.arg is not None
                    else "unpacking with '**' is not part of the recur language",
                    where,
                )
            axis = self.convert(keyword.value, depth)
        args = tuple(self.convert(arg, depth) for arg in node.args)
        return n.Call(self.span(node), node.func.id, self.span(node.func), args, axis)

    def _convert_Subscript(self, node: ast.Subscript, depth: int) -> n.Node:
        value = self.convert(node.value, depth)
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        index = tuple(self._index_part(part, depth) for part in parts)
        return n.Subscript(self.span(node), value, index)

    def _index_part(self, part: ast.AST, depth: int) -> n.Node:
        offset = _time_offset(part)
        if offset is not None:
            return n.TimeIndex(self.span(part), offset)
        return self.convert(part, depth)

    def _convert_Slice(self, node: ast.Slice, depth: int) -> n.Node:
        def part(value: ast.AST | None) -> n.Node | None:
            return None if value is None else self.convert(value, depth)

        return n.Slice(self.span(node), part(node.lower), part(node.upper), part(node.step))

    def _convert_List(self, node: ast.List, depth: int) -> n.Node:
        return n.ListExpr(self.span(node), tuple(self.convert(e, depth) for e in node.elts))

    _convert_Tuple = _convert_List


# NumPy attributes that recur spells as functions.
_ATTRIBUTE_FUNCTIONS = {
    "real": "real(x)", "imag": "imag(x)", "conj": "conj(x)", "conjugate": "conj(x)",
    "T": "transpose(x)", "astype": "a cast named by the dtype, as int64(x) or float32(x)",
    "sum": "sum(x)", "mean": "mean(x)", "prod": "prod(x)", "min": "min(x)", "max": "max(x)",
    "reshape": "reshape(x, shape)", "transpose": "transpose(x)", "dot": "dot(x, y)",
}


def _attribute_hint(node: ast.AST) -> tuple[str, ...]:
    """For `x.real` and the like: the function recur has for it."""
    if isinstance(node, ast.Attribute) and node.attr in _ATTRIBUTE_FUNCTIONS:
        return (f"for x.{node.attr}, write {_ATTRIBUTE_FUNCTIONS[node.attr]}",)
    return ()


def _time_offset(node: ast.AST) -> int | None:
    """`t` -> 0, `t + 2` -> 2, `t - 1` -> -1; None for anything else."""
    if isinstance(node, ast.Name) and node.id == "t":
        return 0
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add | ast.Sub)
        and isinstance(node.left, ast.Name)
        and node.left.id == "t"
        and isinstance(node.right, ast.Constant)
        and type(node.right.value) is int
    ):
        return node.right.value if isinstance(node.op, ast.Add) else -node.right.value
    return None
