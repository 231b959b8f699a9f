"""Source positions, the one error hierarchy, and the one renderer.

Every layer raises a `RecurError`; only the CLI prints one, through `render`.
Positions are 1-based and count characters (not bytes). A message that names an
option does so through `option` and `option_entry`, in the library's words unless the
CLI speaks (`flag_words`). This module imports nothing from recur, so any layer may
use it.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
APPROXIMATE_NOTE = (
    "the position is the start of the value: YAML rewrote its text (escapes or folding)"
)


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source: `path` as the user typed it, 1-based line and columns."""

    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    approximate: bool = False  # YAML rewrote the text: this is the value's start


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an expression's text sits in its file, to turn its positions into file spans.

    `block_indent` is set for YAML `|` block scalars, whose later lines start at that
    column; `exact` is False where YAML rewrote the text (escapes, folding), and then
    every position maps to the scalar's start.
    """

    path: str
    line: int
    col: int
    block_indent: int | None = None
    exact: bool = True

    def span(self, line: int, col: int, end_line: int, end_col: int) -> Span:
        """The file span of expression-relative (1-based) positions."""
        if not self.exact:
            return Span(self.path, self.line, self.col, self.line, self.col + 1, approximate=True)
        first_line, first_col = self._place(line, col)
        last_line, last_col = self._place(end_line, end_col)
        return Span(self.path, first_line, first_col, last_line, last_col)

    def _place(self, line: int, col: int) -> tuple[int, int]:
        if line == 1:
            return self.line, self.col + col - 1
        indent = self.block_indent if self.block_indent is not None else 1
        return self.line + line - 1, indent + col - 1


@dataclass
class RecurError(Exception):
    """A user-facing error: a message, where it happened, and hints.

    `source` is the text the span points into; the layer that knows it fills it in
    (the spec loader for spec files, the CLI for `--set` expressions). An error of a
    run also says, as data, what the message says in words: the `output` whose step
    failed (None for `until`), the step `t`, and the first `lane` that failed, an index
    into the output's state (None for a state without lanes).
    """

    message: str
    span: Span | None = None
    notes: tuple[str, ...] = ()
    exit_code: int = EXIT_USAGE
    source: str | None = field(default=None, repr=False)
    output: str | None = field(default=None, kw_only=True)
    t: int | None = field(default=None, kw_only=True)
    lane: tuple[int, ...] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def with_note(self, note: str) -> RecurError:
        return replace(self, notes=(*self.notes, note))


class SpecError(RecurError):
    """The spec file is malformed: YAML, keys, types, names."""


class ExprError(RecurError):
    """An expression is outside the language, or refers to something unknown."""


class UsageError(RecurError):
    """The command line is wrong (an option, an input file, an output path)."""


class BackendError(RecurError):
    """The requested device cannot be used."""


@dataclass
class RunError(RecurError):
    """The evaluation failed: overflow, division by zero, non-finite values, memory."""

    exit_code: int = EXIT_RUN_FAILED


@dataclass
class Fault(RecurError):
    """An integer fault of one operation (`node`), in the lanes of `mask` (None: a Python
    number). Closures raise it; the loop reports it with its output, step and lane."""

    kind: str = field(default="", kw_only=True)
    mask: Any = field(default=None, kw_only=True, repr=False)
    node: Any = field(default=None, kw_only=True, repr=False)
    exit_code: int = EXIT_RUN_FAILED

    @classmethod
    def of(cls, kind: str, mask: Any, node: Any) -> Fault:
        return cls(kind, node.span, kind=kind, mask=mask, node=node)


@dataclass
class KernelFault(RecurError):
    """A compiled kernel stopped at a fault at step `t`: the interpreter replays the run
    to report it (it knows the output, the lane and the words for it)."""

    exit_code: int = EXIT_RUN_FAILED

    @classmethod
    def at(cls, t: int) -> KernelFault:
        return cls(f"a compiled kernel stopped at a fault at t={t}", t=t)


@dataclass
class EngineError(RecurError):
    """An engine cannot run a program, or failed to: `auto` runs another one; an engine
    asked for by name says why."""


@dataclass
class Unsupported(EngineError):
    """An engine cannot run a program; the message says why, in words for `explain`."""


@dataclass
class CompileError(EngineError):
    """A generated kernel did not compile or load (a bug in recur, or the machine's
    compiler); the message says how."""


def render(error: RecurError) -> str:
    """Format an error the way compilers do: location, message, source line, caret, notes."""
    span = error.span
    lines = []
    if span is None:
        lines.append(f"recur: error: {error.message}")
    else:
        lines.append(f"{span.path}:{span.line}:{span.col}: error: {error.message}")
        lines.extend(_snippet(error.source, span))
    lines.extend(f"note: {note}" for note in error.notes)
    if span is not None and span.approximate:
        lines.append(f"note: {APPROXIMATE_NOTE}")
    return "\n".join(lines)


# The line breaks YAML counts (and Python's `\n`, `\r\n`, `\r` among them), so that line
# numbers from PyYAML's marks and from Python's parser find their line. `str.splitlines`
# also breaks at `\v`, `\f` and `\x1c`-`\x1e`, which neither counts.
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def source_lines(source: str) -> list[str]:
    """The lines of a source as positions count them (no line after a final break)."""
    lines = _LINE_BREAK.split(source)
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()
    return lines if source else []


def _snippet(source: str | None, span: Span) -> list[str]:
    if source is None:
        return []
    lines = source_lines(source)
    if not 1 <= span.line <= len(lines):
        return []
    raw = lines[span.line - 1]
    end_col = span.end_col if span.end_line == span.line else len(raw) + 1
    # Widths are measured after tab expansion of everything before, so a tab's width
    # depends on where it starts.
    start = len(raw[: span.col - 1].expandtabs())
    width = max(len(raw[: max(end_col, span.col + 1) - 1].expandtabs()) - start, 1)
    return ["    " + raw.expandtabs().rstrip(), "    " + " " * start + "^" + "~" * (width - 1)]


def did_you_mean(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """A 'did you mean' note for the closest candidate, or nothing."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return (f"did you mean '{close[0]}'?",) if close else ()


