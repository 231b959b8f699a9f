"""Memory: the limits read, the margin kept, a MemoryError as the refusal, CSV in blocks.

The limits are real ones (`resource.setrlimit` in a child process), each far from what
the run needs, so that the outcome does not depend on the machine.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from recur.diagnostics import RunError
from recur.engine import memory
from recur.engine.memory import Room, cgroup_rooms
from recur.io import writers
from recur.io.writers import OutputArray, write_csv

COUNTER = "outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n"
MIB = 2**20

# In a child: import recur, limit the address space (or the data size) to what the
# process maps now (its data) plus ROOM MiB, then run the command line with the other
# arguments, or print the room recur sees.
LIMITED = """\
import resource, sys
from recur.cli.main import main
from recur.engine.memory import host_room
room = int(sys.argv[1]) * 2**20
field = {field}
mapped = int(open('/proc/self/statm').read().split()[field]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_{kind}, (mapped + room, mapped + room))
sys.argv = ['recur', *sys.argv[2:]]
if sys.argv[1:] == ['room']:
    found = host_room()
    print(found.size, found.source)
else:
    main()
"""


def limited(room_mib: int, *args: str, kind: str = "AS") -> subprocess.CompletedProcess[str]:
    code = LIMITED.format(kind=kind, field=0 if kind == "AS" else 5)  # statm: size, data
    return subprocess.run([sys.executable, "-c", code, str(room_mib), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def spec_file(tmp_path: Path) -> str:
    path = tmp_path / "counter.yaml"
    path.write_text(COUNTER)
    return str(path)


class _Backend:
    name = "cpu"

    def __init__(self, room: Room) -> None:
        self.room = room

    def memory_room(self) -> Room:
        return self.room


# --- the margin ----------------------------------------------------------------------------


def test_the_margin_is_a_tenth_or_512_mib_whichever_is_more() -> None:
    assert Room(1_000_000_000, "t").usable() == 1_000_000_000 - 512 * MIB
    assert Room(24_600_000_000, "t").usable() == 24_600_000_000 - 2_460_000_000
    assert Room(100 * MIB, "t").usable() == 0


def test_the_issue_s_run_is_refused_and_one_within_the_margin_accepted() -> None:
    """3.0e9 float64 steps (24.0 GB) against 24.6 GB available ran out of memory."""
    backend = _Backend(Room(24_600_000_000, "the test's memory"))
    with pytest.raises(RunError) as error:
        memory.check_outputs_fit({"x": 24_000_000_008}, backend)
    assert error.value.exit_code == 1
    assert error.value.message == (
        "the outputs need 24.0 GB (x: 24.0 GB), more than the 22.1 GB of memory "
        "available: 24.6 GB under the test's memory, less 2.5 GB kept free")
    memory.check_outputs_fit({"x": 22_000_000_000}, backend)  # 22.14 GB may be used


def test_on_the_gpu_the_host_must_hold_the_outputs_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outputs come back to the host: a roomy GPU on a small host is refused."""
    backend = _Backend(Room(100 * 10**9, "the GPU's free memory"))
    backend.name = "cuda"
    monkeypatch.setattr(memory, "host_room", lambda: Room(2 * 10**9, "the host's memory"))
    with pytest.raises(RunError) as error:
        memory.check_outputs_fit({"x": 2 * 10**9 - 512 * MIB + 1}, backend)
    assert "under the host's memory, less 536.9 MB kept free" in error.value.message
    memory.check_outputs_fit({"x": 2 * 10**9 - 512 * MIB}, backend)


def test_small_runs_do_not_ask() -> None:
    memory.check_outputs_fit({"x": memory.ALWAYS_AVAILABLE}, _Backend(Room(0, "nothing")))


# --- the limits read -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "words"), [("AS", "address-space limit (ulimit -v)"),
                                              ("DATA", "data-size limit (ulimit -d)")])
def test_a_process_limit_is_the_room_when_it_is_the_tightest(kind: str, words: str) -> None:
    done = limited(300, "room", kind=kind)
    assert done.returncode == 0, done.stderr
    size, source = done.stdout.strip().split(" ", 1)
    assert source == f"the process's {words}"
    # less what the process mapped since (a page or two more where it unmapped some since)
    assert 250 * MIB < int(size) <= 301 * MIB


def _fake_proc(tmp_path: Path, cgroup: str, mount: str) -> str:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text(
        "22 1 0:20 / /proc rw - proc proc rw\n" + mount.format(root=tmp_path))
    return str(proc)


def test_cgroup_v2_limits_count_the_group_and_those_above_it(tmp_path: Path) -> None:
    group = tmp_path / "cg" / "user" / "job"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("max\n")  # no limit of its own
    (group / "memory.current").write_text("100\n")
    (group.parent / "memory.max").write_text(f"{2 * 10**9}\n")
    (group.parent / "memory.current").write_text(f"{5 * 10**8}\n")
    (group.parent / "memory.stat").write_text(f"anon 1\ninactive_file {10**8}\n")
    proc = _fake_proc(tmp_path, "0::/user/job\n",
                      "30 22 0:26 / {root}/cg rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert list(cgroup_rooms(proc)) == [
        Room(2 * 10**9 - (5 * 10**8 - 10**8), "the cgroup's memory.max")]


