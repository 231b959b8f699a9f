"""`recur explain`: the compiled program in words, for people deciding what a spec will do."""

from __future__ import annotations

import functools
from typing import Any

from recur.compile import ir
from recur.compile.lower import Compiled
from recur.diagnostics import Span
from recur.engine.memory import format_bytes
from recur.engine.registry import choose
from recur.lang.host import to_host
from recur.spec import Spec

MAX_SHOWN_VALUES = 6


def explain(spec: Spec, compiled: Compiled, engine: str = "auto") -> str:
    """A multi-line description of what running `compiled` with `engine` will do."""
    program, analysis = compiled.program, compiled.analysis
    lines = [f"{spec.path}" + (f": {spec.description.splitlines()[0]}" if spec.description
                               else "")]
    lines.append(f"device: {program.device} ({_device_words(program.device)})")
    choice = choose(program, engine)
    lines.append(f"engine: {choice.engine.name} ({choice.engine.words})")
    lines.append(f"  because: {choice.reason}")
    until = f", or fewer: 'until' may stop it ({_text(spec, spec.until.span)})" \
        if spec.until is not None else ""
    lines.append(f"steps: {program.steps} ({compiled.steps_reason}){until}")
    if program.params:
        lines.append("params:")
        lines.extend(f"  {name} = {_value(value)}" for name, value in program.params.items())
    if program.sequences:
        lines.append("sequences" + (" (reversed: walked from the end)" if spec.reverse else "")
                     + ":")
        for name, array in program.sequences.items():
            low, high = analysis.sequence_offsets[name]
            lines.append(f"  {name}: {array.dtype}, {len(array)} elements of shape "
                         f"{tuple(array.shape[1:])}, read at offsets {low}..{high}")
    lines.append("outputs, in evaluation order:")
    summaries = {summary.name: summary for summary in compiled.outputs}
    for number, name in enumerate(analysis.order, start=1):
        lines.extend(_output(number, spec, summaries[name]))
    lines.extend(_draws(spec, program))
    lines.append("moved out of the loop:")
    moved = [node for root in program.roots() for node in ir.walk(root)
             if isinstance(node, ir.Hoisted | ir.Swept)]
    for kind, words in ((ir.Hoisted, "computed once"),
                        (ir.Swept, "computed for all steps at once")):
        lines.extend(f"  {_text(spec, node.span)}  ({words})" for node in sorted(
            (node for node in moved if isinstance(node, kind)), key=lambda node: node.slot))
    if not moved:
        lines.append("  nothing")
    total = sum(summary.kept_bytes for summary in compiled.outputs)
    lines.append(f"memory for the outputs: {format_bytes(total)}")
    return "\n".join(lines)


def _output(number: int, spec: Spec, summary: Any) -> list[str]:
    output = spec.output(summary.name)
    taps = f"taps {list(summary.taps)}" if summary.taps else "no taps"
    if summary.initial_shape is None:
        initial = "no initial"
    else:
        depth, *state = summary.initial_shape
        initial = f"initial: {depth} state{'s' if depth > 1 else ''} of shape {tuple(state)}"
    return [
        f"  {number}. {summary.name}: {summary.dtype}, state {summary.shape}, {taps}, "
        f"{initial}, keep {summary.keep} ({format_bytes(summary.kept_bytes)})",
        f"     step: {_text(spec, output.step.span)}",
    ]


def _draws(spec: Spec, program: ir.Program) -> list[str]:
    """The random calls by site (none: no section), and the seed that keys them."""
    draws = program.draws()
    if not draws:
        return []
    return [f"random calls, seed {program.seed} (Philox4x64-10, counter (t, element, c, 0), "
            "key (seed, 0)):",
            *(f"  c={draw.site}: {f'output {draw.output}' if draw.output else 'until'}, "
              f"{draw.kind}: {_text(spec, draw.span)}" for draw in draws)]


def _device_words(name: str) -> str:
    return "CuPy on a CUDA GPU" if name == "cuda" else "NumPy on the CPU"


def _value(value: Any) -> str:
    if not hasattr(value, "shape"):
        return repr(value)
    flat = to_host(value).ravel()
    shown = ", ".join(repr(v) for v in flat[:MAX_SHOWN_VALUES].tolist())
    more = ", ..." if flat.size > MAX_SHOWN_VALUES else ""
    return f"array of shape {tuple(value.shape)}, {value.dtype}: [{shown}{more}]"


@functools.lru_cache(maxsize=2)
def _lines(source: str) -> tuple[str, ...]:
    """A source's lines, split once for all the outputs shown (not once for each)."""
    return tuple(source.splitlines())


def _text(spec: Spec, span: Span) -> str:
    """The source text under a span (its first line), or a placeholder where YAML rewrote it."""
    lines = _lines(spec.source)
    if span.approximate or not 1 <= span.line <= len(lines):
        return "(see the spec)"
    line = lines[span.line - 1]
    end = span.end_col if span.end_line == span.line else len(line) + 1
    return line[span.col - 1:end - 1].strip()
