"""YAML text -> a checked `Spec`, every part of it tied to its place in the file.

The YAML is composed into PyYAML's node tree (which keeps marks) rather than loaded
into dicts (which would lose them). Values become expression trees here: a number is
a `Number` node, a nested list a `ListExpr`, a string is parsed as an expression.
Only structure is checked here; names and taps are the analyzer's job.
"""

from __future__ import annotations

import functools
import keyword
import os
from pathlib import Path
from typing import cast

import yaml

from recur.diagnostics import (
    ExprError,
    Origin,
    RecurError,
    Span,
    SpecError,
    did_you_mean,
    source_lines,
)
from recur.lang import nodes as n
from recur.lang.casts import DTYPES
from recur.lang.functions import CONSTANTS, DRAWS, FUNCTIONS
from recur.lang.keep import WORDS as KEEP_WORDS
from recur.lang.keep import parse as parse_keep
from recur.lang.parse import parse_expression
from recur.spec.model import Declared, OutputSpec, Spec, ValueSpec

MAX_SPEC_BYTES = 1_000_000
MAX_YAML_DEPTH = 100  # collections in collections; a 64-dimensional initial takes 67
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RESERVED = frozenset({"t", "steps", *CONSTANTS, *FUNCTIONS, *DRAWS})
TOP_KEYS = (
    "description", "params", "sequences", "outputs", "steps", "dtype", "reverse", "until",
    "seed",
)
MAX_SEED = 2**64 - 1  # the first word of Philox's key
OUTPUT_KEYS = ("step", "initial", "taps", "dtype", "keep")
INPUT = "input"
FLOW_COMMA_NOTE = (
    "inside YAML's {...} or [...] a comma ends an unquoted value, so the expression was cut "
    "at its first ','; quote it, as in a: 'f(1, 2)', or write the mapping or list in block "
    "style, one entry per line"
)


def load_spec(path_or_text: str | Path, *, path: str | None = None) -> Spec:
    """Read a spec from a file path, or from YAML text when `path_or_text` holds a newline.

    Args:
        path_or_text: a file path, or the YAML text itself.
        path: the name to show in messages for text (default `<spec>`).

    Raises:
        SpecError: for unreadable files, YAML errors and structure errors.
    """
    text, shown = _read(path_or_text, path)
    try:
        return _Loader(text, shown).load()
    except RecurError as err:
        if err.source is None:
            err.source = text
        raise


def _read(path_or_text: str | Path, path: str | None) -> tuple[str, str]:
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return path_or_text, path or "<spec>"
    file = Path(path_or_text)
    shown = path or str(path_or_text)
    try:
        with file.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_SPEC_BYTES:  # a regular file: refused unread
                raise _too_big(shown, f"{size} bytes")
            # A pipe or a device has no size to check: read one byte past the limit.
            data = stream.read(MAX_SPEC_BYTES + 1)
        if len(data) > MAX_SPEC_BYTES:
            raise _too_big(shown, f"more than {MAX_SPEC_BYTES} bytes")
        text = data.decode("utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec '{shown}': {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"cannot read spec '{shown}': it is not UTF-8 text") from None
    # Universal newlines, as text mode reads them.
    return text.replace("\r\n", "\n").replace("\r", "\n"), shown


def _too_big(shown: str, size: str) -> SpecError:
    return SpecError(f"{shown}: spec is {size}; the limit is {MAX_SPEC_BYTES}")


class _DepthLimit(yaml.MarkedYAMLError):
    """A collection nested deeper than `MAX_YAML_DEPTH`, at its start."""


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting before its composer recurses too far."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _DepthLimit(problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_LIBYAML = getattr(yaml, "CSafeLoader", None)  # PyYAML built with libyaml, or None
_OPENING = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSING = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _compose_with_libyaml(text: str) -> yaml.Node | None:
    """The text's node tree by libyaml, about ten times as fast as PyYAML's composer in
    Python (7 s of a 1 MB spec's 8). None where libyaml is missing, finds a problem, the
    nesting comes near the limit, the text holds a tab or nothing: PyYAML's composer
    then decides, says what is wrong in its own words, and refuses deep nesting before
    recursing into it (the nesting is counted from libyaml's events first, which do not
    recurse, and libyaml's composer does)."""
    if _LIBYAML is None or "\t" in text:  # libyaml allows tabs where PyYAML does not
        return None
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_LIBYAML):
            if isinstance(event, _OPENING):
                depth += 1
                if depth >= MAX_YAML_DEPTH:
                    return None
            elif isinstance(event, _CLOSING):
                depth -= 1
        return yaml.compose(text, Loader=_LIBYAML)
    except (yaml.YAMLError, ValueError):  # ValueError: a lone surrogate, not UTF-8
        return None


