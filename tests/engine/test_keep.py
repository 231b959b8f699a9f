"""`keep: last N` and `keep: every K` (and `every=`/`--every`) on every engine, checked
against slicing the interpreter's `keep: all` result: the last N rows, or rows K-1,
2K-1, ...; memory counts only what is kept."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
from numpy.testing import assert_array_equal
from test_cuda import where  # noqa: F401 (the fixture: emulated CUDA, or a GPU)

import recur
from recur import api
from recur.diagnostics import RecurError, Unsupported
from recur.engine.c import engine as c_engine
from recur.engine.cuda.engine import ScanEngine
from recur.lang.keep import history_rows, kept_steps, parse, ring_size

# Lanes of a sweep, taps two back, a random call, an output of this step's value.
LANES = """\
params:
  r: linspace(3.5, 3.9, 5)
outputs:
  x:
    initial: [0.4, 0.5]
    step: r * x[t-1] * (1 - x[t-2]) * 0.98 + 0.01 * uniform()
    keep: KEEP
  y:
    step: 2 * x[t] - x[t-1]
    keep: KEEP
steps: 23
"""
# Single values (the C lane kernel): a tap 40 steps back (read from memory, not registers)
# and a normal draw.
DEEP = """\
outputs:
  x:
    initial: [1.0, 0.5]
    taps: [-1, -2]
    step: 0.5 * x[t-1] + 0.25 * x[t-2] + normal()
    keep: KEEP
  z:
    initial: 'linspace(0, 1, 40)'
    step: z[t-40] * 0.9 + x[t]
    keep: KEEP
steps: 57
"""
# Stopped early by `until`, walking a sequence backwards.
UNTIL = """\
reverse: true
sequences:
  s: arange(30) * 0.5
outputs:
  x:
    initial: 0.0
    step: x[t-1] + s[t]
    keep: KEEP
until: x[t] > 200
"""
# A matrix step: the CUDA kernel of its own (a block per rows of the state).
MATRIX = """\
params:
  W: reshape(linspace(-0.5, 0.5, 16), (4, 4))
outputs:
  h:
    initial: [0.1, 0.2, 0.3, 0.4]
    step: tanh(h[t-1] @ W + 0.1)
    keep: KEEP