# The options messages name, as the library's parameters and as the command line's flags:
# the library says `steps=5`, `params['r']`, `engine='scan'`; the command line `--steps 5`,
# `--set r`, `--engine scan`. The CLI speaks through `flag_words()`; the default is the
# library's. Upper-case values are placeholders (`N`, `PATH`), written bare in both.
FLAGS = {"steps": "--steps", "params": "--set", "inputs": "--input", "engine": "--engine",
         "device": "--device", "last": "--last", "check": "--check", "seed": "--seed",
         "of": "--of", "wrt": "--wrt", "truncate": "--truncate",
         "checkpoints": "--checkpoints", "scheduler": "--scheduler",
         "lane_chunk": "--lane-chunk", "every": "--every", "store": "-o",
         "resume": "--resume", "force": "--force"}
_SPEAKING_FLAGS: ContextVar[bool] = ContextVar("recur_speaking_flags", default=False)


@contextlib.contextmanager
def flag_words() -> Iterator[None]:
    """Within it, messages name options by their flags: the command line's words."""
    token = _SPEAKING_FLAGS.set(True)
    try:
        yield
    finally:
        _SPEAKING_FLAGS.reset(token)


def speaking_flags() -> bool:
    """Whether messages now speak the command line's words, for one whose wording differs
    beyond an option's name."""
    return _SPEAKING_FLAGS.get()


def option(key: str, *values: object) -> str:
    """Option `key` (a library parameter's name) for a message, with its values if given:
    `steps`, `steps=5`, `engine='auto' or 'interp'`, `last=True`; or `--steps`, `--steps 5`,
    `--engine auto or interp`, `--last`."""
    if speaking_flags():
        shown = [str(value) for value in values if value is not True]
        return " ".join([FLAGS[key], *_listed(shown)])
    return "=".join([key, *_listed([_library_value(value) for value in values])])


def option_entry(key: str, name: str, value: str | None = None) -> str:
    """One entry of a mapping option: `params['r']`, `inputs['s']`; or `--set r`, and with
    a value (the command line's alone) `--input s=PATH`."""
    if speaking_flags():
        return f"{FLAGS[key]} {name}" + ("" if value is None else f"={value}")
    return f"{key}[{name!r}]"


def _library_value(value: object) -> str:
    return value if isinstance(value, str) and value.isupper() else repr(value)


def _listed(values: list[str]) -> list[str]:
    """`a`, `a or b`, `a, b or c`: as one word, so that `option` joins it whole."""
    if len(values) < 2:
        return values
    return [f"{', '.join(values[:-1])} or {values[-1]}"]