def test_cgroup_v1_limit_below_a_mount_root(tmp_path: Path) -> None:
    """A container sees its own group as the mount's root: the path is cut by that root."""
    group = tmp_path / "memory"
    group.mkdir()
    (group / "memory.limit_in_bytes").write_text("1000000000\n")
    (group / "memory.usage_in_bytes").write_text("300000000\n")
    (group / "memory.stat").write_text("cache 5\ntotal_inactive_file 100000000\n")
    proc = _fake_proc(tmp_path, "9:name=systemd:/x\n4:cpu,memory:/docker/abc\n",
                      "31 22 0:27 /docker/abc {root}/memory rw - cgroup cgroup rw,memory\n"
                      "32 22 0:28 / {root}/cpu rw - cgroup cgroup rw,cpu\n")
    assert list(cgroup_rooms(proc)) == [
        Room(1_000_000_000 - 200_000_000, "the cgroup's memory.limit_in_bytes")]


def test_no_cgroup_files_no_room(tmp_path: Path) -> None:
    assert list(cgroup_rooms(str(tmp_path / "missing"))) == []


# --- under a real address-space limit ----------------------------------------------------------


def test_a_run_beyond_the_address_space_limit_is_refused_before_running(tmp_path: Path) -> None:
    """The issue's `prlimit --as`: 2e8 steps (1.6 GB) gave an `_ArrayMemoryError` traceback."""
    target = tmp_path / "out.npy"
    done = limited(1000, "run", spec_file(tmp_path), "--steps", "200000000", "-o",
                   str(target))
    assert done.returncode == 1, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("recur: error: the outputs need 1.6 GB (x: 1.6 GB), more than")
    assert "under the process's address-space limit (ulimit -v)" in first
    assert "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["counter.yaml"]


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_a_memory_error_the_check_cannot_foresee_is_the_refusal(tmp_path: Path,
                                                                 fmt: str) -> None:
    """1.9e6 steps (15 MB) are below the size that is never checked; with 8 MB of room
    the allocation fails: one message, exit 1, no file, no temporary."""
    target = tmp_path / f"out.{fmt}"
    target.write_text("old\n")
    done = limited(8, "run", spec_file(tmp_path), "--steps", "1900000", "--engine", "interp",
                   "-o", str(target))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("recur: error: the run does not fit in the memory available")
    assert "note: write the outputs to a Zarr store while the run goes (-o out.zarr)" \
        in done.stderr
    assert "keep only final states with --last" in done.stderr
    assert "Traceback" not in done.stderr
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["counter.yaml", f"out.{fmt}"]


def test_csv_is_written_in_blocks_under_a_tight_limit(tmp_path: Path) -> None:
    """10**6 steps (8 MB) to CSV needed some 140 MB at once, and failed with a
    `MemoryError` traceback after the run under 64 MB of room; in blocks it fits."""
    target = tmp_path / "out.csv"
    done = limited(64, "run", spec_file(tmp_path), "--steps", "1000000", "--engine", "interp",
                   "-o", str(target))
    assert done.returncode == 0, done.stderr
    with open(target, encoding="ascii") as text:
        assert next(text) == "x\n"
        for step, line in enumerate(text, start=1):
            assert line == f"{float(step)!r}\n"
    assert step == 10**6


# --- CSV in blocks -----------------------------------------------------------------------------


def _reference_csv(*arrays: tuple[str, np.ndarray]) -> str:
    """The CSV by hand: every row whole, through Python's csv module."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([f"{name}[{i}]" for name, array in arrays for i in range(array.shape[1])])
    for row in range(len(arrays[0][1])):
        writer.writerow([repr(float(v)) for _, array in arrays for v in array[row]])
    return text.getvalue()


@pytest.mark.parametrize(("steps", "lanes"), [(1000, 3), (7, 10), (3, 250), (0, 4)])
def test_blocks_join_into_the_whole_table(monkeypatch: pytest.MonkeyPatch, steps: int,
                                          lanes: int) -> None:
    """Blocks of 100 cells: rows split across blocks, and rows wider than a block."""
    monkeypatch.setattr(writers, "CSV_BLOCK_CELLS", 100)
    rng = np.random.default_rng(steps)
    x, y = rng.normal(size=(steps, lanes)), rng.normal(size=(steps, 2)) * 1e300
    text = io.StringIO()
    write_csv(text, [OutputArray("x", x, True), OutputArray("y", y, True)])
    assert text.getvalue() == _reference_csv(("x", x), ("y", y))


@pytest.mark.parametrize("shape", [(200_000,), (1, 200_000)], ids=["rows", "one-wide-row"])
def test_csv_memory_does_not_grow_with_the_table(monkeypatch: pytest.MonkeyPatch,
                                                 shape: tuple[int, ...]) -> None:
    """A block's text takes some 130 bytes a cell; the whole table's was 13 times the
    array (here 21 MB for 1.6 MB). With blocks of 1024 cells it stays under the array."""
    monkeypatch.setattr(writers, "CSV_BLOCK_CELLS", 1024)
    array = np.arange(200_000, dtype=np.float64).reshape(shape) / 7
    with open(os.devnull, "w", encoding="utf-8", newline="") as sink:
        tracemalloc.start()
        try:
            write_csv(sink, [OutputArray("x", array, True)])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < array.nbytes
