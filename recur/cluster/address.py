"""Where the chunks run: `local:N`, a cluster of N worker processes that recur starts
and closes, or the address of a running Dask scheduler (`tcp://host:8786`).

Dask is imported here, and only when a cluster is asked for (`recur[dask]`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from recur.diagnostics import UsageError, option
from recur.engine.c.native import note

LOCAL = "local:"
SCHEMES = ("tcp", "tls")
CONNECT_TIMEOUT = 10.0  # seconds to reach a running scheduler before giving up
WORKER_SETUP = "recur.cluster.worker"  # what a local worker process runs as it starts
TASKS = "recur.cluster.task"  # what a worker imports to run a task


@dataclass(frozen=True, slots=True)
class Address:
    """A cluster as `scheduler=` names it."""

    text: str
    workers: int | None  # local:N: N worker processes; None: a running scheduler


def parse(text: str) -> Address:
    """The cluster `text` names.

    Raises:
        UsageError: neither `local:N` (N >= 1) nor `tcp://HOST:PORT`.
    """
    if not isinstance(text, str):
        raise UsageError(f"{option('scheduler')} must be an address (a string), not {text!r}")
    if text.startswith(LOCAL):
        count = text[len(LOCAL):]
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"{option('scheduler', text)}: local:N takes a number of worker "
                             "processes N >= 1")
        return Address(text, int(count))
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise UsageError(f"{option('scheduler')} must be tcp://HOST:PORT (a running Dask "
                         f"scheduler) or local:N (N local worker processes), not {text!r}")
    return Address(text, None)


def distributed() -> Any:
    """Dask's `distributed`, or an error that names the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(f"{option('scheduler')} needs Dask's distributed, which is not "
                         "installed", notes=("pip install 'recur[dask]'",)) from None
    return distributed


@contextlib.contextmanager
def connected(address: Address) -> Iterator[Any]:
    """A Dask client of the cluster, closed (and a local cluster with it) on leaving."""
    dask = distributed()
    with contextlib.ExitStack() as stack:
        if address.workers is not None:
            stack.enter_context(_local())
            # Silent workers: closing, they log tracebacks of their own (a heartbeat to a
            # scheduler that closed first); a task's failure comes back as its exception.
            cluster = stack.enter_context(dask.LocalCluster(
                n_workers=address.workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", silence_logs=logging.CRITICAL,
                preload=[WORKER_SETUP]))
            client = stack.enter_context(dask.Client(cluster))
        else:
            try:
                client = stack.enter_context(dask.Client(address.text, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError):
                raise UsageError(f"{option('scheduler', address.text)}: no Dask scheduler "
                                 f"answered there within {CONNECT_TIMEOUT:g} s",
                                 notes=("start one with 'dask scheduler' (and workers with "
                                        "'dask worker ADDRESS'), or use local:N",)) from None
        if "dashboard" in client.scheduler_info(n_workers=0).get("services", {}):
            note(f"the Dask dashboard is at {client.dashboard_link}")
        if not client.nthreads():
            note(f"the scheduler at {address.text} has no workers yet: the tasks wait for "
                 "some to connect ('dask worker ADDRESS')")
        yield client


# Dask's background loops, slowed down in the processes of a local cluster: idle, its
# client (with the scheduler) and two workers used 0.14 s of CPU a second, 0.017 s so
# (docs/cluster.md). Each costs a diagnostic: a blocked event loop is noticed within 1 s,
# the dashboard's system plots update every 2 s, its profile of the tasks stays empty, a
# worker past its memory limit is noticed within 1 s.
QUIET = {
    "distributed.admin.tick.interval": "1s",  # 20 ms
    "distributed.admin.system-monitor.interval": "2s",  # 500 ms
    "distributed.worker.profile.enabled": False,  # a sample of the task's stack per 10 ms
    "distributed.worker.memory.monitor-interval": "1s",  # 100 ms
}


@contextlib.contextmanager
def _local() -> Iterator[None]:
    """The settings of a local cluster's processes: `QUIET`, and workers forked from a
    server process that imported Dask and recur's tasks once, where the system has one
    (not Windows): spawned afresh (Dask's default), each would import them again
    (starting two, importing recur in them and closing them took 4.4 s spawned, 1.0 s
    forked, at a load average of 5; docs/cluster.md)."""
    import dask.config
    from distributed.utils import get_mp_context

    settings: dict[str, Any] = dict(QUIET)
    forked = "forkserver" in multiprocessing.get_all_start_methods()
    if forked:
        settings["distributed.worker.multiprocessing-method"] = "forkserver"
    with dask.config.set(settings):
        if forked:
            # Dask names what the server imports on its first call; recur's tasks added
            # (a server already running keeps what it imported)
            get_mp_context().set_forkserver_preload(["distributed", TASKS])
        yield


def worker_threads(client: Any) -> int:
    """The threads of the cluster's workers (one at least: a cluster still starting)."""
    return max(1, sum(client.nthreads().values()))
