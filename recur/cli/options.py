"""The options every command that runs a spec shares (`run`, `plot`, `explain`), and
running them.

A command decorates itself with `@run_options` and receives the shared options as one
`RunFlags`, which `run_from_options` checks against the spec, reads the inputs of and
runs as an `api.RunOptions`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, TextIO, TypeVar

import click

from recur import api
from recur.cli.progress import ProgressBar
from recur.diagnostics import UsageError, did_you_mean
from recur.engine.backend import DEVICES
from recur.engine.c.native import EngineNote
from recur.engine.registry import engine_names
from recur.io import read_input


class EngineChoice(click.Choice):  # type: ignore[type-arg]
    """The registered engines' names, asked of the registry when needed."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return engine_names()

    @choices.setter
    def choices(self, value: object) -> None:
        """`click.Choice` sets its list once; this one is always the registry's."""


_OPTIONS = [
    click.argument("spec", type=click.Path()),  # `recur plot` takes a Zarr store too
    click.option("-s", "--steps", type=int, help="Number of steps (overrides the spec)."),
    click.option("--set", "sets", multiple=True, metavar="NAME=EXPR",
                 help="Override a param with an expression over earlier params."),
    click.option("--input", "inputs", multiple=True, metavar="NAME=PATH",
                 help="A sequence or param from .npy/.npz/.csv, or - for standard input."),
    click.option("--output", "selected", multiple=True, metavar="NAME",
                 help="Only these outputs, in this order."),
    click.option("--last", is_flag=True, help="Keep only the final state of every output."),
    click.option("--every", type=int, metavar="K",
                 help="Keep the steps t with (t + 1) % K == 0 of every 'keep: all' output."),
    click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                 help="Where to run: NumPy (cpu) or CuPy (cuda)."),
    click.option("--engine", type=EngineChoice(), default="auto", show_default=True,
                 help="The interpreter, the compiled loop (C, or one CUDA kernel), a "
                      "parallel scan (CUDA, affine steps), or the faster for this run."),
    click.option("--seed", type=int, metavar="N",
                 help="The random numbers' stream, an integer >= 0 (overrides the spec's "
                      "'seed:', default 0)."),
    click.option("--check", "check_finite", is_flag=True,
                 help="Stop at the first non-finite value (exit 1)."),
    click.option("--scheduler", metavar="ADDRESS",
                 help="Run the lanes on a Dask cluster: tcp://HOST:PORT, or local:N for N "
                      "local worker processes (needs recur[dask]); the same result."),
    click.option("--lane-chunk", "lane_chunk", type=int, metavar="M",
                 help="Lanes per task with --scheduler (default: tasks of a second or more, "
                      "two or more per worker)."),
    click.option("-q", "--quiet", is_flag=True,
                 help="No progress bar (it shows only on a terminal, for runs over a second)."),
]


