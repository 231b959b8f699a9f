"""Zarr stores written while the run goes (`store=`, `-o run.zarr`) and continued
(`resume=`, `--resume`): the arrays, dimensions and attributes, every keep, small blocks
on every engine, continuations and kills (SIGKILL) against one run in memory, and the
errors."""

from __future__ import annotations

import builtins
import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner
from numpy.testing import assert_array_equal
from test_cuda import where  # noqa: F401 (the fixture: emulated CUDA, or a GPU)

import recur
from recur.cli.main import cli
from recur.diagnostics import RecurError
from recur.engine import stream

zarr = pytest.importorskip("zarr")

# Lanes, taps two back, a random draw, every keep a store holds, an output kept 'none'.
SPEC = """\
params:
  r: linspace(2.5, 3.2, 6)
outputs:
  x:
    initial: [0.4, 0.5]
    step: 0.8 * r * x[t-1] * (1 - x[t-1]) + 0.1 * x[t-2] + 0.01 * uniform()
  y:
    step: 2 * x[t] - x[t-1]
    keep: every 3
  z:
    initial: 0.0
    step: z[t-1] + x[t] + normal(0, 0.1)
    keep: last 4
  w:
    initial: 0
    dtype: int64
    step: w[t-1] + 1
    keep: last
  hidden:
    initial: [0.0, 0.0, 0.0]
    step: hidden[t-3] * 0.5 + y[t]
    keep: none
  v:
    step: hidden[t] + z[t]
steps: 100
"""
# Single values with a tap 40 steps back (the C lane kernel reads it from memory).
DEEP = """\
outputs:
  x:
    initial: [1.0, 0.5]
    step: 0.5 * x[t-1] + 0.25 * x[t-2] + normal()
  z:
    initial: 'linspace(0, 1, 40)'
    step: z[t-40] * 0.9 + x[t]
    keep: every 7
steps: 150
"""


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few steps, so that a short run writes many chunks."""
    monkeypatch.setattr(stream, "BLOCK_BYTES", 1500)


def same(result: recur.Result, reference: recur.Result) -> None:
    assert list(result) == list(reference)
    assert (result.steps_run, result.stopped_by) == (reference.steps_run, reference.stopped_by)
    for name in reference:
        assert_array_equal(numpy.asarray(result[name][...]), reference[name], strict=True,
                           err_msg=name)


@pytest.mark.parametrize("engine", ["interp", "compiled"])
@pytest.mark.parametrize("text", [SPEC, DEEP], ids=["lanes", "deep"])
def test_a_store_holds_the_run_in_memory_bit_for_bit(tmp_path: Path, engine: str,
                                                     text: str) -> None:
    stored = recur.run(text, store=tmp_path / "run.zarr", engine=engine)
    assert stored.engine == engine
    same(stored, recur.run(text, engine="interp"))


def test_a_store_on_cuda_holds_the_cpus_run(tmp_path: Path, where: str) -> None:  # noqa: F811
    stored = recur.run(DEEP, store=tmp_path / "run.zarr", device="cuda", engine="compiled")
    reference = recur.run(DEEP, device="cuda", engine="compiled")
    same(stored, reference)
    if where == "emulated":
        same(stored, recur.run(DEEP, engine="interp"))
    path = tmp_path / "part.zarr"
    recur.run(DEEP, store=path, steps=61, device="cuda", engine="compiled")
    same(recur.run(DEEP, resume=path, device="cuda", engine="compiled", steps=89), reference)


def test_the_arrays_dimensions_and_attributes(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    recur.run(SPEC, store=path, seed=7, params={"r": "linspace(2.6, 3.1, 6)"})
    group = zarr.open_group(str(path), mode="r")
    assert sorted(group.array_keys()) == ["v", "w", "x", "y", "z"]
    assert group["x"].shape == (100, 6) and group["y"].shape == (33, 6)
    assert group["z"].shape == (4, 6) and group["w"].shape == ()
    assert group["x"].metadata.dimension_names == ("step", "lane")
    assert group["y"].metadata.dimension_names == ("step_every_3", "lane")
    assert group["z"].metadata.dimension_names == ("step_last_4", "lane")
    assert group["w"].metadata.dimension_names is None  # a scalar's final state
    assert group["x"].chunks[0] < 100  # chunked along steps: one block a chunk
    attrs = dict(group.attrs)
    assert attrs["spec"] == SPEC
    assert attrs["spec_sha256"] == hashlib.sha256(SPEC.encode()).hexdigest()
    assert attrs["seed"] == 7 and attrs["steps"] == 100 and attrs["steps_run"] == 100
    assert attrs["stopped_by"] == "steps"
    assert attrs["params"]["r"] == numpy.linspace(2.6, 3.1, 6).tolist()
    assert attrs["recur_version"] == recur.__version__
    assert attrs["keeps"] == {"x": "all", "y": "every 3", "z": "last 4", "w": "last",
                              "v": "all"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_xarray_opens_a_store_with_named_dimensions(tmp_path: Path) -> None:
    xarray = pytest.importorskip("xarray")
    recur.run(SPEC, store=tmp_path / "run.zarr")
    opened = xarray.open_zarr(tmp_path / "run.zarr", consolidated=False)
    assert opened["x"].dims == ("step", "lane")
    assert opened["y"].dims == ("step_every_3", "lane")
    assert opened.sizes == {"step": 100, "lane": 6, "step_every_3": 33, "step_last_4": 4}
    assert_array_equal(opened["x"].values, recur.run(SPEC)["x"])
    assert opened.attrs["steps_run"] == 100


def test_until_stops_a_stored_run_inside_a_block(tmp_path: Path) -> None:
    text = SPEC.replace("steps: 100", "until: w[t] >= 37\nsteps: 100")
    stored = recur.run(text, store=tmp_path / "run.zarr")
    assert (stored.steps_run, stored.stopped_by) == (37, "until")
    same(stored, recur.run(text))
    with pytest.raises(RecurError, match="stopped by 'until' after 37 steps"):
        recur.run(text, resume=tmp_path / "run.zarr", steps=5)


@pytest.mark.parametrize("engine", ["interp", "compiled"])
@pytest.mark.parametrize("text", [SPEC, DEEP], ids=["lanes", "deep"])
@pytest.mark.parametrize("first", [1, 41])
def test_a_continuation_is_the_run_in_one_go(tmp_path: Path, engine: str, text: str,
                                             first: int) -> None:
    path = tmp_path / "run.zarr"
    recur.run(text, store=path, steps=first, engine=engine)
    middle = recur.run(text, resume=path, steps=30, engine=engine)
    assert middle.steps_run == first + 30
    same(middle, recur.run(text, steps=first + 30, engine="interp"))
    assert zarr.open_group(str(path), mode="r").attrs["steps"] == first + 30
    rest = recur.run(text, resume=path, engine=engine, steps=100 - first - 30)
    same(rest, recur.run(text, steps=100, engine="interp"))
    same(recur.run(text, resume=path, engine=engine), rest)  # nothing left to run


def test_a_continuation_without_steps_finishes_the_steps_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    recur.run(SPEC, store=path, steps=20)
    zarr.open_group(str(path), mode="r+").attrs["steps"] = 100  # as a killed run leaves it
    same(recur.run(SPEC, resume=path), recur.run(SPEC))


KILLED = """\
import sys
from recur.engine import stream
import recur
stream.BLOCK_BYTES = 3000
recur.run(sys.argv[1], store=sys.argv[2], engine="interp")
"""
KILL_SPEC = SPEC.replace("steps: 100", "steps: 4000")


@pytest.mark.parametrize("after", [0.05, 1.0])  # seconds after the first checkpoint
def test_a_store_killed_mid_run_is_continued_to_the_run_in_one_go(
        tmp_path: Path, after: float, monkeypatch: pytest.MonkeyPatch) -> None:
    spec_path, path = tmp_path / "spec.yaml", tmp_path / "run.zarr"
    spec_path.write_text(KILL_SPEC)
    monkeypatch.setattr(stream, "BLOCK_BYTES", 2**16)
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(spec_path), str(path)])
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(after)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL  # killed mid-run (the run takes seconds)
    assert path.exists()
    done = zarr.open_group(str(path), mode="r").attrs["steps_run"]
    continued = recur.run(KILL_SPEC, resume=path, engine="compiled")
    assert continued.steps_run == 4000
    same(continued, recur.run(KILL_SPEC, engine="compiled"))
    assert 0 < done < 4000


def test_a_continuation_with_another_spec_params_or_seed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    recur.run(SPEC, store=path, steps=10)
    with pytest.raises(RecurError, match="written by another spec") as caught:
        recur.run(SPEC.replace("0.01 * uniform()", "0.02 * uniform()"), resume=path)
    assert caught.value.exit_code == 2
    with pytest.raises(RecurError, match=r"param 'r' is \[2.5, .*\] in .*, \[2.0, "):
        recur.run(SPEC, resume=path, params={"r": "linspace(2, 3, 6)"})
    with pytest.raises(RecurError, match="written with seed 0, and this run has seed 3"):
        recur.run(SPEC, resume=path, seed=3)
    with pytest.raises(RecurError, match=r"keeps x: all, .* would keep x: every 2"):
        recur.run(SPEC, resume=path, every=2)
    other = tmp_path / "other.zarr"
    zarr.open_group(str(other), mode="w").create_array("x", shape=(3,), dtype="f8")
    with pytest.raises(RecurError, match="not a store recur wrote"):
        recur.run(SPEC, resume=other)
    with pytest.raises(RecurError, match="no such store"):
        recur.run(SPEC, resume=tmp_path / "absent.zarr")


def test_an_existing_store_is_replaced_only_when_forced(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    recur.run(SPEC, store=path, steps=5)
    with pytest.raises(RecurError, match="exists; it is not replaced"):
        recur.run(SPEC, store=path)
    same(recur.run(SPEC, store=path, force=True), recur.run(SPEC))


def test_a_failed_run_leaves_no_store(tmp_path: Path) -> None:
    text = ("outputs:\n  x:\n    dtype: int64\n    initial: 1\n    step: x[t-1] * 3\n"
            "steps: 100\n")
    with pytest.raises(RecurError, match="integer overflow"):
        recur.run(text, store=tmp_path / "run.zarr", engine="compiled")
    assert list(tmp_path.iterdir()) == []


def test_without_zarr_the_error_names_the_extra(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def without_zarr(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "zarr" or name.startswith("zarr."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_zarr)
    with pytest.raises(RecurError, match="needs zarr-python") as caught:
        recur.run(SPEC, store=tmp_path / "run.zarr")
    assert "pip install 'recur[zarr]'" in caught.value.notes
    assert caught.value.exit_code == 2


def test_the_command_line_writes_continues_and_reads_stores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    monkeypatch.chdir(tmp_path)  # and back after the test
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    assert run("run", str(spec), "--steps", "40", "-o", "run.zarr").exit_code == 0
    assert run("run", str(spec), "--resume", "run.zarr", "--steps", "60").exit_code == 0
    assert run("run", str(spec), "-o", "all.npz").exit_code == 0
    compared = run("diff", "run.zarr", "all.npz", "--rtol", "0")
    assert compared.exit_code == 0 and compared.output.startswith("same: 5 arrays")
    assert run("run", str(spec), "--steps", "10", "-f", "zarr", "-o", "other").exit_code == 0
    assert zarr.open_group("other", mode="r").attrs["steps_run"] == 10
    (tmp_path / "in.yaml").write_text(
        "sequences:\n  s: input\noutputs:\n  m:\n    step: sum(s[t])\n")
    summed = run("run", str(tmp_path / "in.yaml"), "--input", "s=run.zarr")
    assert summed.exit_code == 2 and "no array 's'" in summed.output
    (tmp_path / "in.yaml").write_text(
        "sequences:\n  x: input\noutputs:\n  m:\n    step: sum(x[t])\n")
    summed = run("run", str(tmp_path / "in.yaml"), "--input", "x=run.zarr", "--last")
    reference = recur.run(SPEC)["x"].sum(axis=1)[-1]
    assert summed.exit_code == 0 and float(summed.output.split()[1]) == reference
    for args, message in [
        (["-f", "zarr"], "a Zarr store is a folder, not a stream"),
        (["--resume", "run.zarr", "-o", "x.npz"], "--resume appends to the store"),
        (["-o", "run.zarr"], "run.zarr exists; it is not replaced"),
        (["--every", "2", "--resume", "run.zarr"], "run would keep x: every 2"),
    ]:
        refused = run("run", str(spec), *args)
        assert refused.exit_code == 2 and message in refused.output, refused.output


def test_a_stored_run_needs_no_room_for_what_it_streams() -> None:
    text = "outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\nsteps: 10**13\n"
    with pytest.raises(RecurError, match="the outputs need"):
        recur.api.prepare(recur.load(text))
    recur.api.prepare(recur.load(text), streaming=True)  # streamed: nothing to refuse


def test_the_writer_thread_hands_its_error_to_the_run() -> None:
    from recur.io.zarr_store import Writer

    writer = Writer()
    writer.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        writer.close()


def test_a_store_is_plotted_from_every_kth_row_when_long(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from recur.report import stored

    monkeypatch.setattr(stored, "MAX_ROWS", 16)
    path = tmp_path / "run.zarr"
    recur.run(SPEC, store=path)
    read = stored.read_run(str(path))
    full = recur.run(SPEC)
    assert read.result.keeps["x"] == "every 7"  # 100 rows, 16 at most: every 7th
    assert_array_equal(read.result["x"], full["x"][6::7])
    assert read.result.keeps["y"] == "every 9"  # 33 rows of every 3rd step: every 3rd row
    assert_array_equal(read.result["y"], full["y"][2::3])
    assert_array_equal(read.result["z"], full["z"])
    runner = CliRunner()
    drawn = runner.invoke(cli, ["plot", str(path), "-o", str(tmp_path / "fig.png"),
                                "--output", "x", "--output", "w"])
    assert drawn.exit_code == 0, drawn.output
    assert (tmp_path / "fig.png").read_bytes().startswith(b"\x89PNG")
    refused = runner.invoke(cli, ["plot", str(path), "--steps", "3", "-o",
                                  str(tmp_path / "other.png")])
    assert refused.exit_code == 2 and "is a store, a run already made" in refused.output


@pytest.mark.slow
def test_a_store_takes_a_run_four_times_the_memory_allowed(tmp_path: Path) -> None:
    """Under a data-size limit of 192 MiB beyond what recur maps once imported, 768 MiB of
    kept states: refused in memory (.npy), written whole to a store. The room holds zarr's
    import, its threads (their stacks count as data) and the blocks in flight: 128 MiB
    failed one run in three on a loaded machine."""
    from test_memory import COUNTER, limited

    spec = tmp_path / "counter.yaml"
    spec.write_text(COUNTER)
    steps = str(4 * 192 * 2**20 // 8)
    args = ["run", str(spec), "--steps", steps, "--engine", "compiled", "-q", "-o"]
    refused = limited(192, *args, str(tmp_path / "x.npy"), kind="DATA")
    assert refused.returncode == 1 and "the outputs need 805.3 MB" in refused.stderr
    done = limited(192, *args, str(tmp_path / "x.zarr"), kind="DATA")
    assert done.returncode == 0, done.stderr
    x = zarr.open_group(str(tmp_path / "x.zarr"), mode="r")["x"]
    assert x.shape == (int(steps),)
    assert_array_equal(x[-3:], [int(steps) - 2, int(steps) - 1, int(steps)])
