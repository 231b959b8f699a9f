"""The engines, and which one runs a program: asked for by name, or `auto`'s cheapest.

Adding an engine is one class implementing `recur.engine.protocol.Engine` and one
`register` call in `_builtin`. `auto` asks every engine of the device that supports
the program for its estimate and takes the cheapest, counting the set-up (compiling a
kernel) unless it is done already; `explain` and `check -v` print the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from recur.compile.ir import Program
from recur.diagnostics import UsageError, option
from recur.engine.protocol import Engine, Estimate

AUTO = "auto"
_REGISTRY: list[Engine] = []
_LOADED: list[bool] = []  # the built-in engines are registered on first use


def register(engine: Engine) -> None:
    """Add an engine; one of the same name and device is replaced."""
    unregister(engine.name, engine.device)
    _REGISTRY.append(engine)


def unregister(name: str, device: str) -> None:
    kept = [e for e in _registered() if (e.name, e.device) != (name, device)]
    _REGISTRY[:] = kept


def engine_names() -> tuple[str, ...]:
    """What `engine=` takes: `auto`, then each registered name once."""
    names = [AUTO]
    for engine in _registered():
        if engine.name not in names:
            names.append(engine.name)
    return tuple(names)


def engines(device: str) -> list[Engine]:
    """The engines that run on `device`, in the order registered."""
    return [engine for engine in _registered() if engine.device == device]


def find(name: str, device: str) -> Engine:
    """The engine `name` on `device`.

    Raises:
        UsageError: no such engine, or none of that name on this device.
    """
    names = engine_names()
    if name not in names:
        raise UsageError(f"{option('engine')} must be one of {', '.join(names)}, "
                         f"not {name!r}")
    for engine in engines(device):
        if engine.name == name:
            return engine
    devices = sorted({e.device for e in _registered() if e.name == name})
    others = [*(e.name for e in engines(device) if e.name not in (name, "interp")), AUTO]
    raise UsageError(f"{option('engine', name)} runs on "
                     f"{option('device', *devices)} only",
                     notes=(f"use {option('engine', *others)}",))


def estimates(program: Program) -> dict[str, Estimate]:
    """Each engine of the program's device that can run it, and its estimate."""
    return {engine.name: engine.estimate(program) for engine in engines(program.device)
            if engine.supports(program) is None}


@dataclass(frozen=True, slots=True)
class Choice:
    """The engine a run uses, and why, in words."""

    engine: Engine
    reason: str


def choose(program: Program, requested: str = AUTO) -> Choice:
    """The engine for `program`: the one `requested` by name, or `auto`'s pick.

    Raises:
        UsageError: an unknown name, or an engine asked for that cannot run `program`.
    """
    if requested != AUTO:
        engine = find(requested, program.device)
        why_not = engine.supports(program)
        if why_not is not None:
            where = "" if program.device == "cpu" else f" on {program.device.upper()}"
            others = [AUTO, *(e.name for e in engines(program.device)
                              if e.name != requested and e.supports(program) is None)]
            raise UsageError(f"{option('engine', requested)} cannot run this spec{where}: "
                             f"{why_not}", notes=(f"use {option('engine', *others)}",))
        return Choice(engine, f"asked for with {option('engine', requested)}")
    interp = find("interp", program.device)
    if program.steps == 0:
        return Choice(interp, "there are no steps to run")
    candidates: list[tuple[Engine, Estimate]] = []
    refusals = []
    for engine in engines(program.device):
        why_not = engine.supports(program)
        if why_not is None:
            candidates.append((engine, engine.estimate(program)))
        else:
            refusals.append(f"the {engine.name} engine cannot run it: {why_not}")
    if len(candidates) == 1:
        return Choice(candidates[0][0], "; ".join(refusals))
    reason = ", ".join(estimate.words for _, estimate in candidates)
    return Choice(_cheapest(program, candidates), reason)


def _cheapest(program: Program, candidates: list[tuple[Engine, Estimate]]) -> Engine:
    """The fastest engine counting set-up; or one faster without it whose set-up is done
    already (asked only then: looking in a kernel cache costs a hash of the source)."""
    first_time = min(candidates, key=lambda pair: pair[1].seconds + pair[1].setup)
    loop_only = min(candidates, key=lambda pair: pair[1].seconds)
    if loop_only is not first_time and loop_only[0].ready(program):
        return loop_only[0]
    return first_time[0]


def _registered() -> list[Engine]:
    if not _LOADED:
        _LOADED.append(True)
        _builtin()
    return _REGISTRY


def _builtin() -> None:
    """The engines recur comes with; imported here so that loading recur imports none."""
    from recur.engine.c.engine import CEngine
    from recur.engine.cuda.engine import FusedEngine, ScanEngine
    from recur.engine.interp.engine import Interpreter

    _REGISTRY.extend([Interpreter("cpu"), CEngine(),
                      FusedEngine(), ScanEngine(), Interpreter("cuda")])
