"""The library API: `load` a spec, `run` it, or `check` it; the CLI is a thin layer on these.

    >>> import recur
    >>> spec = recur.load("specs/fibonacci.yaml")
    >>> recur.run(spec, steps=5)["x"].tolist()
    [1, 2, 3, 5, 8]
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy

from recur import storing
from recur.compile.analyze import Context, analyze_spec, check_expression
from recur.compile.cache import own_params
from recur.compile.evaluate import MAX_STEPS
from recur.compile.ir import Program
from recur.compile.lower import Compiled, OutputSummary, compile_spec
from recur.diagnostics import (
    BackendError,
    CompileError,
    KernelFault,
    Origin,
    RecurError,
    UsageError,
    did_you_mean,
    option,
    option_entry,
)
from recur.engine.backend import NumpyBackend, get_backend
from recur.engine.c.advice import note_interpreted
from recur.engine.c.native import note
from recur.engine.memory import check_outputs_fit
from recur.engine.plan import Outcome, run_on
from recur.engine.protocol import Engine
from recur.engine.registry import choose
from recur.io.zarr_store import RunStore
from recur.lang.keep import of as of_keep
from recur.lang.parse import parse_expression
from recur.spec import Spec, load_spec
from recur.spec.load import MAX_SEED

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The keyword arguments of `run` as one value, for a caller that builds them once and
    runs them later or more than once (the CLI builds one from its flags).

    A misspelt field is a TypeError, as a misspelt keyword of `run` is.
    """

    steps: int | None = None  # overrides the spec's step count
    params: Mapping[str, Any] = field(default_factory=dict)  # as `--set`: text, number, array
    inputs: Mapping[str, Any] = field(default_factory=dict)  # as `--input`: arrays
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    last: bool = False  # keep only the final state of every output
    every: int | None = None  # keep every K-th step of each `keep: all` output
    check: bool = False  # stop at the first non-finite value
    progress: Callable[[int, int], None] | None = None  # called as progress(done, steps)
    engine: str = "auto"  # "auto", "interp", "compiled" or "scan"
    seed: int | None = None  # the random calls' stream; None: the spec's `seed:` (0)
    scheduler: str | None = None  # a Dask cluster for the lanes: "tcp://host:8786", "local:N"
    lane_chunk: int | None = None  # lanes per task on the cluster; None: by the estimate
    store: str | Path | None = None  # a Zarr store to write while the run goes
    resume: str | Path | None = None  # a Zarr store to continue (`steps` more steps)
    force: bool = False  # replace what is at `store`


def load(path_or_text: str | Path, *, path: str | None = None) -> Spec:
    """Load and check a spec: a file path, or YAML text (anything with a newline).

    Raises:
        RecurError: the spec is malformed; `recur.render(err)` formats it.
    """
    with _uncollected():
        spec = load_spec(path_or_text, path=path)
        with sourced(spec):
            analyze_spec(spec)
    return spec


class NamedArrays(Mapping[str, numpy.ndarray]):
    """A mapping of NumPy arrays by name, in `arrays`' order: what `run` and `grad`
    return, with fields of their own."""

    arrays: dict[str, numpy.ndarray]

    def __getitem__(self, name: str) -> numpy.ndarray:
        return self.arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)


@dataclass(frozen=True)
class Result(NamedArrays):
    """The kept outputs by name (declaration order), and how the run ended."""

    arrays: dict[str, numpy.ndarray]
    keeps: dict[str, str]  # "all", "last", "last N" or "every K", for each output in `arrays`
    steps_run: int
    stopped_by: str  # "steps" or "until"
    params: dict[str, Any]
    steps: int  # the most steps the run could take
    device: str  # where it ran: "cpu" or "cuda"
    engine: str  # which ran it, as `engine=` names it: "interp", "compiled" or "scan"
    seed: int = 0  # the random calls' stream it used


