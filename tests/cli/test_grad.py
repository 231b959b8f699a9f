"""`recur grad` on the command line: what it writes, its sidecar, and its refusals.
The numbers themselves are checked against independent computations in
tests/compile/test_backward.py; here, that the command gives the library's."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy
import pytest
from click.testing import CliRunner
from numpy.testing import assert_array_equal

import recur
from recur.cli.main import cli

SPECS = Path(__file__).resolve().parents[2] / "specs"
TAYLOR = str(SPECS / "taylor_exp.yaml")
RNN = str(SPECS / "rnn.yaml")


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def test_the_taylor_series_derivative_is_the_series_one_term_shorter() -> None:
    """d/dx of sum_{k<15} x^k/k! is sum_{k<14} x^k/k!: e, less the terms from 1/14!."""
    result = invoke("grad", TAYLOR, "--of", "exp_sum", "--wrt", "x")
    assert result.exit_code == 0, result.output
    header, value = result.stdout.splitlines()
    assert header == "x"
    assert math.isclose(float(value), sum(1 / math.factorial(k) for k in range(14)),
                        rel_tol=1e-15)


def test_npz_holds_one_array_per_wrt_in_order_shaped_as_given(tmp_path: Path) -> None:
    out = tmp_path / "g.npz"
    result = invoke("grad", RNN, "--of", "h", "--wrt", "W", "--wrt", "x", "--wrt", "h",
                    "-o", str(out))
    assert result.exit_code == 0, result.output
    library = recur.grad(RNN, of="h", wrt=["W", "x", "h"])
    with numpy.load(out) as arrays:
        assert list(arrays) == ["W", "x", "h"]
        assert [arrays[name].shape for name in arrays] == [(3, 3), (40,), (3,)]
        for name in arrays:
            assert_array_equal(arrays[name], library[name])


def test_default_wrt_is_every_float_param_and_npy_to_stdout() -> None:
    result = invoke("grad", TAYLOR, "--of", "exp_sum", "-f", "npy", "--wrt", "x")
    assert result.exit_code == 0
    assert numpy.load(io.BytesIO(result.stdout_bytes)).shape == ()
    every = invoke("grad", TAYLOR, "--of", "exp_sum")
    assert every.exit_code == 0
    assert every.stdout.splitlines()[0] == "x"  # n is an integer param: not differentiated


def test_meta_records_the_objective(tmp_path: Path) -> None:
    meta = tmp_path / "g.json"
    result = invoke("grad", TAYLOR, "--of", "exp_sum", "--wrt", "x", "--truncate", "5",
                    "--meta", str(meta), "-o", str(tmp_path / "g.csv"))
    assert result.exit_code == 0, result.output
    sidecar = json.loads(meta.read_text())
    run = recur.run(TAYLOR)
    assert sidecar["objective"] == {"of": "exp_sum", "value": float(run["exp_sum"]),
                                    "truncate": 5}
    assert sidecar["gradients"] == {"x": {"dtype": "float64", "shape": []}}
    assert sidecar["steps_run"] == 14
    assert sidecar["forward_states"]["checkpointed"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["--of", "exp_su"], "--of exp_su: the spec has no output 'exp_su'"),
    (["--of", "power"], "'keep: none'"),
    (["--of", "exp_sum", "--wrt", "n"], "--wrt n: 'n' is int64"),
    (["--of", "exp_sum", "--wrt", "y"], "--wrt y: the spec has no param"),
    (["--of", "exp_sum", "--truncate", "-3"], "--truncate must be -1"),
    (["--of", "exp_sum", "--output", "x"], "--output does not apply"),
    (["--of", "exp_sum", "--scheduler", "local:2"], "recur grad runs in this process"),
])
def test_bad_requests_exit_2_with_one_message(args: list[str], message: str,
                                              tmp_path: Path) -> None:
    out = tmp_path / "g.npz"
    result = invoke("grad", TAYLOR, *args, "-o", str(out))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_did_you_mean_for_a_misspelt_output() -> None:
    result = invoke("grad", TAYLOR, "--of", "exp_sun")
    assert result.exit_code == 2 and "did you mean 'exp_sum'?" in result.stderr


def test_explain_of_prints_the_memory_plan() -> None:
    stored = invoke("explain", RNN, "--of", "h", "--wrt", "W")
    assert stored.exit_code == 0, stored.output
    assert stored.stdout.splitlines()[-2:] == [
        "gradient of sum(h) by W, through all steps:",
        "  forward states: stored whole: 5.8 KB for 40 steps, each forward step run once"]
    snapshots = invoke("explain", RNN, "--of", "h", "--checkpoints", "4", "--truncate", "9")
    assert snapshots.stdout.splitlines()[-2:] == [
        "gradient of sum(h) by W, v, b, through the last 9:",
        "  forward states: checkpointed: 4 snapshots of 24 B, segments of 10 steps run "
        "again (1.5 KB in all): each forward step runs twice"]
    alone = invoke("explain", RNN, "--wrt", "W")
    assert alone.exit_code == 2 and "give --of NAME too" in alone.stderr


def test_a_step_with_no_gradient_rule_yet_is_refused_at_its_place(tmp_path: Path) -> None:
    spec = tmp_path / "indexed.yaml"
    spec.write_text("params:\n  a: 0.5\noutputs:\n  x:\n    initial: [1.0, 2.0]\n"
                    "    step: a * x[t-1] + norm(x[t-1], axis=0)\nsteps: 3\n")
    result = invoke("grad", str(spec), "--of", "x")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{spec}:6:24: error: no gradient through norm() along an axis yet\n"
        "        step: a * x[t-1] + norm(x[t-1], axis=0)\n"
        "                           ^~~~~~~~~~~~~~~~~~~~\n")
