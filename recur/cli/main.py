"""The `recur` command: options in, library calls, results and diagnostics out.

No numerics here. Every `RecurError` becomes one rendered message on stderr and its
exit status, and so does a `MemoryError` (a run that does not fit, exit 1); click's own
usage errors are reworded to `recur: error: ...`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from recur import api
from recur.cli.grad import grad
from recur.cli.meta import write_meta
from recur.cli.options import (
    RunFlags,
    output_options,
    request_from_options,
    run_from_options,
    run_options,
)
from recur.cli.plot import plot
from recur.diagnostics import EXIT_USAGE, RecurError, UsageError, flag_words, render
from recur.engine.memory import out_of_memory
from recur.gradients import plan_gradient
from recur.io import OutputArray, check_replaceable, resolve_format, write_outputs
from recur.io.formats import FORMATS
from recur.io.outputs import discard_output
from recur.io.zarr_store import is_store
from recur.lang.keep import per_step
from recur.report.diff import diff
from recur.report.explain import explain

EXIT_PIPE_CLOSED = 1


class _Interrupted(Exception):
    """Ctrl-C, carried past click's `main`, which prints an empty line for KeyboardInterrupt."""


class _PipeClosed(Exception):
    """The reader of standard output left, carried past click's `main`, which would end
    the run its own way (status 1, with its own wrappers around the standard streams)."""


@contextmanager
def _carried() -> Iterator[None]:
    """Every command's messages name options by their flags, and its errors leave as
    recur's own."""
    with flag_words():
        try:
            yield
        except KeyboardInterrupt:
            raise _Interrupted from None
        except BrokenPipeError:
            raise _PipeClosed from None
        except MemoryError as exc:  # one the memory check could not foresee, run or write
            raise out_of_memory(exc) from None


class _RecurGroup(click.Group):
    """A group whose errors all look like recur's: one message, the right exit status.

    Ctrl-C leaves as KeyboardInterrupt, for the entry point (`recur/__main__.py`) to
    report as it does one that comes while recur is still being imported.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _carried():  # --help and --version write while the options are parsed
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _carried():
            return super().invoke(ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        kwargs.setdefault("prog_name", "recur")
        try:
            code = super().main(*args, **kwargs)
        except RecurError as error:
            click.echo(render(error), err=True)
            sys.exit(error.exit_code)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help() if error.ctx else str(error), err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as error:
            click.echo(f"recur: error: {error.format_message()}", err=True)
            if isinstance(error, click.UsageError) and error.ctx is not None:
                click.echo(f"note: see '{error.ctx.command_path} --help'", err=True)
            sys.exit(error.exit_code)
        except _PipeClosed:
            sys.exit(_pipe_closed())
        except (click.Abort, _Interrupted):
            raise KeyboardInterrupt from None
        sys.exit(_flushed(code if isinstance(code, int) else 0))


def _flushed(code: int) -> int:
    """The exit status once standard output is flushed: what is still buffered could
    otherwise find the pipe closed only at exit, and fail there with a traceback."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        return _pipe_closed() if code == 0 else code
    return code


def _pipe_closed() -> int:
    """A closed pipe ends recur with status 1 and no message, whichever write found it."""
    if sys.stdout is not None:
        discard_output(sys.stdout)
    return EXIT_PIPE_CLOSED


