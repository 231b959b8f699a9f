"""Signals, with real processes: Ctrl-C during a run, a write or the imports; a closed pipe.

Ctrl-C exits 130 with `recur: interrupted` and leaves no file under the requested name
(an existing one keeps its content) and no temporary file. A reader that closes the
pipe before recur has written everything ends recur with status 1 and nothing on
standard error, as docs/spec.md says, whichever write finds the pipe closed.

Each recur runs in its own process group with SIGINT handled by default, even where the
tests run with it ignored (in the background), and is killed if a test ends first.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recur.diagnostics import UsageError
from recur.io import OutputArray, write_outputs

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not Path("/proc/self/stat").exists(),
    reason="needs POSIX signals and /proc to see a process working",
)

SPECS = Path(__file__).resolve().parents[2] / "specs"
RECUR = [sys.executable, "-m", "recur"]
SCRIPT = str(Path(sys.executable).with_name("recur"))

FOREVER = """\
steps: 100000000000000
outputs:
  x:
    initial: 0.0
    step: x[t-1] + 1.0
    keep: last
"""
# 20,000 steps of 1,000 lanes: a quick run, then 160 MB to write
BIG = """\
params:
  r: linspace(0, 1, 1000)
steps: 20000
outputs:
  x:
    initial: 0.0
    step: x[t-1] + r
"""
# 300,000 steps: 2.4 MB as .npy, 2 MB as CSV, more than any pipe holds (at most 1 MiB)
COUNT = "outputs:\n  x:\n    dtype: int64\n    initial: 0\n    step: x[t-1] + 1\n"
LONG = ["--steps", "300000"]
# Standard output as Python buffers it by default (a test run may have made it unbuffered)
BUFFERED = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
UNBUFFERED = {**BUFFERED, "PYTHONUNBUFFERED": "1"}
# Only against a hang: a loaded machine may take many times as long as an idle one.
TIMEOUT = 300

Start = Callable[..., "subprocess.Popen[bytes]"]


def _own_group_with_ctrl_c() -> None:
    """In the child: a process group of its own, which a signal for the group reaches
    as Ctrl-C at a terminal does, and SIGINT as by default, whatever the tests ignore."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """`start(command, *args, **popen)`; whatever is still running at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def launch(command: list[str], *args: str, **popen: object) -> subprocess.Popen[bytes]:
        popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "cwd": tmp_path, **popen}
        process = subprocess.Popen([*command, *args],  # type: ignore[call-overload]
                                   preexec_fn=_own_group_with_ctrl_c, **popen)
        started.append(process)
        return process

    yield launch
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_spec(start: Start, tmp_path: Path, spec: str, *args: str, **popen: object) -> (
    subprocess.Popen[bytes]
):
    (tmp_path / "spec.yaml").write_text(spec)
    return start(RECUR, "run", "spec.yaml", *args, **popen)


def _wait_until_running(process: subprocess.Popen[bytes], cpu: float = 1.5) -> None:
    """Until the process has spent `cpu` seconds working: imported, compiled, in the loop."""
    deadline = time.monotonic() + TIMEOUT
    while _cpu_seconds(process.pid) < cpu:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)