def run(
    spec: Spec | str | Path,
    *,
    steps: int | None = None,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    device: str = "cpu",
    last: bool = False,
    every: int | None = None,
    check: bool = False,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "auto",
    seed: int | None = None,
    scheduler: str | None = None,
    lane_chunk: int | None = None,
    store: str | Path | None = None,
    resume: str | Path | None = None,
    force: bool = False,
) -> Result:
    """Run a spec and return its kept outputs as NumPy arrays.

    Args:
        spec: a loaded `Spec`, or what `load` takes.
        steps: overrides the spec's step count.
        params: overrides of params: an expression string (as `--set`), a number or an array.
        inputs: arrays for sequences and params (as `--input`).
        device: "cpu", "cuda" or "auto".
        last: keep only the final state of every output.
        every: keep the steps t with (t + 1) % every == 0 of every `keep: all` output.
        check: stop at the first non-finite value.
        progress: called as `progress(steps_done, steps)` every few thousand steps.
        engine: "auto", "interp", "compiled" or "scan" (see `recur.engine.registry`).
        seed: the stream of the random calls (an integer >= 0), instead of the spec's.
        scheduler: run the lanes on a Dask cluster (`recur[dask]`): "local:N" (N worker
            processes started and closed here) or a scheduler's "tcp://host:port".
            Bit for bit the result of a run here; `progress` then counts lanes. With
            `engine="scan"`, the steps of an affine recurrence in chunks instead, within
            the scan's tolerance (docs/cluster.md); `progress` counts steps.
        lane_chunk: lanes per task on the cluster (default: tasks of a second or more).
        store: write the kept outputs to this Zarr store (a new folder; `force` replaces
            one) while the run goes, in bounded memory; the result's arrays are the
            store's (Zarr arrays, read when indexed). With `scheduler`, the workers
            write it, each task its lanes.
        resume: continue the run of this Zarr store, `steps` more steps (default: up to
            the steps it was asked for), appending to it; the same spec, params and seed
            (in this process: not with `scheduler`).

    Raises:
        RecurError: a bad spec or argument (exit_code 2), or a failed evaluation (1).
    """
    if not isinstance(spec, Spec):
        spec = load(spec)
    if scheduler is not None:
        from recur.cluster import runner  # Dask only when a cluster is asked for
        from recur.cluster import stored as workers_store

        if resume is not None:
            raise UsageError(f"{option('scheduler')} with {option('resume')}: a store is "
                             "continued in one process",
                             notes=(f"leave out {option('scheduler')} to continue it",))
        cluster = runner.check(scheduler, lane_chunk, device, engine)
        if engine == "scan" and store is not None:
            raise UsageError(f"{option('engine', 'scan')} with {option('scheduler')} does "
                             f"not write a Zarr store ({option('store')})",
                             notes=(f"leave out {option('scheduler')} to write the store "
                                    "in one process, or write the result as .npy",))
    elif lane_chunk is not None:
        raise UsageError(f"{option('lane_chunk')} sizes the tasks of a cluster: it needs "
                         f"{option('scheduler')}")

    def compiled_for(steps: int | None, streaming: bool) -> Compiled:
        return prepare(spec, steps=steps, params=params, inputs=inputs, device=device,
                       last=last, every=every, check=check, seed=seed, streaming=streaming,
                       reuse=True)

    if resume is not None:
        if store is not None:
            raise UsageError(f"{option('store')} and {option('resume')} together: a "
                             "continuation appends to the store it continues")
        opened = RunStore.open(Path(resume), "r+")
        done, asked = int(opened.attrs["steps_run"]), int(opened.attrs["steps"])
        if opened.attrs["stopped_by"] == "until":
            raise UsageError(f"{resume}: the run stopped by 'until' after {done} steps; "
                             "there is nothing to continue")
        check_steps(steps)
        compiled = compiled_for(max(asked, done) if steps is None else done + steps, True)
        program = compiled.program
        storing.check_continuation(opened, spec.source, dict(program.params), program.seed,
                                   {o.name: o.keep for o in compiled.outputs
                                    if o.keep != "none"})
        with sourced(spec):
            stored = storing.resume_into(program, compiled.backend, opened,
                                         _attempt(engine), progress)
        outcome, engine_name = stored.outcome, stored.engine
    elif store is not None and scheduler is None:
        compiled = compiled_for(steps, True)
        program = compiled.program
        with sourced(spec):
            stored = storing.run_into(program, compiled.backend, Path(store), spec.source,
                                      [o.name for o in compiled.outputs if o.keep != "none"],
                                      _attempt(engine), progress, force)
        outcome, engine_name = stored.outcome, stored.engine
    else:
        compiled = compiled_for(steps, store is not None)
        program, backend = compiled.program, compiled.backend
        with sourced(spec):
            if scheduler is not None and engine == "scan":
                from recur.cluster import scan  # the steps of an affine run, in chunks

                outcome = scan.run_on_cluster(program, cluster, progress)
                engine_name = "scan"
            elif scheduler is not None:
                target = None if store is None else workers_store.Target(
                    Path(store), spec.source,
                    tuple(o.name for o in compiled.outputs if o.keep != "none"), force)
                choice = choose(program if target is None else workers_store.streamed(program),
                                engine)
                if engine == "auto":
                    note_interpreted(program, choice)
                outcome = runner.run_on_cluster(program, choice.engine, cluster, lane_chunk,
                                                progress, target)
                engine_name = choice.engine.name
            else:
                outcome, engine_name = execute(program, backend, engine, progress)
    arrays = outcome.arrays
    order = [o.name for o in compiled.outputs if o.name in arrays]
    return Result(
        {name: arrays[name] for name in order},
        {o.name: o.keep for o in compiled.outputs if o.name in arrays},
        outcome.steps_run,
        outcome.stopped_by,
        own_params(program),
        program.steps,
        program.device,
        engine_name,
        program.seed,
    )


