"""Advice where the C engine would have helped but cannot be built here."""

from __future__ import annotations

from recur.compile.ir import Program
from recur.engine.c import native
from recur.engine.interp.engine import interp_seconds
from recur.engine.registry import Choice

LONG_RUN = 1.0  # seconds of interpreting worth a note where no compiler could do better


def note_interpreted(program: Program, choice: Choice) -> None:
    """A note where `auto` interprets a long run only because there is no C compiler."""
    if choice.engine.name != "interp" or program.device != "cpu" or native.available():
        return
    seconds = interp_seconds(program) if program.steps else 0.0
    if seconds >= LONG_RUN:
        native.note(f"{native.missing_compiler()}, so the interpreter runs this (about "
                    f"{seconds:.2g} s); set CC, or install gcc or clang, for the "
                    "compiled engine")