def _interrupt(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Ctrl-C as a terminal sends it: to the process group."""
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    return process.returncode, stderr.decode()


def test_ctrl_c_during_a_run_exits_130_and_writes_nothing(start: Start, tmp_path: Path) -> None:
    process = _start_spec(start, tmp_path, FOREVER, "-o", "out.npy")
    _wait_until_running(process)
    code, stderr = _interrupt(process)
    assert code == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["recur: interrupted"]
    assert "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path)) == ["spec.yaml"]


def test_ctrl_c_keeps_an_existing_result(start: Start, tmp_path: Path) -> None:
    (tmp_path / "out.npy").write_bytes(b"the old result")
    process = _start_spec(start, tmp_path, FOREVER, "-o", "out.npy")
    _wait_until_running(process)
    code, _ = _interrupt(process)
    assert code == 130
    assert (tmp_path / "out.npy").read_bytes() == b"the old result"
    assert sorted(os.listdir(tmp_path)) == ["out.npy", "spec.yaml"]


def test_ctrl_c_prints_exactly_one_line(start: Start, tmp_path: Path) -> None:
    process = _start_spec(start, tmp_path, FOREVER)
    _wait_until_running(process)
    code, stderr = _interrupt(process)
    assert code == 130
    assert stderr == "recur: interrupted\n"


def test_ctrl_c_while_the_result_is_written_never_leaves_a_partial_file(
    start: Start, tmp_path: Path
) -> None:
    """SIGINT the moment the temporary file appears: the write is undone (130, nothing),
    or it was done (the whole result; 130 too if the Ctrl-C came after the rename);
    never a part of it, never a temporary file."""
    caught = False
    for _ in range(3):
        for leftover in tmp_path.iterdir():
            leftover.unlink()
        process = _start_spec(start, tmp_path, BIG, "-o", "out.npy")
        while process.poll() is None and not any(
            name.endswith(".tmp") for name in os.listdir(tmp_path)
        ):
            time.sleep(0.002)
        code, stderr = _interrupt(process) if process.poll() is None else (
            process.wait(), process.communicate()[1].decode())
        names = sorted(os.listdir(tmp_path))
        assert code in (0, 130), stderr
        if names == ["out.npy", "spec.yaml"]:
            assert np.load(tmp_path / "out.npy").shape == (20000, 1000)
        else:
            assert (code, names) == (130, ["spec.yaml"]), (code, names)
        if code == 130:
            assert stderr == "recur: interrupted\n"
            caught = True
            break
    if not caught:
        pytest.skip("the write was always done before the signal came")


def test_ctrl_c_inside_mkstemp_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is made, but the Ctrl-C comes before `mkstemp` returns its name."""
    made = tempfile.mkstemp

    def interrupted(*args: Any, **kwargs: Any) -> tuple[int, str]:
        handle, _ = made(*args, **kwargs)
        os.close(handle)
        raise KeyboardInterrupt

    monkeypatch.setattr(tempfile, "mkstemp", interrupted)
    (tmp_path / "out.npy").write_bytes(b"the old result")
    with pytest.raises(KeyboardInterrupt):
        write_outputs([OutputArray("x", np.arange(3), True)], str(tmp_path / "out.npy"), None)
    assert os.listdir(tmp_path) == ["out.npy"]
    assert (tmp_path / "out.npy").read_bytes() == b"the old result"


def test_ctrl_c_reaches_recur_when_the_tests_ignore_it(start: Start, tmp_path: Path) -> None:
    """A test run in the background ignores SIGINT, and its children inherit that."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = _start_spec(start, tmp_path, FOREVER)
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait_until_running(process)
    assert _interrupt(process) == (130, "recur: interrupted\n")


SIGINT_ON_IMPORT = """\
import os, signal, sys

class _CtrlCOnImport:
    \"\"\"Delivers SIGINT the moment one module is about to be imported.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == os.environ["SIGINT_ON_IMPORT"]:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _CtrlCOnImport())
"""


@pytest.mark.parametrize("module", ["click", "numpy", "recur.api", "recur.engine.c.native"])
@pytest.mark.parametrize("command", [RECUR, [SCRIPT]], ids=["python-m", "script"])
def test_ctrl_c_while_recur_is_imported(start: Start, tmp_path: Path, command: list[str],
                                        module: str) -> None:
    """A Ctrl-C as `module` is first imported: the line and the status of one during a run.

    A `sitecustomize` on the path sends it from an import hook, so that it lands in the
    imports every time, not when a timer happens to fire.
    """
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SIGINT_ON_IMPORT)
    env = {**os.environ, "SIGINT_ON_IMPORT": module,
           "PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])}
    process = start(command, "run", str(SPECS / "fibonacci.yaml"), env=env)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert (process.returncode, stderr, stdout) == (130, b"recur: interrupted\n", b"")


@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
@pytest.mark.parametrize("steps", ["10", "300000"])
@pytest.mark.parametrize(("out", "env"), [("-", BUFFERED), ("-", UNBUFFERED),
                                          ("/dev/stdout", BUFFERED)],
                         ids=["stdout", "unbuffered-stdout", "dev-stdout"])
def test_a_pipe_closed_before_recur_writes_ends_it_with_status_1(
    start: Start, tmp_path: Path, fmt: str, steps: str, out: str, env: dict[str, str]
) -> None:
    """Small output, held by a buffer until the flush, or large, in many writes; to
    standard output or through /dev/stdout: the first write to reach the pipe fails."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        process = _start_spec(start, tmp_path, COUNT, "--steps", steps, "-o", out, "-f", fmt,
                              stdout=writer, env=env)
    finally:
        os.close(writer)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert (process.returncode, stderr) == (1, b"")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["check", "fibonacci.yaml"],
                                  ["explain", "fibonacci.yaml"]], ids=lambda a: a[0])
