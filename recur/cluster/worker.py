"""Set-up of the worker processes of a local cluster (a Dask preload, `dask_setup`).

Ctrl-C at a terminal reaches the whole process group, local workers too; it is the
client's to handle: recur closes the cluster and says it was interrupted. A worker
that took it too would print a traceback of its own on the way down.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Ignore Ctrl-C in this worker process (Dask calls this in its main thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
