"""`recur plot`: run a spec with the run options, then draw it (`recur.report.plot`)."""

from __future__ import annotations

import click

from recur.cli.options import RunFlags, run_from_options, run_options
from recur.diagnostics import UsageError
from recur.io import check_replaceable
from recur.io.zarr_store import is_store
from recur.report.plot import (
    STYLES,
    check_phase,
    check_writable,
    figure_format,
    make_figure,
    parse_phase,
    require_matplotlib,
    write_figure,
)
from recur.report.stored import read_run
from recur.spec import Spec


@click.command()
@run_options
@click.option("-o", "--out", "out", required=True, metavar="PATH",
              help="The figure to write: .png, .pdf or .svg.")
@click.option("--force", is_flag=True,
              help="Replace an -o file this user may not write (a read-only one).")
@click.option("--phase", metavar="X,Y",
              help="Plot output Y against output X (a phase portrait); both kept 'all', "
                   "scalar or with the same lanes.")
@click.option("--style", type=click.Choice(STYLES), default="auto", show_default=True,
              help="Lines over t and phase portraits: points, lines, or auto: points "
                   "when consecutive states are far apart (a map), else lines.")
@click.option("--title", metavar="TEXT",
              help="The figure's title (default: the first line of the spec's description).")
def plot(flags: RunFlags, out: str, phase: str | None, style: str, title: str | None,
         force: bool) -> None:
    """Run a spec and plot its outputs to a .png, .pdf or .svg file.

    Each kept output gets its own axes, stacked and sharing t. Lanes swept by a 1-D
    param (r in the logistic sweep) are drawn against that param over the last half
    of the steps: a bifurcation diagram. Other lanes are lines (points for a map), or
    an image (t vs lane) when there are many; a 2-D grid of lanes is an image on the
    values of the params that make it; a final state (--last, keep: last) is a
    marker, bars or an image. Needs matplotlib: pip install 'recur[plot]'.

    \b
    Example:
      recur plot specs/logistic_sweep.yaml -o bifurcation.png
      recur plot specs/lotka_volterra.yaml --phase prey,pred -o orbit.svg
      recur plot docs/examples/mandelbrot.yaml -o mandelbrot.png
      recur plot specs/fibonacci.yaml --steps 30 -o fib.pdf --title Fibonacci
      recur plot sweep.zarr -o bifurcation.png

    SPEC may be a Zarr store a run wrote (-o run.zarr): its outputs are drawn from it,
    every K-th step of those too long to draw, and no run option but --output applies.
    """
    require_matplotlib()
    fmt = figure_format(out)
    pair = parse_phase(phase) if phase is not None else None
    if is_store(flags.spec):  # a run already made: draw what its store holds
        _no_run_options(flags)
        check_writable(out)
        check_replaceable(out, force)
        stored = read_run(flags.spec, flags.selected)
        if pair is not None:
            check_phase(stored.spec, pair)
        write_figure(make_figure(stored, phase=pair, title=title, style=style), out, fmt,
                     force=force)
        return

    def before_run(spec: Spec) -> None:  # everything that can fail before a long run
        check_writable(out)
        check_replaceable(out, force)
        if pair is not None:
            check_phase(spec, pair, last=flags.last)

    ran = run_from_options(flags, before_run)
    figure = make_figure(ran, phase=pair, title=title, style=style)
    write_figure(figure, out, fmt, force=force)


def _no_run_options(flags: RunFlags) -> None:
    """A store holds a run already made: options that would change the run are refused."""
    given = [flag for flag, value in (
        ("--steps", flags.steps is not None), ("--set", bool(flags.sets)),
        ("--input", bool(flags.inputs)), ("--last", flags.last),
        ("--every", flags.every is not None), ("--device", flags.device != "cpu"),
        ("--engine", flags.engine != "auto"), ("--seed", flags.seed is not None),
        ("--check", flags.check_finite)) if value]
    if given:
        raise UsageError(f"{given[0]}: {flags.spec} is a store, a run already made; only "
                         "--output chooses what to draw from it")
