"""Runs on a Dask cluster against runs in one process: the same bits, the same errors
(naming the global lane), a lost worker retried; and what is refused before a run."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner

import recur
from recur.cli.main import cli
from recur.cluster import address
from recur.diagnostics import RecurError
from recur.engine.c.native import EngineNote

SPECS = Path(__file__).resolve().parents[2] / "specs"
LOGISTIC = str(SPECS / "logistic_sweep.yaml")

# Every kind of draw over 300 lanes, an output without lanes beside them, keep modes.
STOCHASTIC = """\
params:
  r: linspace(2.5, 4.0, 300)
outputs:
  x:
    initial: 0.5
    step: clip(r * x[t-1] * (1 - x[t-1]) + 0.02 * normal(), 0, 1)
  walk:
    dtype: int64
    initial: 0 * arange(300)
    step: walk[t-1] + 2 * integers(0, 2) - 1
  level:
    step: uniform() + 0 * t
  u:
    step: uniform(-1, 1) * r
    keep: last
  hidden:
    step: normal() * r
    keep: none
steps: 150
"""


def _same(one: recur.Result, other: recur.Result) -> None:
    assert list(one) == list(other) and one.keeps == other.keeps
    assert (one.steps_run, one.stopped_by, one.engine) == (other.steps_run, other.stopped_by,
                                                           other.engine)
    for name in one:
        numpy.testing.assert_array_equal(other[name], one[name], strict=True)


@pytest.mark.parametrize("last", [False, True])
def test_a_logistic_sweep_is_bit_for_bit_the_single_process_run(cluster: str,
                                                               last: bool) -> None:
    spec = recur.load(LOGISTIC)
    _same(recur.run(spec, last=last), recur.run(spec, last=last, scheduler=cluster))
    _same(recur.run(spec, last=last), recur.run(spec, last=last, scheduler=cluster,
                                                 lane_chunk=numpy.int64(7)))


@pytest.mark.parametrize("engine", ["interp", "compiled"])
def test_a_stochastic_sweep_draws_the_same_numbers(cluster: str, engine: str) -> None:
    spec = recur.load(STOCHASTIC)
    whole = recur.run(spec, seed=5, engine=engine)
    assert whole["walk"].shape == (150, 300) and whole["level"].shape == (150,)
    _same(whole, recur.run(spec, seed=5, engine=engine, scheduler=cluster, lane_chunk=41))
    assert not numpy.array_equal(whole["x"], recur.run(spec, seed=6, engine=engine,
                                                       scheduler=cluster)["x"])


def test_until_stops_every_chunk_at_the_same_step(cluster: str) -> None:
    spec = recur.load(STOCHASTIC + "until: uniform() < 0.02\n")
    whole = recur.run(spec, seed=1)
    assert whole.stopped_by == "until" and whole.steps_run < 150
    _same(whole, recur.run(spec, seed=1, scheduler=cluster, lane_chunk=64))


def test_progress_counts_finished_lanes(cluster: str) -> None:
    calls: list[tuple[int, int]] = []
    recur.run(recur.load(LOGISTIC), scheduler=cluster, lane_chunk=150,
              progress=lambda done, total: calls.append((done, total)))
    done = [0, *(lanes for lanes, total in calls)]
    assert all(total == 400 for _, total in calls) and done[-1] == 400
    # chunks of 150, 150 and 100 lanes, in the order they finish
    assert sorted(b - a for a, b in itertools.pairwise(done)) == [100, 150, 150]


# x doubles every step; lanes 650 to 759 start from 1000 + lane and leave int32 first
# (the others within 25 steps never do): a fault in one chunk of 128 lanes.
OVERFLOW = ("params:\n  i: arange(1000)\noutputs:\n  x:\n    dtype: int32\n"
            "    initial: where(650 <= i and i < 760, 1000 + i, 1)\n"
            "    step: x[t-1] * 2\nsteps: 25\n")
# x grows by r per step; lanes 600 to 619 reach infinity at the first step (--check).
NOT_FINITE = ("params:\n  i: arange(1000)\n  r: where(600 <= i and i < 620, 1e300, 1.0)\n"
              "outputs:\n  x:\n    initial: 1e10\n    step: x[t-1] * r\nsteps: 5\n")


def _error(spec: str, **options: Any) -> RecurError:
    with pytest.raises(RecurError) as caught:
        recur.run(recur.load(spec), **options)
    return caught.value


def _overflow_by_hand() -> tuple[int, int]:
    """The first (t, lane) where x leaves int32, by a plain loop."""
    x = [1000 + i if 650 <= i < 760 else 1 for i in range(1000)]
    for t in range(25):
        x = [value * 2 for value in x]
        for lane, value in enumerate(x):
            if value > 2**31 - 1:
                return t, lane
    raise AssertionError("no overflow")


@pytest.mark.parametrize("engine", ["interp", "compiled"])
@pytest.mark.parametrize(("spec", "options"), [(OVERFLOW, {}), (NOT_FINITE, {"check": True})])
def test_a_fault_names_the_global_lane_and_t(cluster: str, engine: str, spec: str,
                                             options: dict[str, Any]) -> None:
    here = _error(spec, engine=engine, **options)
    there = _error(spec, engine=engine, scheduler=cluster, lane_chunk=128, **options)
    assert (there.message, there.t, there.lane, there.exit_code) == (
        here.message, here.t, here.lane, here.exit_code)
    assert there.exit_code == 1 and there.source is not None  # rendered with its caret
    t, lane = _overflow_by_hand() if spec is OVERFLOW else (0, 600)
    assert (there.t, there.lane) == (t, (lane,))
    assert f"at t={t} (lane {lane})" in there.message


def test_faults_in_several_chunks_give_a_true_one(cluster: str) -> None:
    """Every lane overflows, the last ones first: whichever chunk reports first, the
    error is one of its real faults, by global lane."""
    spec = ("outputs:\n  x:\n    dtype: int32\n    initial: 1 + arange(1000)\n"
            "    step: x[t-1] * 2\nsteps: 40\n")
    error = _error(spec, scheduler=cluster, lane_chunk=100)
    assert error.t is not None and error.lane is not None
    lane, t = error.lane[0], error.t
    assert (lane + 1) * 2 ** (t + 1) > 2**31 - 1 >= (lane + 1) * 2**t  # it leaves int32 there
    first_in_chunk = lane - lane % 100
    assert all((i + 1) * 2 ** (t + 1) <= 2**31 - 1 for i in range(first_in_chunk, lane))


def test_a_failed_run_writes_no_file(cluster: str, tmp_path: Path) -> None:
    spec, out = tmp_path / "overflow.yaml", tmp_path / "out.npy"
    spec.write_text(OVERFLOW)
    # chunks of 128: the lanes that overflow first (650 to 759, all at one step) are in
    # one chunk, so that whichever task ends first, the fault named is the same
    result = CliRunner().invoke(cli, ["run", str(spec), "--scheduler", cluster,
                                      "--lane-chunk", "128", "-o", str(out)])
    assert result.exit_code == 1, result.output
    t, lane = _overflow_by_hand()
    assert f"integer overflow in the step of output 'x' at t={t} (lane {lane})" in result.stderr
    assert not out.exists()


def test_a_worker_killed_mid_run_is_retried(cluster: str) -> None:
    import distributed

    spec = recur.load(STOCHASTIC.replace("steps: 150", "steps: 800"))  # busy workers
    whole = recur.run(spec, seed=9, engine="interp")
    killed: list[int] = []
    with distributed.Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_once(done: int, total: int) -> None:
            if killed:
                return
            # A chunk is back; kill a worker that is running another one (where none
            # is, the next chunk's return tries again).
            busy = [worker for worker, keys in client.processing().items() if keys]
            if busy:
                killed.append(pids[busy[0]])
                os.kill(killed[0], signal.SIGKILL)

        there = recur.run(spec, seed=9, engine="interp", scheduler=cluster, lane_chunk=30,
                          progress=kill_once)
        assert killed
        _same(whole, there)
        client.wait_for_workers(2, timeout=60)  # the nanny starts another: later tests
        assert killed[0] not in client.run(os.getpid).values()


def test_ctrl_c_stops_the_cluster_and_writes_nothing(tmp_path: Path) -> None:
    """Ctrl-C at a terminal reaches the whole process group: recur and its local
    workers. recur says so (exit 130), its workers end, and no file is written."""
    import psutil

    spec, out = tmp_path / "forever.yaml", tmp_path / "out.npy"
    spec.write_text("params:\n  r: linspace(0, 1, 1000)\nsteps: 100000000000\noutputs:\n"
                    "  x:\n    initial: 0.0\n    step: x[t-1] + r\n    keep: last\n")

    def own_group() -> None:  # Ctrl-C as by default, whatever the tests ignore
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen(
        [sys.executable, "-m", "recur", "run", str(spec), "--scheduler", "local:2",
         "-o", str(out)], stderr=subprocess.PIPE, text=True, preexec_fn=own_group)
    try:
        assert process.stderr is not None
        note = process.stderr.readline()  # the cluster is up: the tasks come next
        assert note.startswith("recur: note: the Dask dashboard is at"), note
        workers = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=120) == 130
        said = process.stderr.read()
        assert said.endswith("recur: interrupted\n") and "Traceback" not in said, said
        assert not out.exists()
        psutil.wait_procs(workers, timeout=60)
        assert not [worker for worker in workers if worker.is_running()]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_scheduler_without_workers_is_noted() -> None:
    """Tasks would wait for workers to connect: the user is told why nothing moves."""
    import distributed

    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as empty, \
            pytest.warns(EngineNote) as notes, \
            address.connected(address.parse(empty.scheduler_address)) as client:
        assert address.worker_threads(client) == 1  # sizes chunks as for one thread
    assert any(str(note.message) == f"the scheduler at {empty.scheduler_address} has no "
               "workers yet: the tasks wait for some to connect ('dask worker ADDRESS')"
               for note in notes)


def test_an_unreachable_scheduler_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(address, "CONNECT_TIMEOUT", 1.0)
    result = CliRunner().invoke(cli, ["run", LOGISTIC, "--scheduler",
                                      f"tcp://127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"recur: error: --scheduler tcp://127.0.0.1:{port}: no "
                                    "Dask scheduler answered there within 1 s")
    assert "Traceback" not in result.output


def test_local_cluster_from_the_command_line(tmp_path: Path) -> None:
    here, there = tmp_path / "here.npy", tmp_path / "there.npy"
    assert CliRunner().invoke(cli, ["run", LOGISTIC, "-o", str(here)]).exit_code == 0
    result = CliRunner().invoke(cli, ["run", LOGISTIC, "--scheduler", "local:2",
                                      "-o", str(there)])
    assert result.exit_code == 0, result.output
    assert here.read_bytes() == there.read_bytes()
    assert result.stderr.startswith("recur: note: the Dask dashboard is at http://")


@pytest.mark.parametrize(("args", "words"), [
    (["--scheduler", "local:0"], "--scheduler local:0: local:N takes a number of worker "
                                 "processes N >= 1"),
    (["--scheduler", "127.0.0.1:8786"], "--scheduler must be tcp://HOST:PORT"),
    (["--scheduler", "local:2", "--lane-chunk", "0"], "--lane-chunk must be a number of "
                                                      "lanes >= 1, not 0"),
    (["--lane-chunk", "10"], "--lane-chunk sizes the tasks of a cluster: it needs "
                             "--scheduler"),
    (["--scheduler", "local:2", "--device", "cuda"], "--scheduler runs on the workers' CPUs"),
    (["--scheduler", "local:2", "--engine", "scan"], "--engine scan with --scheduler "
                                                     "cannot run this spec: the step is not"),
])
def test_what_a_cluster_does_not_take_is_refused_first(args: list[str], words: str) -> None:
    result = CliRunner().invoke(cli, ["run", LOGISTIC, *args])
    assert result.exit_code == 2 and words in result.stderr, result.output


@pytest.mark.parametrize(("options", "words"), [
    ({"scheduler": 8786}, "scheduler must be an address (a string), not 8786"),
    ({"scheduler": "local:2", "lane_chunk": 2.5}, "lane_chunk must be a number of lanes "
                                                  ">= 1, not 2.5"),
    ({"scheduler": "local:2", "lane_chunk": True}, "not True"),
])
def test_the_library_refuses_what_a_cluster_does_not_take(options: dict[str, Any],
                                                          words: str) -> None:
    error = _error(OVERFLOW, **options)
    assert error.exit_code == 2 and words in error.message


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if missing
    error = _error(OVERFLOW, scheduler="local:2")
    assert error.exit_code == 2 and "pip install 'recur[dask]'" in error.notes


def test_nothing_of_dask_is_imported_without_a_scheduler() -> None:
    code = ("import sys, recur\n"
            "def dask(): return sorted(m for m in sys.modules\n"
            "                          if m.split('.')[0] in ('dask', 'distributed'))\n"
            "print(dask())\n"
            f"recur.run({LOGISTIC!r}, last=True)\n"
            "print(dask())\n")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    assert shown == "[]\n[]\n"