def execute(program: Program, backend: Any, engine: str = "auto",
            progress: Callable[[int, int], None] | None = None) -> tuple[Outcome, str]:
    """One run of a program in this process on the engine asked for (`auto`: the
    cheapest), and the engine's name (see `_attempt`)."""
    return _attempt(engine)(program, lambda chosen: run_on(chosen, program, backend,
                                                           progress))


def _attempt(engine: str) -> Callable[[Program, Callable[[Engine], T]], tuple[T, str]]:
    """How a run is attempted: on the engine `engine` names (or `auto`'s choice) for the
    program given, and where it cannot compile or a kernel faults, on the interpreter
    (which reports a fault with its output, step and lane): the result, and which engine
    gave it."""
    def attempt(program: Program, run: Callable[[Engine], T]) -> tuple[T, str]:
        choice = choose(program, engine)
        if engine == "auto":
            note_interpreted(program, choice)
        try:
            return run(choice.engine), choice.engine.name
        except (CompileError, KernelFault) as error:
            if isinstance(error, CompileError):
                if engine != "auto":  # asked for by name: say so rather than run another
                    raise BackendError(f"{option('engine', engine)}: {error}",
                                       notes=(f"use {option('engine', 'interp')}",)) from None
                note(f"the {choice.engine.name} engine failed ({error}); the interpreter "
                     "runs the spec")
        # A kernel's fault: the interpreter replays the run from the start, on fresh
        # buffers, and reports it with its output, step and lane.
        interpreter = choose(program, "interp")
        return run(interpreter.engine), interpreter.engine.name

    return attempt


def run_with(spec: Spec | str | Path, options: RunOptions) -> Result:
    """`run` with its keyword arguments given as one `RunOptions`."""
    return run(spec, **_keywords(options))