class _Loader:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self._seen: set[int] = set()

    @functools.cached_property
    def lines(self) -> list[str]:
        """The text's lines, split once: every node's span reads them."""
        return source_lines(self.text) or [""]

    def span(self, node: yaml.Node) -> Span:
        start, end = node.start_mark, node.end_mark
        lines = self.lines
        if start.line >= len(lines):  # an empty value at the end: after the last line
            line = len(lines)
            return Span(self.path, line, len(lines[-1]) + 1, line, len(lines[-1]) + 2)
        if end.line != start.line or end.column <= start.column:
            line_length = len(lines[start.line])
            return Span(self.path, start.line + 1, start.column + 1, start.line + 1,
                        max(line_length + 1, start.column + 2))
        return Span(self.path, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def error(self, message: str, node: yaml.Node, *notes: str) -> SpecError:
        return SpecError(message, self.span(node), tuple(notes), source=self.text)

    def load(self) -> Spec:
        root = self._compose()
        if not isinstance(root, yaml.MappingNode):
            raise self.error("a spec must be a YAML mapping with at least 'outputs'", root)
        entries = self.mapping(root, TOP_KEYS, "top-level key")
        if "outputs" not in entries:
            raise self.error("the spec has no 'outputs'; it needs at least one", root)
        dtype = self.choice(entries["dtype"][1], DTYPES, "dtype") if "dtype" in entries else (
            "float64"
        )
        params = self.values(entries.get("params"), "params")
        sequences = self.values(entries.get("sequences"), "sequences")
        outputs = self.outputs(entries["outputs"][1], dtype)
        self.check_unique([v.name for v in (*params, *sequences)] + [o.name for o in outputs])
        return Spec(
            path=self.path,
            source=self.text,
            description=self.text_value(entries.get("description")),
            params=params,
            sequences=sequences,
            outputs=outputs,
            steps=self.expression(entries["steps"][1]) if "steps" in entries else None,
            dtype=dtype,
            reverse=self.flag(entries.get("reverse")),
            until=self.expression(entries["until"][1]) if "until" in entries else None,
            span=self.span(root),
            seed=self.seed(entries.get("seed")),
        )

    def _compose(self) -> yaml.Node:
        root = _compose_with_libyaml(self.text)
        if root is None:
            root = self._compose_in_python()
        if root is None or (_is_null(root) and not root.value):  # nothing, or only '---'
            raise SpecError(f"{self.path}: the spec is empty; it needs at least 'outputs'")
        return root

    def _compose_in_python(self) -> yaml.Node | None:
        try:
            return yaml.compose(self.text, Loader=_SafeLoader)
        except _DepthLimit as exc:
            mark = exc.problem_mark
            assert mark is not None  # _DepthLimit is always raised with one
            raise SpecError(
                f"a YAML value nested more than {MAX_YAML_DEPTH} levels deep",
                Span(self.path, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2),
                source=self.text,
            ) from None
        except yaml.MarkedYAMLError as exc:
            raise self.yaml_error(exc) from None
        except yaml.reader.ReaderError as exc:
            raise self.reader_error(exc) from None
        except yaml.YAMLError as exc:
            raise SpecError(f"invalid YAML: {exc}", source=self.text) from None

    def reader_error(self, exc: yaml.reader.ReaderError) -> SpecError:
        """A character YAML does not allow, at its place (PyYAML gives only its index)."""
        before = self.text[:exc.position]
        lines = source_lines(before + "x")  # the character's line is the last one
        line, col = len(lines), len(lines[-1])
        character = exc.character
        code = f"#x{character:04x}" if isinstance(character, int) else repr(character)
        return SpecError(
            f"invalid YAML: unacceptable character {code}: {exc.reason}",
            Span(self.path, line, col, line, col + 1), source=self.text,
        )

    def yaml_error(self, exc: yaml.MarkedYAMLError) -> SpecError:
        """PyYAML's problem at its mark, with its context ("while scanning ...") as a note."""
        line_count = len(self.text.splitlines())
        mark = exc.problem_mark
        if mark is None or mark.line >= line_count:  # past the end: blame where it started
            mark = exc.context_mark or mark
        notes = []
        context = exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and context is not None and context is mark:
            problem = f"{problem} {exc.context}"
        elif exc.context and context is not None:
            notes.append(f"{self.path}:{context.line + 1}:{context.column + 1}: "
                         f"{exc.context} that starts here")
        if "\\t" in problem or "\t" in problem:
            notes.append("YAML does not allow a tab here: use spaces, or quote the expression")
        span = None
        if mark is not None:
            line = min(mark.line, max(line_count - 1, 0))
            span = Span(self.path, line + 1, mark.column + 1, line + 1, mark.column + 2)
        return SpecError(f"invalid YAML: {problem}", span, tuple(notes), source=self.text)

    def mapping(
        self, node: yaml.Node, valid: tuple[str, ...] | None, what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key; unknown or repeated keys are errors."""
        self.visit(node)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"expected a mapping for {what}s", node)
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            self.visit(key)
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:null":
                raise self.error(f"expected a name as {what}", key)
            name = str(key.value)
            if valid is not None and name not in valid:
                raise self.error(
                    f"unknown {what} '{name}'", key,
                    *did_you_mean(name, valid), f"valid keys: {', '.join(valid)}",
                )
            if name in entries:
                raise self.error(f"duplicate {what} '{name}'", key)
            entries[name] = (key, value)
        return entries

    def visit(self, node: yaml.Node) -> None:
        """Refuse YAML aliases: a shared node is how 'billion laughs' bombs are built."""
        if id(node) in self._seen:
            raise self.error("YAML aliases (*name) are not supported in a spec", node)
        self._seen.add(id(node))

    def values(self, entry: tuple[yaml.Node, yaml.Node] | None, what: str) -> tuple[
        ValueSpec, ...
    ]:
        if entry is None or _is_null(entry[1]):
            return ()
        result = []
        for name, (key, value) in self.mapping(entry[1], None, what[:-1] + " name").items():
            declared = self.declare(name, key, what[:-1])
            if isinstance(value, yaml.ScalarNode) and value.value == INPUT and _plain(value):
                result.append(ValueSpec(declared, None, self.span(value)))
            else:
                result.append(ValueSpec(declared, self.expression(value), self.span(value)))
        return tuple(result)

    def outputs(self, node: yaml.Node, default_dtype: str) -> tuple[OutputSpec, ...]:
        entries = self.mapping(node, None, "output name")
        if not entries:
            raise self.error("'outputs' is empty; it needs at least one output", node)
        return tuple(
            self.output(self.declare(name, key, "output"), value, default_dtype)
            for name, (key, value) in entries.items()
        )

    def output(self, name: Declared, node: yaml.Node, default_dtype: str) -> OutputSpec:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(
                f"output '{name.name}' must be a mapping with at least 'step'", node,
                f"for example:  {name.name}: {{step: {name.name}[t-1] + 1, initial: 0}}",
            )
        entries = self.mapping(node, OUTPUT_KEYS, "output key")
        if "step" not in entries:
            raise self.error(f"output '{name.name}' has no 'step'", node)
        dtype_node = entries["dtype"][1] if "dtype" in entries else None
        taps_node = entries["taps"][1] if "taps" in entries else None
        return OutputSpec(
            name=name,
            step=self.expression(entries["step"][1]),
            initial=self.expression(entries["initial"][1]) if "initial" in entries else None,
            taps=self.taps(taps_node) if taps_node is not None else None,
            taps_span=self.span(taps_node) if taps_node is not None else None,
            dtype=self.choice(dtype_node, DTYPES, "dtype") if dtype_node else default_dtype,
            dtype_span=self.span(dtype_node) if dtype_node is not None else None,
            keep=self.keep(entries["keep"][1]) if "keep" in entries else "all",
        )

    def taps(self, node: yaml.Node) -> tuple[int, ...]:
        self.visit(node)
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if not items or any(
            not isinstance(i, yaml.ScalarNode) or i.tag != "tag:yaml.org,2002:int"
            for i in items
        ):
            raise self.error("'taps' must be a list of negative integers, like [-2, -1]", node)
        taps = tuple(cast(int, self.construct(i)) for i in items)  # int-tagged above
        listed: dict[int, yaml.Node] = {}  # tap -> its first item (a long list: no rescans)
        for item, tap in zip(items, taps, strict=True):
            if tap >= 0:
                raise self.error(f"tap {tap} is not negative; taps look back, like -1", item)
            if tap in listed:
                first = self.span(listed[tap])
                raise self.error(f"tap {tap} is listed twice", item,
                                 f"{first.path}:{first.line}:{first.col}: first listed here")
            listed[tap] = item
        return taps

    def declare(self, name: str, key: yaml.Node, what: str) -> Declared:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise self.error(f"'{name}' is not a valid {what} name", key,
                             "a name is letters, digits and '_', not starting with a digit")
        if name in RESERVED:
            kind = "a function" if name in FUNCTIONS else "reserved"
            raise self.error(f"{what} name '{name}' is {kind}; choose another name", key)
        return Declared(name, self.span(key))

    def check_unique(self, names: list[Declared]) -> None:
        seen: dict[str, Declared] = {}
        for declared in names:
            if declared.name in seen:
                first = seen[declared.name].span
                raise SpecError(
                    f"'{declared.name}' is declared twice", declared.span,
                    (f"{first.path}:{first.line}:{first.col}: first declared here",),
                    source=self.text,
                )
            seen[declared.name] = declared

    def choice(self, node: yaml.Node, valid: tuple[str, ...], what: str) -> str:
        self.visit(node)
        value = str(node.value) if isinstance(node, yaml.ScalarNode) else None
        if value not in valid:
            shown = value if value is not None else "a collection"
            raise self.error(f"unknown {what} '{shown}'", node, *did_you_mean(shown, valid),
                             f"valid values: {', '.join(valid)}")
        return value

    def keep(self, node: yaml.Node) -> str:
        """An output's `keep:`: all, last, none, `last N` or `every K` (N, K >= 1)."""
        self.visit(node)
        value = str(node.value) if isinstance(node, yaml.ScalarNode) else None
        if value is not None and parse_keep(value) is not None:
            return " ".join(value.split())
        if value is not None and value.split()[:1] in (["last"], ["every"]):
            raise self.error(f"keep '{value}' needs a whole number >= 1 after "
                             f"'{value.split()[0]}'", node, "as in 'last 10' or 'every 100'")
        shown = value if value is not None else "a collection"
        raise self.error(f"unknown keep '{shown}'", node, *did_you_mean(shown, KEEP_WORDS[:3]),
                         f"valid values: {', '.join(KEEP_WORDS)}")

    def flag(self, entry: tuple[yaml.Node, yaml.Node] | None) -> bool:
        if entry is None:
            return False
        node = entry[1]
        self.visit(node)
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            raise self.error("expected true or false", node)
        return bool(self.construct(node))

    def seed(self, entry: tuple[yaml.Node, yaml.Node] | None) -> int:
        """The `seed:` of the random calls: an integer literal from 0 to 2**64 - 1."""
        if entry is None:
            return 0
        node = entry[1]
        self.visit(node)
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            raise self.error("'seed' must be an integer >= 0", node)
        value = cast(int, self.construct(node))
        if not 0 <= value <= MAX_SEED:
            raise self.error(f"'seed' must be an integer from 0 to 2**64 - 1, not {node.value}",
                             node)
        return value

    def text_value(self, entry: tuple[yaml.Node, yaml.Node] | None) -> str:
        if entry is None:
            return ""
        self.visit(entry[1])
        if not isinstance(entry[1], yaml.ScalarNode):
            raise self.error("'description' must be text", entry[1])
        return str(entry[1].value).strip()

    def construct(self, node: yaml.ScalarNode) -> object:
        try:
            return yaml.SafeLoader("").construct_object(node)
        except ValueError:  # an integer of more digits than Python converts (4300)
            digits = sum(c.isdigit() for c in str(node.value))
            raise self.error(f"integer literal of {digits} digits does not fit in int64",
                             node) from None

    def expression(self, node: yaml.Node) -> n.Node:
        """A value node: number, nested list of values, or expression text."""
        self.visit(node)
        span = self.span(node)
        if isinstance(node, yaml.SequenceNode):
            return n.ListExpr(span, tuple(self.expression(item) for item in node.value))
        if not isinstance(node, yaml.ScalarNode):
            raise self.error("expected a number, an expression or a list", node)
        if node.tag == "tag:yaml.org,2002:int":
            value = self.construct(node)
            if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
                shown = node.value if len(node.value) <= 40 else (
                    f"of {sum(c.isdigit() for c in node.value)} digits")
                raise self.error(f"integer literal {shown} does not fit in int64", node)
            return n.Number(span, value)  # type: ignore[arg-type]
        if node.tag in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"):
            return n.Number(span, self.construct(node))  # type: ignore[arg-type]
        if _is_null(node):
            raise self.error("missing value: expected a number, an expression or a list", node)
        try:
            return parse_expression(str(node.value), self.origin(node))
        except ExprError as err:
            cut = self.text[node.end_mark.index:].lstrip(" ")[:1] == ","
            if _plain(node) and cut and "was never closed" in err.message:
                raise err.with_note(FLOW_COMMA_NOTE) from None
            raise

    def origin(self, node: yaml.ScalarNode) -> Origin:
        """Where the expression text of a scalar starts, per YAML scalar style."""
        start, end = node.start_mark, node.end_mark
        line, col = start.line + 1, start.column + 1
        if _plain(node):
            exact = self.text[start.index:end.index] == node.value
            return Origin(self.path, line, col, exact=exact)
        if node.style in ("'", '"'):
            exact = self.text[start.index + 1:end.index - 1] == node.value
            return Origin(self.path, line, col + 1 if exact else col, exact=exact)
        if node.style == "|":
            return self.block_origin(node)
        return Origin(self.path, line, col, exact=False)

    def block_origin(self, node: yaml.ScalarNode) -> Origin:
        lines = self.lines
        top = node.start_mark.line + 1  # 0-based index of the value's first line
        value_lines = node.value.split("\n")
        if node.value.endswith("\n"):
            value_lines.pop()  # the break that ends the last line
        # Leading blank lines are lines of the value too: only the indent is found below.
        first = top
        while first < len(lines) and not lines[first].strip():
            first += 1
        if first >= len(lines) or not node.value.strip():
            return Origin(self.path, node.start_mark.line + 1, node.start_mark.column + 1,
                          exact=False)
        content = lines[first]
        indent = len(content) - len(content.lstrip(" "))
        exact = all(
            lines[top + i][indent:] == text
            for i, text in enumerate(value_lines)
            if top + i < len(lines) and (text or lines[top + i].strip())
        )
        return Origin(self.path, top + 1, indent + 1, block_indent=indent + 1, exact=exact)


def _plain(node: yaml.ScalarNode) -> bool:
    """A plain scalar: its style is None from PyYAML's composer, '' from libyaml's."""
    return not node.style


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