@click.group(cls=_RecurGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recur", prog_name="recur")
def cli() -> None:
    """Evaluate recurrences written as YAML specs (Theano's scan, from a shell).

    \b
    Example:
      recur run specs/fibonacci.yaml --steps 10
    """


@cli.command()
@run_options
@output_options("Also write a JSON sidecar: version, spec and input hashes, params, steps, "
                "timing.", formats=[*FORMATS, "zarr"])
@click.option("--resume", "resume", metavar="STORE",
              help="Continue the run of a Zarr store: --steps N more steps (default: the "
                   "steps it was asked for), appended to it.")
def run(flags: RunFlags, out: str | None, fmt: str | None, meta: str | None,
        force: bool, resume: str | None) -> None:
    """Run a spec and write its outputs.

    \b
    Example:
      recur run specs/fibonacci.yaml --steps 10
      recur run specs/logistic_sweep.yaml -o sweep.npy
      recur run a.yaml -o - -f npy | recur run b.yaml --input s=-
      recur run specs/newton_sqrt.yaml --meta run.json
      recur run specs/logistic_sweep.yaml --steps 1000000 -o sweep.zarr
      recur run specs/logistic_sweep.yaml --resume sweep.zarr --steps 1000000
    """
    store = _store_path(out, fmt, resume)

    def before_run(spec: api.Spec) -> None:  # a bad -o is an error before a long run
        if store is None and resume is None:
            resolve_format(out, fmt)
        for path in (None if out == "-" or store is not None else out, meta):
            if path is not None:
                check_replaceable(path, force)

    ran = run_from_options(flags, before_run, hash_inputs=meta is not None, store=store,
                           resume=resume, force=force)
    if store is None and resume is None:  # a store was written while the run went
        columns = [OutputArray(name, ran.result[name], per_step(ran.result.keeps[name]),
                               ran.result.keeps[name]) for name in ran.names]
        write_outputs(columns, out, fmt, force=force)
    if meta is not None:
        write_meta(meta, ran, force=force)


def _store_path(out: str | None, fmt: str | None, resume: str | None) -> str | None:
    """The Zarr store `-o` names (`-f zarr`, or a .zarr path), if it names one."""
    if resume is not None:
        if out is not None or fmt is not None:
            raise UsageError("--resume appends to the store it continues: no -o or --format")
        return None
    if fmt == "zarr" or (fmt is None and out not in (None, "-") and is_store(out)):
        if out in (None, "-"):
            raise UsageError("a Zarr store is a folder, not a stream: give its path with "
                             "-o PATH.zarr")
        return out
    return None


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-v", "--verbose", is_flag=True,
              help="Also say which engine a run on the CPU would take, and why.")
def check(specs: tuple[str, ...], verbose: bool) -> None:
    """Load and compile specs without running them; print what each would compute.

    \b
    Example:
      recur check specs/*.yaml
    """
    for path in specs:
        spec = api.load(path)
        report = api.check(spec, engine=verbose)
        click.echo(f"{path}: ok" + (f": {spec.description.splitlines()[0]}"
                                     if spec.description else ""))
        if report.needs_input:
            click.echo(f"  needs --input for: {', '.join(report.needs_input)}")
        else:
            click.echo(f"  steps: {report.steps}")
        for output in report.outputs:
            taps = f"taps {list(output.taps)}" if output.taps else "no taps"
            click.echo(f"  {output.name}: {output.dtype}, state {output.shape}, {taps}, "
                       f"keep {output.keep}")
        if report.engine is not None:
            click.echo(f"  engine: {report.engine}, because {report.engine_reason}")


@cli.command(name="explain")
@run_options
@click.option("--of", "of", metavar="NAME",
              help="Also say how `recur grad --of NAME` would keep the forward states.")
@click.option("--wrt", "wrt", multiple=True, metavar="NAME", help="As `recur grad --wrt`.")
@click.option("--truncate", type=int, default=-1, show_default=True, metavar="K",
              help="As `recur grad --truncate`.")
@click.option("--checkpoints", type=int, metavar="N", help="As `recur grad --checkpoints`.")
def explain_command(flags: RunFlags, of: str | None, wrt: tuple[str, ...], truncate: int,
                    checkpoints: int | None) -> None:
    """Show what a run would do: order, taps, shapes, dtypes, steps, memory, engine.

    Takes the options of `run`, and compiles without running; with --of, also what
    `recur grad` would keep of the forward states for its backward pass, and how much.

    \b
    Example:
      recur explain specs/taylor_exp.yaml --set x=2
      recur explain specs/rnn.yaml --of h --wrt W
    """
    request = request_from_options(flags)
    compiled = api.prepare_with(request.spec, request.options)
    text = explain(request.spec, compiled, request.options.engine)
    if of is not None:
        gradient = plan_gradient(request.spec, compiled, of=of, wrt=list(wrt) or None,
                                 truncate=truncate, checkpoints=checkpoints)
        text = "\n".join([text, *gradient.lines()])
    elif wrt or checkpoints is not None or truncate != -1:
        raise UsageError("--wrt, --truncate and --checkpoints describe a gradient: give "
                         "--of NAME too")
    click.echo(text)


cli.add_command(grad)
cli.add_command(plot)
cli.add_command(diff)


def main() -> None:
    """Run the command line and exit with its status; Ctrl-C leaves as KeyboardInterrupt,
    for the entry point, `recur/__main__.py`."""
    cli()