@dataclass(frozen=True, slots=True)
class Report:
    """What `recur check` prints: outputs and the step count, when values are known."""

    steps: int | None
    outputs: tuple[OutputSummary, ...]
    needs_input: tuple[str, ...]  # names that must come from --input; shapes then unknown
    engine: str | None = None  # with `engine=True`: the engine `auto` takes on the CPU
    engine_reason: str | None = None


def check(spec: Spec | str | Path, *, engine: bool = False) -> Report:
    """Load and compile a spec without running it; with `engine`, also choose the engine
    (which generates the kernel's source: work a plain check does without)."""
    if not isinstance(spec, Spec):
        spec = load(spec)
    needs = tuple(v.name.name for v in (*spec.params, *spec.sequences) if v.value is None)
    if needs:
        return Report(None, (), needs)
    compiled = prepare(spec)
    steps = compiled.program.steps
    if not engine:
        return Report(steps, compiled.outputs, ())
    with sourced(spec):
        choice = choose(compiled.program)
    return Report(steps, compiled.outputs, (), choice.engine.name, choice.reason)


def prepare(
    spec: Spec,
    *,
    steps: int | None = None,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    device: str = "cpu",
    last: bool = False,
    every: int | None = None,
    check: bool = False,
    seed: int | None = None,
    streaming: bool = False,
    reuse: bool = False,
) -> Compiled:
    """Everything `run` does short of the loop: the program, shapes, dtypes, step count.

    Takes the arguments of `run`; `recur explain` prints what it returns. With
    `streaming` (a run written to a store) the outputs written block by block are left
    out of the memory needed. With `reuse` (what a run takes) the program holds only
    the rows of sequences the run reads, and one kept from an earlier run of the same
    kind is bound to these values without a probe step (`recur.compile.cache`).
    """
    check_steps(steps)
    check_seed(seed)
    check_every(every, last)
    overrides = overrides_of(spec, params or {})
    check_input_names(spec, inputs or {})
    backend = get_backend(device)
    host = backend if backend.name == "cpu" else NumpyBackend()
    with sourced(spec), _set_sourced(params or {}), _uncollected():
        compiled = compile_spec(
            spec, analyze_spec(spec), backend, host, steps=steps, overrides=overrides,
            inputs=inputs, last=last, every=every, check_finite=check,
            seed=None if seed is None else int(seed), reuse=reuse,
        )
        if compiled.program.steps == 0:
            _check_last_states(spec, compiled, last)
        check_outputs_fit({o.name: o.kept_bytes for o in compiled.outputs
                           if not (streaming and of_keep(o.keep).mode in ("all", "every"))},
                          backend)
    return compiled


def prepare_with(spec: Spec, options: RunOptions) -> Compiled:
    """`prepare` with the arguments of a `RunOptions` (those a run takes before its loop)."""
    keywords = _keywords(options)
    for loop_only in ("progress", "engine", "scheduler", "lane_chunk", "store", "resume",
                      "force"):  # what the loop takes
        del keywords[loop_only]
    keywords["streaming"] = options.store is not None or options.resume is not None
    return prepare(spec, **keywords)


def _keywords(options: RunOptions) -> dict[str, Any]:
    """The options as `run`'s keyword arguments (a field of `RunOptions` is one)."""
    return {entry.name: getattr(options, entry.name) for entry in fields(RunOptions)}


def _check_last_states(spec: Spec, compiled: Compiled, last: bool) -> None:
    """After 0 steps a kept-last output's state is its last initial state, kept only
    where a step reads it back: refuse the others before the run."""
    for summary in compiled.outputs:
        name = summary.name
        if summary.keep != "last" or compiled.analysis.depth(name) > 0:
            continue
        output = spec.output(name)
        why = "--last keeps" if last and output.keep == "all" else "'keep: last' keeps"
        cause = ("it has no 'initial'" if output.initial is None
                 else f"its 'initial' is kept only where a step reads {name}[t-k]")
        raise UsageError(
            f"output '{name}' has no state after 0 steps: {cause}", output.name.span,
            (f"{why} only its final state, and 0 steps compute none: run at least 1 step",),
        )


