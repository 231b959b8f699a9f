"""The progress bar: on a terminal after a second, never in a pipe, never with --quiet."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from recur.cli.progress import SHOW_AFTER, ProgressBar, render_line

# Several seconds in the interpreter on any machine we know, so that the bar is due.
LONG_SPEC = ('steps: 1000000\noutputs:\n  x: {initial: 0.5, step: '
             '"sin(x[t-1]) + cos(x[t-1]) * tanh(x[t-1] * 0.5) - sin(x[t-1] * 0.25) / 7"}\n')
# Only against a hang: a loaded machine may take many times as long as an idle one.
TIMEOUT = 600


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_drawn_in_the_first_second() -> None:
    stream, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(stream, clock)
    clock.now = SHOW_AFTER / 2
    bar(10, 100)
    bar.close()
    assert stream.getvalue() == ""


def test_the_bar_shows_steps_rate_and_time_left_then_erases_itself() -> None:
    stream, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(stream, clock)
    clock.now = 2.0
    bar(500_000, 1_000_000)
    drawn = stream.getvalue()
    assert drawn.startswith("\r 50% |############            | 500,000/1,000,000 steps")
    assert "250.0k steps/s" in drawn and "0:00:02 left" in drawn
    bar.close()
    assert stream.getvalue().endswith("\r" + " " * (len(drawn) - 1) + "\r")


def test_render_line_at_the_edges() -> None:
    assert render_line(0, 10, 0.0).startswith("  0% |")
    assert "3.0M steps/s" in render_line(3_000_000, 6_000_000, 1.0)


def _run_on_a_terminal(args: list[str], tmp_path: Path) -> tuple[int, str]:
    """Run recur with stderr on a pseudo-terminal; return its exit status and what it drew."""
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG_SPEC)
    controller, terminal = pty.openpty()
    # The interpreter: the compiled loop would finish before a bar is due.
    proc = subprocess.Popen([sys.executable, "-m", "recur", "run", str(spec), "--last",
                             "--engine", "interp", *args],
                            stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    try:
        drawn = _read_until_closed(controller)
        return proc.wait(timeout=TIMEOUT), drawn.decode(errors="replace")
    finally:
        os.close(controller)
        if proc.poll() is None:  # a test that failed leaves nothing running
            proc.kill()
            proc.wait()


def _read_until_closed(controller: int) -> bytes:
    drawn = b""
    while True:
        ready, _, _ = select.select([controller], [], [], TIMEOUT)
        if not ready:
            return drawn
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process is done
            return drawn
        if not chunk:
            return drawn
        drawn += chunk

@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_a_long_run_on_a_terminal_shows_progress(tmp_path: Path) -> None:
    status, drawn = _run_on_a_terminal([], tmp_path)
    assert status == 0
    assert "steps/s" in drawn and "/1,000,000 steps" in drawn
    quiet_status, quiet = _run_on_a_terminal(["--quiet"], tmp_path)
    assert quiet_status == 0 and quiet == ""


@pytest.mark.slow
def test_a_pipe_gets_no_progress(tmp_path: Path) -> None:
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG_SPEC)
    result = subprocess.run([sys.executable, "-m", "recur", "run", str(spec), "--last",
                             "--engine", "interp"],
                            capture_output=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout.startswith(b"x\n")
