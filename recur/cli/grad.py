"""`recur grad`: the gradient of an output's sum by params, sequences and initial states
(`recur.gradients`), written as `recur run` writes results."""

from __future__ import annotations

import click

from recur import gradients
from recur.cli.meta import write_gradient_meta
from recur.cli.options import (
    RunFlags,
    call_with_progress,
    output_options,
    request_from_options,
    run_options,
)
from recur.diagnostics import UsageError
from recur.io import OutputArray, check_replaceable, resolve_format, write_outputs


@click.command(name="grad")
@run_options
@click.option("--of", "of", required=True, metavar="NAME",
              help="The objective: the sum of this output as a run writes it.")
@click.option("--wrt", "wrt", multiple=True, metavar="NAME",
              help="A param, sequence or output (its initial) to differentiate by "
                   "(repeatable; default: every float param).")
@click.option("--truncate", type=int, default=-1, show_default=True, metavar="K",
              help="Back-propagate through the last K steps only (Theano's "
                   "truncate_gradient; -1: all).")
@click.option("--checkpoints", type=int, metavar="N",
              help="Keep N snapshots of the forward states and run the segments between "
                   "them again (default: only where keeping them all takes too much "
                   "memory).")
@output_options("Also write a JSON sidecar, with the objective's value and where the "
                "forward states were kept.")
def grad(flags: RunFlags, of: str, wrt: tuple[str, ...], truncate: int,
         checkpoints: int | None, out: str | None, fmt: str | None, meta: str | None,
         force: bool) -> None:
    """Differentiate an output's sum by params, sequences, initials.

    J is the sum of output --of as `recur run` writes it; one gradient per --wrt,
    shaped as the value was given, by back-propagation through the steps run.

    \b
    Example:
      recur grad specs/taylor_exp.yaml --of exp_sum --wrt x
      recur grad specs/rnn.yaml --of h --wrt W --wrt b -o grads.npz
      recur grad specs/fit_decay.yaml --of loss --truncate 10
    """
    if flags.selected:
        raise UsageError("--output does not apply to recur grad: name the values with --wrt")
    if flags.scheduler is not None or flags.lane_chunk is not None:
        raise UsageError("recur grad runs in this process: --scheduler and --lane-chunk "
                         "are for recur run")
    request = request_from_options(flags, hash_inputs=meta is not None)
    resolve_format(out, fmt)
    for path in (None if out == "-" else out, meta):
        if path is not None:
            check_replaceable(path, force)
    options = request.options
    result, elapsed = call_with_progress(flags, lambda bar: gradients.grad(
        request.spec, of=of, wrt=list(wrt) or None, truncate=truncate,
        checkpoints=checkpoints, steps=options.steps,
        params=options.params, inputs=options.inputs, device=options.device,
        last=options.last, check=options.check, progress=bar, engine=options.engine,
        seed=options.seed))
    sequences = {s.name.name for s in request.spec.sequences}
    columns = [OutputArray(name, array, name in sequences) for name, array in result.items()]
    write_outputs(columns, out, fmt, force=force)
    if meta is not None:
        write_gradient_meta(meta, request, result, elapsed, force=force)
