"""The `recur` command and `python -m recur`: Ctrl-C is handled before the rest is imported.

Importing click, NumPy and the engines takes a noticeable part of a second; a Ctrl-C
then gives the same line and exit status as one during a run, not a traceback. So this
module imports only `signal` and `sys` before it installs the handling.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130


def main() -> None:
    """The console script's entry point."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_ctrl_c)  # not when started with it ignored
        from recur.cli.main import main as run_command

        try:
            run_command()
            status: str | int | None = 0
        except SystemExit as done:
            status = done.code
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # decided: nothing is left to stop
    except KeyboardInterrupt:
        status = _interrupted()
    sys.exit(status)


def _on_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """One Ctrl-C stops recur; a second one cannot cut its cleanup or message short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _interrupted() -> int:
    """Say so, and say nothing more: an object that Ctrl-C cut short in the middle of its
    making (a Dask future, say) fails in its finaliser at exit, which Python would print
    as an "Exception ignored" traceback after this line."""
    try:
        sys.stderr.write("recur: interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # no standard error to say it on
        pass
    sys.unraisablehook = _quiet
    return EXIT_INTERRUPTED


def _quiet(unraisable: object) -> None:
    """An interrupted run's leftovers failing as they are collected: nothing to tell."""


if __name__ == "__main__":
    main()
