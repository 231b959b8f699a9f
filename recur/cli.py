"""The `recur` command: options in, library calls, results and diagnostics out.

No numerics here. Every `RecurError` becomes one rendered message on stderr and its
exit status; click's own usage errors are reworded to `recur: error: ...`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from recur import api
from recur.diagnostics import EXIT_USAGE, RecurError, UsageError, did_you_mean, render
from recur.engine.backend import DEVICES
from recur.io import OutputArray, read_input, resolve_format, write_outputs

EXIT_INTERRUPTED = 130


class _RecurGroup(click.Group):
    """A group whose errors all look like recur's: one message, the right exit status."""

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
        except (KeyboardInterrupt, click.Abort):
            click.echo("recur: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_RecurGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recur", prog_name="recur")
def cli() -> None:
    """Evaluate recurrences written as YAML specs (Theano's scan, from a shell).

    \b
    Example:
      recur run specs/fibonacci.yaml --steps 10
    """


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-s", "--steps", type=int, help="Number of steps (overrides the spec).")
@click.option("--set", "sets", multiple=True, metavar="NAME=EXPR",
              help="Override a param with an expression over earlier params.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=PATH",
              help="A sequence or param from .npy/.npz/.csv, or - for standard input.")
@click.option("-o", "--out", "out", metavar="PATH", help="Write here (- or none: stdout).")
@click.option("-f", "--format", "fmt", type=click.Choice(["npy", "npz", "csv"]),
              help="Output format (default: from the suffix, else csv).")
@click.option("--output", "selected", multiple=True, metavar="NAME",
              help="Write only these outputs, in this order.")
@click.option("--last", is_flag=True, help="Keep only the final state of every output.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="Where to run: NumPy (cpu) or CuPy (cuda).")
@click.option("--check", "check_finite", is_flag=True,
              help="Stop at the first non-finite value (exit 1).")
def run(spec: str, steps: int | None, sets: tuple[str, ...], inputs: tuple[str, ...],
        out: str | None, fmt: str | None, selected: tuple[str, ...], last: bool, device: str,
        check_finite: bool) -> None:
    """Run a spec and write its outputs.

    \b
    Example:
      recur run specs/fibonacci.yaml --steps 10
      recur run specs/logistic_sweep.yaml -o sweep.npy
      recur run a.yaml -o - -f npy | recur run b.yaml --input s=-
    """
    loaded = api.load(spec)
    resolve_format(out, fmt)  # a bad suffix is an error before a long run, not after
    names = _selected_outputs(loaded, selected)
    input_paths = _input_pairs(inputs)
    api.check_input_names(loaded, [name for name, _ in input_paths])
    result = api.run(
        loaded, steps=steps, params=dict(_pairs(sets, "--set")),
        inputs={name: read_input(name, path) for name, path in input_paths},
        device=device, last=last, check=check_finite,
    )
    columns = [OutputArray(name, result[name], result.keeps[name] == "all") for name in names
               if name in result]
    write_outputs(columns, out, fmt)


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check(specs: tuple[str, ...]) -> None:
    """Load and compile specs without running them; print what each would compute.

    \b
    Example:
      recur check specs/*.yaml
    """
    for path in specs:
        spec = api.load(path)
        report = api.check(spec)
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


def main() -> None:
    """The console script's entry point."""
    cli()
