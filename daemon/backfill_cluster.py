"""The Dask side of the backfill (the one module that imports ``dask``/``distributed``).

By default a ``LocalCluster`` of worker processes with one thread each (the products' models
are not thread-safe to share, and one thread per process keeps each worker's memory bounded by
``memory_limit``); with an address, an existing scheduler (``tcp://HOST:PORT``), whose workers
must run the same heliowatch version and see the same state directory (a shared file system)
and a state database URL that reaches them. On a box with a GPU one extra worker holds the
``GPU`` resource and the analyses ask for it, so GPU inference happens in a single process.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from typing import Any

import dask
import structlog
from dask.distributed import Client, LocalCluster

__all__ = ["DaskExecutor", "open_cluster"]

log = structlog.get_logger(__name__)


class DaskExecutor:
    """:class:`heliowatch.daemon.backfill.Executor` on a Dask client: futures passed as arguments
    stay on the worker that computed them (the analyses never travel to the driver)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def submit(self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None) -> Any:
        """``client.submit`` with ``pure=False`` (every task is one record's, to be run once) and
        retries of tasks whose worker died."""
        return self.client.submit(fn, *args, pure=False, resources=resources, retries=2)


def open_cluster(
    *, address: str | None = None, workers: int = 2, memory_per_worker: str = "3GiB", gpu_worker: bool = False
) -> tuple[Client, Any]:
    """Connect to ``address``, or start a ``LocalCluster`` of ``workers`` processes (one thread each).

    Returns
    -------
    (client, cluster)
        ``cluster`` is None for an external scheduler; close both when done.
    """
    # Dask's INFO lines (worker start, connections) are noise in the backfill's log. Worker
    # processes configure their logging when they import distributed, from the environment they
    # inherit, so the level is set there before any starts (a one-shot command: nothing else runs).
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    dask.config.set({"logging.distributed": "warning"})
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        client = Client(address, timeout="30s")
        log.info("dask_connected", scheduler=address, workers=len(client.scheduler_info().get("workers", {})))
        return client, None
    dashboard = ":0" if importlib.util.find_spec("bokeh") is not None else None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_per_worker,
        dashboard_address=dashboard,
        host="127.0.0.1",
        silence_logs=logging.WARNING,
    )
    if gpu_worker:
        # One more worker of the same kind that holds the GPU (a SpecCluster entry of its own):
        # analyses that run a model ask for the resource, so one process owns the device.
        template = next(iter(cluster.new_worker_spec().values()))
        opts = {**template["options"], "resources": {"GPU": 1}}
        cluster.worker_spec["gpu"] = {**template, "options": opts}
        cluster.sync(cluster._correct_state)
    client = Client(cluster)
    client.wait_for_workers(workers + int(gpu_worker), timeout=120)
    if dashboard is not None:
        log.info("dask_dashboard", url=client.dashboard_link)
    log.info("dask_cluster", workers=workers, threads_per_worker=1, memory_per_worker=memory_per_worker, gpu_worker=gpu_worker)
    return client, cluster
