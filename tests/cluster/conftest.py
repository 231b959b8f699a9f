"""One local Dask cluster of two worker processes for the cluster tests (starting one
costs seconds): tests reach it by its address, as they would a real one."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """The scheduler's address of a running `LocalCluster` of 2 single-thread processes."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as local:
        yield local.scheduler_address