def check_steps(steps: int | None) -> None:
    """Refuse a step count no run can take (`--steps`, or `steps=` here) before anything
    is read or computed."""
    if steps is not None and steps < 0:
        raise UsageError(f"{option('steps')} must be >= 0, not {steps}")
    if steps is not None and steps > MAX_STEPS:
        raise UsageError(f"{option('steps', steps)} is more than any run can take; the limit is "
                         f"{MAX_STEPS:,} (10**15)")


def check_every(every: int | None, last: bool = False) -> None:
    """Refuse an `every` that is no step interval, or one beside `last`, which keeps
    the final states only."""
    if every is None:
        return
    if isinstance(every, bool) or not isinstance(every, int | numpy.integer) or every < 1:
        raise UsageError(f"{option('every')} must be an integer >= 1, not {every!r}")
    if last:
        raise UsageError(f"{option('every', every)} and {option('last', True)} together: "
                         "the first keeps every K-th step, the second the final state only")


def check_seed(seed: int | None) -> None:
    """Refuse a seed that is not a key of the random calls: 0 to 2**64 - 1."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int | numpy.integer):
        raise UsageError(f"{option('seed')} must be an integer >= 0, not {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{option('seed')} must be an integer from 0 to 2**64 - 1, "
                         f"not {seed}")


def overrides_of(spec: Spec, params: Mapping[str, Any]) -> dict[str, Any]:
    """`--set` values: expression strings are parsed and checked like the spec's own."""
    names = [p.name.name for p in spec.params]
    overrides: dict[str, Any] = {}
    for name, value in params.items():
        if name not in names:
            raise UsageError(
                f"{option_entry('params', name)}: the spec has no param '{name}'",
                notes=did_you_mean(name, names) or (f"params: {', '.join(names) or 'none'}",),
            )
        if isinstance(value, str):
            source = f"{name}={value}"
            try:
                node = parse_expression(value, Origin(option("params"), 1, len(name) + 2))
                earlier = frozenset(names[: names.index(name)])
                check_expression(node, Context(option_entry("params", name), earlier))
            except RecurError as err:
                err.source = source
                raise
            value = node
        overrides[name] = value
    return overrides


def check_input_names(spec: Spec, inputs: Iterable[str]) -> None:
    """Every `--input` name must be a sequence or a param of the spec."""
    names = [v.name.name for v in (*spec.params, *spec.sequences)]
    for name in inputs:
        if name not in names:
            raise UsageError(
                f"{option_entry('inputs', name)}: the spec has no sequence or param '{name}'",
                notes=did_you_mean(name, names),
            )


@contextlib.contextmanager
def _set_sourced(params: Mapping[str, Any]) -> Iterator[None]:
    """Attach its `NAME=EXPR` text to an error in evaluating a `--set` expression (the
    error names the param: `cannot evaluate --set NAME: ...`)."""
    try:
        yield
    except RecurError as error:
        if (error.source is None and error.span is not None
                and error.span.path == option("params")):
            texts = {name: f"{name}={value}" for name, value in params.items()
                     if isinstance(value, str)}
            named = [name for name in texts
                     if re.search(rf"{re.escape(option_entry('params', name))}(?!\w)",
                                  error.message)]
            if len(named or texts) == 1:
                error.source = texts[(named or list(texts))[0]]
        raise


@contextlib.contextmanager
def _uncollected() -> Iterator[None]:
    """Without the cycle collector: loading and compiling make many objects (a node, a
    span, a closure each) and free few, and its passes over them took as long as the work
    itself on a large spec. Freed objects still go at once; cycles wait till the end."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def sourced(spec: Spec) -> Iterator[None]:
    """Attach the spec's text to errors that point into it, so they render a caret."""
    try:
        yield
    except RecurError as error:
        if error.source is None and error.span is not None and error.span.path == spec.path:
            error.source = spec.source
        raise