steps: 19
"""
SPECS = {"lanes": LANES, "deep": DEEP, "until": UNTIL, "matrix": MATRIX}
KEEPS = ["last 4", "last 1", "last 100", "every 3", "every 1", "every 100"]


def expected(full: numpy.ndarray, keep: str) -> numpy.ndarray:
    """The slice of the whole trajectory a keep holds, by hand."""
    mode, n = parse(keep) or ("", 0)
    return full[-n:] if mode == "tail" else full[n - 1::n]


def check_against_full(text: str, keep: str, **kwargs: object) -> recur.Result:
    full = recur.run(text.replace("KEEP", "all"), engine="interp")
    kept = recur.run(text.replace("KEEP", keep), **kwargs)
    assert (kept.steps_run, kept.stopped_by) == (full.steps_run, full.stopped_by)
    assert list(kept) == list(full)
    for name in full:
        assert kept.keeps[name] == keep
        assert_array_equal(kept[name], expected(full[name], keep), strict=True, err_msg=name)
    return kept


@pytest.mark.parametrize("keep", KEEPS)
@pytest.mark.parametrize("name", ["lanes", "deep", "until"])
@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_a_keep_on_the_cpu_is_a_slice_of_keeping_all(name: str, keep: str, engine: str) -> None:
    if engine == "compiled" and not c_engine.native.available():
        pytest.skip("needs a C compiler")
    assert check_against_full(SPECS[name], keep, engine=engine).engine == engine


@pytest.mark.parametrize("keep", ["last 4", "last 100", "every 3", "every 100"])
@pytest.mark.parametrize("name", ["lanes", "deep", "until", "matrix"])
def test_a_keep_on_cuda_is_a_slice_of_keeping_all(
        name: str, keep: str, where: str) -> None:  # noqa: F811 (the fixture)
    # the matrix step: NumPy's product sums in BLAS's order, the kernel in index order; a
    # GPU's libm is not NumPy's
    if where == "gpu" or name == "matrix":
        full = recur.run(SPECS[name].replace("KEEP", "all"), device="cuda", engine="compiled")
        kept = recur.run(SPECS[name].replace("KEEP", keep), device="cuda", engine="compiled")
        for output in full:
            assert_array_equal(kept[output], expected(full[output], keep), strict=True)
        return
    kept = check_against_full(SPECS[name], keep, device="cuda", engine="compiled")
    assert (kept.device, kept.engine) == ("cuda", "compiled")


def test_the_scan_refuses_a_keep_it_cannot_hold_in_words() -> None:
    text = "outputs:\n  x:\n    initial: 1.0\n    step: 0.5 * x[t-1] + 1\n    keep: KEEP\n"
    scan = ScanEngine()
    for keep in ("last 3", "every 2"):
        program = api.prepare(recur.load(text.replace("KEEP", keep)), steps=10).program
        with pytest.raises(Unsupported, match=f"not 'keep: {keep}'"):
            scan.make(program)
    scan.make(api.prepare(recur.load(text.replace("KEEP", "all")), steps=10).program)


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_every_applies_to_the_outputs_that_keep_all(engine: str) -> None:
    text = LANES.replace("    keep: KEEP\n  y:", "    keep: last 2\n  y:").replace("KEEP", "all")
    full = recur.run(text, engine="interp")
    got = recur.run(text, every=4, engine=engine)
    assert got.keeps == {"x": "last 2", "y": "every 4"}
    assert_array_equal(got["x"], full["x"][-2:])
    assert_array_equal(got["y"], full["y"][3::4])


def test_keep_words_give_the_rows_and_steps_by_hand() -> None:
    for steps in (0, 1, 7, 12):
        for n in (1, 3, 20):
            assert list(kept_steps(f"last {n}", steps)) == list(range(steps))[-n:]
            assert list(kept_steps(f"every {n}", steps)) == [
                t for t in range(steps) if (t + 1) % n == 0]
            for keep in (f"last {n}", f"every {n}", "all"):
                for first in (0, 2, 5):
                    assert list(kept_steps(keep, steps, first)) == [
                        t for t in kept_steps(keep, steps) if t >= first]
    assert history_rows("all", 2, 10) == 12
    assert history_rows("last 5", 2, 10) == 8  # rings have 2**k rows
    assert history_rows("last 1", 2, 10) == 4  # the taps' ring: 3 rows, made 4
    assert history_rows("every 3", 2, 10) == 4 + 3
    assert [ring_size(rows) for rows in (1, 2, 3, 4, 5, 1000)] == [1, 2, 4, 4, 8, 1024]


def test_memory_counts_only_what_is_kept() -> None:
    text = ("outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n    keep: KEEP\n"
            "steps: 10**13\n")
    with pytest.raises(RecurError, match=r"outputs need 80\.0 TB"):
        recur.run(text.replace("KEEP", "all"))
    summary = api.prepare(recur.load(text.replace("KEEP", "last 1000"))).outputs[0]
    assert summary.kept_bytes == 1024 * 8  # the ring's 2**10 rows
    summary = api.prepare(recur.load(text.replace("KEEP", "every 1000000"))).outputs[0]
    assert summary.kept_bytes == (2 + 10**7) * 8


@pytest.mark.parametrize(("keep", "message"), [
    ("last 0", "keep 'last 0' needs a whole number >= 1 after 'last'"),
    ("every -2", "keep 'every -2' needs a whole number >= 1 after 'every'"),
    ("every", "keep 'every' needs a whole number >= 1"),
    ("sometimes", "unknown keep 'sometimes'"),
])
def test_a_bad_keep_is_an_error_at_its_place(keep: str, message: str) -> None:
    with pytest.raises(RecurError) as caught:
        recur.load(UNTIL.replace("KEEP", keep))
    error = caught.value
    assert message in error.message
    assert error.span is not None and (error.span.line, error.span.col) == (8, 11)
    assert error.exit_code == 2


@pytest.mark.parametrize(("every", "last", "message"), [
    (0, False, "every must be an integer >= 1, not 0"),
    (2, True, "every=2 and last=True together"),
])
def test_a_bad_every_is_refused(every: int, last: bool, message: str) -> None:
    with pytest.raises(RecurError, match=message):
        recur.run(UNTIL.replace("KEEP", "all"), every=every, last=last)


def test_explain_check_and_meta_show_the_keep(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from recur.cli.main import cli

    spec = tmp_path / "spec.yaml"
    spec.write_text(UNTIL.replace("KEEP", "last 5"))
    runner = CliRunner()
    shown = runner.invoke(cli, ["explain", str(spec)])
    assert shown.exit_code == 0 and "keep last 5 (64 B)" in shown.output, shown.output
    checked = runner.invoke(cli, ["check", str(spec)])
    assert "keep last 5" in checked.output
    ran = runner.invoke(cli, ["run", str(spec), "--meta", str(tmp_path / "m.json"), "-o",
                              str(tmp_path / "x.npy")])
    assert ran.exit_code == 0
    assert '"keep": "last 5"' in (tmp_path / "m.json").read_text()
    spec.write_text(LANES.replace("KEEP", "all", 1).replace("KEEP", "every 2"))
    mixed = runner.invoke(cli, ["run", str(spec)])
    assert mixed.exit_code == 2
    assert "cannot mix outputs kept 'all' (x) and 'every 2' (y) in one CSV" in mixed.output