def test_every_command_ends_quietly_at_a_closed_pipe(start: Start, args: list[str]) -> None:
    """Whether click writes (while it parses the options, or echoes) or recur does."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        process = start(RECUR, *args, stdout=writer, cwd=SPECS, env=BUFFERED)
    finally:
        os.close(writer)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert (process.returncode, stderr) == (1, b"")


UNFLUSHED = """\
import sys
from recur.cli.main import cli

@cli.command()
def say() -> None:
    sys.stdout.write("left in the buffer, for the interpreter to flush at exit")

cli.main(["say"])
"""


def test_output_left_in_the_buffer_meets_the_closed_pipe_quietly(start: Start) -> None:
    """The last flush, that the interpreter would do at exit with a traceback, is recur's."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        process = start([sys.executable, "-c", UNFLUSHED], stdout=writer, env=BUFFERED)
    finally:
        os.close(writer)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert (process.returncode, stderr) == (1, b"")


class _TakesHalf(io.RawIOBase):
    """A stream that takes half of each write, as a pipe whose reader leaves mid-write."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        half = max(1, len(data) // 2)
        self.taken += bytes(data)[:half]
        return half


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_a_write_taken_in_part_is_finished(fmt: str) -> None:
    """The count a stream returns is heeded, where NumPy and TextIOWrapper ignore it."""
    column = np.arange(5000, dtype=np.int64)
    stream = _TakesHalf()
    write_outputs([OutputArray("x", column, True)], "-", fmt, stdout=stream)  # type: ignore[arg-type]
    whole = io.BytesIO()
    np.save(whole, column)
    csv = "".join(f"{value}\n" for value in ["x", *range(5000)]).encode()
    assert bytes(stream.taken) == (whole.getvalue() if fmt == "npy" else csv)


def test_a_stream_that_takes_nothing_is_an_error() -> None:
    class TakesNothing(_TakesHalf):
        def write(self, data: Any) -> int:
            return 0

    with pytest.raises(UsageError, match="cannot write to standard output"):
        write_outputs([OutputArray("x", np.arange(3), True)], "-", "csv",
                      stdout=TakesNothing())  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head")
@pytest.mark.parametrize("fmt", ["csv", "npy"])
@pytest.mark.parametrize("env", [BUFFERED, UNBUFFERED], ids=["buffered", "unbuffered"])
def test_head_ends_recur_quietly_with_status_1(start: Start, tmp_path: Path, fmt: str,
                                               env: dict[str, str]) -> None:
    """`recur run ... | head`: more than a pipe holds, so some write finds it closed,
    often in the middle of a write that the pipe took in part."""
    recur = _start_spec(start, tmp_path, COUNT, *LONG, "-f", fmt, env=env)
    head = start(["head", *(["-c", "10"] if fmt == "npy" else ["-1"])], stdin=recur.stdout)
    assert recur.stdout is not None
    recur.stdout.close()  # head alone holds the pipe now
    shown, _ = head.communicate(timeout=TIMEOUT)
    _, stderr = recur.communicate(timeout=TIMEOUT)
    assert shown == (b"x\n" if fmt == "csv" else b"\x93NUMPY\x01\x00v\x00")
    assert (recur.returncode, stderr) == (1, b"")


# An object that Ctrl-C cut short in its making (a Dask future in `client.submit`), whose
# finaliser then fails when Python collects it at exit.
HALF_MADE = """\
import recur.__main__ as entry
import recur.cli.main


class HalfMade:
    def __del__(self):
        raise AttributeError("made halfway, then interrupted")


def run_command():
    global kept
    kept = [HalfMade()]
    kept.append(kept)  # a cycle: collected at exit
    raise KeyboardInterrupt


recur.cli.main.main = run_command
entry.main()
"""


def test_ctrl_c_says_nothing_of_what_it_left_half_made() -> None:
    done = subprocess.run([sys.executable, "-c", HALF_MADE], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130
    assert done.stderr == "recur: interrupted\n"
