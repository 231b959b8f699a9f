"""A cluster's run written to a Zarr store by its workers (`store=` with `scheduler=`):
the store of a run in one process, array by array and attribute by attribute; no store
after a failure; what stays refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner

import recur
from recur.cli.main import cli
from recur.diagnostics import RecurError
from recur.engine import stream
from recur.io.zarr_store import RunStore
from tests.cluster.test_cluster import LOGISTIC, OVERFLOW, STOCHASTIC, _overflow_by_hand

zarr = pytest.importorskip("zarr")

# Every keep a store holds: all, every K, last, last N, none (read back by a tap).
KEEPS = STOCHASTIC.replace("steps: 150", """\
  tail:
    step: x[t-1] + hidden[t-1]
    initial: 0.0
    keep: last 20
  sparse:
    dtype: int64
    step: walk[t-1] * 3
    initial: 0 * arange(300)
    keep: every 4
steps: 150""").replace("    step: normal() * r\n", "    step: normal() * r\n    initial: 0.0\n")


def _same_store(one: Path, other: Path) -> None:
    """Two stores hold the same arrays (values, dtypes, shapes, dimension names), the
    same attributes, and the same states to continue from."""
    here, there = zarr.open_group(str(one), mode="r"), zarr.open_group(str(other), mode="r")
    assert dict(here.attrs) == dict(there.attrs)
    assert sorted(here.array_keys()) == sorted(there.array_keys())
    for name in here.array_keys():
        assert here[name].metadata.dimension_names == there[name].metadata.dimension_names
        numpy.testing.assert_array_equal(there[name][...], here[name][...], strict=True)
    carried = RunStore.open(one).carried(), RunStore.open(other).carried()
    assert carried[0].keys() == carried[1].keys()
    for name, states in carried[0].items():
        numpy.testing.assert_array_equal(carried[1][name], states, strict=True)


def _both(spec: str, tmp_path: Path, cluster: str, lane_chunk: int | None,
          **options: Any) -> tuple[recur.Result, recur.Result]:
    loaded = recur.load(spec)
    here = recur.run(loaded, store=tmp_path / "here.zarr", **options)
    there = recur.run(loaded, store=tmp_path / "there.zarr", scheduler=cluster,
                      lane_chunk=lane_chunk, **options)
    _same_store(tmp_path / "here.zarr", tmp_path / "there.zarr")
    return here, there


@pytest.mark.parametrize("keep", [{}, {"last": True}, {"every": 7}])
def test_a_logistic_sweep_written_by_workers_is_the_single_process_store(
        cluster: str, tmp_path: Path, keep: dict[str, Any]) -> None:
    _, there = _both(LOGISTIC, tmp_path, cluster, 64, **keep)
    assert (there.steps_run, there.stopped_by, list(there)) == (300, "steps", ["x"])
    # The logistic map by a loop over the steps, NumPy over the lanes: the store holds it.
    r = numpy.linspace(2.5, 4.0, 400)
    x, rows = numpy.full(400, 0.5), []
    for _ in range(300):
        x = r * x * (1 - x)
        rows.append(x)
    expected = (rows[-1] if keep.get("last") else numpy.array(rows)[keep.get("every", 1) - 1::
                                                                      keep.get("every", 1)])
    numpy.testing.assert_array_equal(there["x"][...], expected)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["here.zarr", "there.zarr"]


@pytest.mark.parametrize("until", ["", "until: uniform() < 0.02\n"])
def test_a_stochastic_sweep_in_several_blocks_is_the_single_process_store(
        cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, until: str) -> None:
    """Blocks of a few steps (the client sizes them, for the workers too): rows written
    block by block, each task its lanes; `until` cuts the arrays to the steps run."""
    monkeypatch.setattr(stream, "BLOCK_BYTES", 300 * 8 * 12)
    here, there = _both(KEEPS + until, tmp_path, cluster, 41, seed=3)
    assert there.steps_run == here.steps_run and there.stopped_by == here.stopped_by
    assert (here.stopped_by == "until") == bool(until) and here.steps_run > 12
    assert list(there) == ["x", "walk", "level", "u", "tail", "sparse"]


def test_a_store_written_by_workers_is_continued_in_one_process(cluster: str,
                                                                tmp_path: Path) -> None:
    spec = recur.load(KEEPS)
    recur.run(spec, steps=100, seed=2, store=tmp_path / "here.zarr")
    recur.run(spec, steps=100, seed=2, store=tmp_path / "there.zarr", scheduler=cluster)
    for name in ("here.zarr", "there.zarr"):
        assert recur.run(spec, seed=2, resume=tmp_path / name, steps=50).steps_run == 150
    _same_store(tmp_path / "here.zarr", tmp_path / "there.zarr")
    whole = recur.run(spec, seed=2)  # in one go, in memory: the same rows
    numpy.testing.assert_array_equal(RunStore.open(tmp_path / "there.zarr").arrays()["x"][...],
                                     whole["x"])


def test_a_fault_leaves_no_store(cluster: str, tmp_path: Path) -> None:
    with pytest.raises(RecurError) as caught:
        recur.run(recur.load(OVERFLOW), store=tmp_path / "out.zarr", scheduler=cluster,
                  lane_chunk=128)  # the lanes that overflow are all in one chunk
    t, lane = _overflow_by_hand()
    assert (caught.value.t, caught.value.lane) == (t, (lane,))
    assert list(tmp_path.iterdir()) == []  # neither the store nor the one being built


def test_workers_write_a_store_from_the_command_line(tmp_path: Path) -> None:
    here, there = tmp_path / "here.zarr", tmp_path / "out.zarr"
    assert CliRunner().invoke(cli, ["run", LOGISTIC, "-o", str(here)]).exit_code == 0
    result = CliRunner().invoke(cli, ["run", LOGISTIC, "--scheduler", "local:2",
                                      "--lane-chunk", "100", "-o", str(there)])
    assert result.exit_code == 0, result.output
    _same_store(here, there)


def test_what_stays_refused(cluster: str, tmp_path: Path) -> None:
    taken = tmp_path / "taken.zarr"
    recur.run(LOGISTIC, steps=3, store=taken)
    runner = CliRunner()
    result = runner.invoke(cli, ["run", LOGISTIC, "--scheduler", cluster, "-o", str(taken)])
    assert result.exit_code == 2 and f"{taken} exists; it is not replaced" in result.stderr
    result = runner.invoke(cli, ["run", LOGISTIC, "--scheduler", cluster, "--resume",
                                 str(taken)])
    assert result.exit_code == 2, result.output
    assert "--scheduler with --resume: a store is continued in one process" in result.stderr
    assert "Traceback" not in result.output


def test_force_replaces_a_store_and_progress_counts_lanes(cluster: str, tmp_path: Path) -> None:
    here, there = tmp_path / "here.zarr", tmp_path / "there.zarr"
    recur.run(LOGISTIC, steps=3, store=there)
    calls: list[tuple[int, int]] = []
    recur.run(LOGISTIC, store=here)
    recur.run(LOGISTIC, store=there, force=True, scheduler=cluster, lane_chunk=150,
              progress=lambda done, total: calls.append((done, total)))
    # Three tasks, of 150, 150 and 100 lanes, back in any order: the lanes done so far.
    assert len(calls) == 3 and calls[-1] == (400, 400)
    assert {done for done, _ in calls[:2]} <= {100, 150, 250, 300}
    _same_store(here, there)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["here.zarr", "there.zarr"]