def output_options(meta_help: str, formats: list[str] | None = None
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-o`, `--force`, `-f` and `--meta`, for a command that writes results as `run` does
    (in `formats`, default: the file formats); the command receives them as `out`,
    `force`, `fmt` and `meta`."""
    from recur.io.formats import FORMATS

    options = [
        click.option("-o", "--out", "out", metavar="PATH",
                     help="Write here (- or none: stdout)."),
        click.option("--force", is_flag=True,
                     help="Replace -o and --meta files this user may not write (read-only "
                          "ones)."),
        click.option("-f", "--format", "fmt", type=click.Choice(formats or list(FORMATS)),
                     help="Output format (default: from the suffix, else csv)"
                          + ("; zarr: a store written while the run goes." if formats
                             else ".")),
        click.option("--meta", "meta", metavar="PATH", help=meta_help),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@dataclass(frozen=True, slots=True)
class RunFlags:
    """The shared run options as the command line gave them (click's parameter names)."""

    spec: str
    steps: int | None
    sets: tuple[str, ...]
    inputs: tuple[str, ...]
    selected: tuple[str, ...]
    last: bool
    every: int | None
    device: str
    engine: str
    seed: int | None
    check_finite: bool
    scheduler: str | None
    lane_chunk: int | None
    quiet: bool

    @classmethod
    def take(cls, params: dict[str, Any]) -> RunFlags:
        """The shared options, removed from `params` (a command's click parameters)."""
        return cls(**{f.name: params.pop(f.name) for f in fields(cls)})

    def described(self) -> dict[str, Any]:
        """The options that shape the result, for `--meta`."""
        return {"sets": list(self.sets), "inputs": list(self.inputs), "steps": self.steps,
                "last": self.last, "every": self.every, "device": self.device,
                "check": self.check_finite, "engine": self.engine, "seed": self.seed}


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared run options to a click command, which receives them as its first
    argument, one `RunFlags`."""
    @functools.wraps(command)
    def with_flags(**params: Any) -> Any:
        return command(RunFlags.take(params), **params)

    for option in reversed(_OPTIONS):
        with_flags = option(with_flags)
    return with_flags


@dataclass(frozen=True, slots=True)
class Ran:
    """A finished run: the spec, its result, the outputs to show, and what it took."""

    spec: api.Spec
    result: api.Result
    names: tuple[str, ...]
    request: Request
    elapsed: float  # seconds, compiling and running


@dataclass(frozen=True, slots=True)
class Request:
    """The options, checked against the spec, with the inputs read: ready to run."""

    spec: api.Spec
    names: tuple[str, ...]  # the outputs to show, in order
    options: api.RunOptions  # progress unset: `run_from_options` adds the bar
    flags: RunFlags  # as given on the command line
    sources: dict[str, InputSource]  # where each of `options.inputs` was read from


@dataclass(frozen=True, slots=True)
class InputSource:
    """Where an `--input` array came from: its PATH (`-`: standard input), and the
    SHA-256 of the bytes read, to tell later whether a file is the one a run read."""

    path: str
    sha256: str | None  # None unless asked for: hashing takes as long as reading


def _read_inputs(pairs: list[tuple[str, str]], hashed: bool
                 ) -> tuple[dict[str, Any], dict[str, InputSource]]:
    arrays, sources = {}, {}
    for name, path in pairs:
        digest = hashlib.sha256() if hashed else None
        arrays[name] = read_input(name, path, digest=digest)
        sources[name] = InputSource(path, digest.hexdigest() if digest else None)
    return arrays, sources


def request_from_options(flags: RunFlags, hash_inputs: bool = False) -> Request:
    """Load the spec, check the options against it, and read the inputs (hashing them
    with `hash_inputs`, for `--meta`)."""
    api.check_steps(flags.steps)  # before reading anything
    api.check_seed(flags.seed)
    api.check_every(flags.every, flags.last)
    loaded = api.load(flags.spec)
    names = _selected_outputs(loaded, flags.selected)
    input_paths = _input_pairs(flags.inputs)
    api.check_input_names(loaded, [name for name, _ in input_paths])
    arrays, sources = _read_inputs(input_paths, hash_inputs)
    options = api.RunOptions(
        steps=flags.steps, params=dict(_pairs(flags.sets, "--set")), inputs=arrays,
        device=flags.device, last=flags.last, every=flags.every, check=flags.check_finite,
        engine=flags.engine, seed=flags.seed, scheduler=flags.scheduler,
        lane_chunk=flags.lane_chunk,
    )
    return Request(loaded, tuple(names), options, flags, sources)


def run_from_options(flags: RunFlags, before_run: Callable[[api.Spec], None] | None = None,
                     hash_inputs: bool = False, **storing: Any) -> Ran:
    """Run with the shared options; `before_run` checks what must be right before a long
    run (an output path); `storing` are `RunOptions`' `store`, `resume` and `force`."""
    request = request_from_options(flags, hash_inputs)
    if before_run is not None:
        before_run(request.spec)
    result, elapsed = call_with_progress(
        flags, lambda bar: api.run_with(request.spec, replace(request.options, progress=bar,
                                                              **storing)))
    names = tuple(name for name in request.names if name in result)
    return Ran(request.spec, result, names, request, elapsed)


Called = TypeVar("Called")


def call_with_progress(flags: RunFlags, call: Callable[[ProgressBar | None], Called]
                       ) -> tuple[Called, float]:
    """`call(bar)` with a progress bar where one shows (unless `--quiet`) and the engines'
    notes on stderr; its value and the seconds it took."""
    # a cluster counts lanes done; its scan, steps
    unit = "lanes" if flags.scheduler is not None and flags.engine != "scan" else "steps"
    bar = None if flags.quiet or not sys.stderr.isatty() else ProgressBar(sys.stderr, unit=unit)
    started = time.monotonic()
    try:
        with _notes_on_stderr():
            value = call(bar)
    finally:
        if bar is not None:
            bar.close()
    return value, time.monotonic() - started


@contextlib.contextmanager
def _notes_on_stderr() -> Iterator[None]:
    """An engine's notes (`EngineNote` warnings) as `recur: note:` lines."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, EngineNote):
            click.echo(f"recur: note: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} expects NAME=VALUE, got '{value}'")
        pairs.append((name.strip(), rest))
    return pairs


def _input_pairs(values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = _pairs(values, "--input")
    if sum(path == "-" for _, path in pairs) > 1:
        raise UsageError("standard input (-) can feed only one --input")
    return pairs


def _selected_outputs(spec: api.Spec, selected: tuple[str, ...]) -> list[str]:
    keeps = {o.name.name: o.keep for o in spec.outputs}
    if not selected:
        return [name for name, keep in keeps.items() if keep != "none"]
    for name in selected:
        if name not in keeps:
            raise UsageError(f"--output {name}: the spec has no output '{name}'",
                             notes=did_you_mean(name, keeps))
        if keeps[name] == "none":
            raise UsageError(f"--output {name}: output '{name}' is 'keep: none', so it is "
                             "not kept", notes=("set 'keep: all' or 'keep: last' on it",))
    return list(selected)
