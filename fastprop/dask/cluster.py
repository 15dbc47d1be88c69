"""Which Dask client computes: the one given, the current one, or an embedded local cluster.

With no client given and none current, :func:`get_client` starts a
:class:`distributed.LocalCluster` once per process, with one worker process of one thread per
core, keeps it for every later call and closes it when the interpreter exits (see
:func:`local_cluster` for its settings). Every client that fastprop uses gets the
:class:`WarmWorkers` plugin, so each worker loads fastprop once, when it starts, and keeps its
compiled kernels for every task after.
"""

from __future__ import annotations

import atexit
import os
import threading

import dask
from distributed import Client, LocalCluster, WorkerPlugin
from distributed import get_client as current_client

_lock = threading.Lock()
_embedded: Client | None = None
#: The clients whose workers have the plugin, by ``Client.id``.
_prepared: set[str] = set()
#: Dask settings of the embedded cluster, whose workers spend their time in compiled code: no
#: statistical profiler (it samples the Python stack, which shows nothing of the kernels, every
#: 10 ms), and the event loop's housekeeping (its health tick, the system monitor) every 1 and 2
#: seconds instead of every 20 and 500 ms. With a worker on every core, that work takes the
#: cores from the other workers' computations.
WORKER_SETTINGS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


class WarmWorkers(WorkerPlugin):
    """Loads fastprop on every worker as it starts (:func:`fastprop.dask.tasks.warm_up`): one
    numba and BLAS thread per task, and the modules of the compiled kernels and epochs."""

    name = "fastprop"
    idempotent = True

    def setup(self, worker: object) -> None:
        """Called by each worker, on registration and whenever a worker (re)starts."""
        from .tasks import warm_up

        warm_up()


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not on every platform)
        return os.cpu_count() or 1


def local_cluster(n_workers: int | None = None) -> LocalCluster:
    """A :class:`distributed.LocalCluster` set up as the embedded one, for a client of your own.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes, of one thread each; default one per core.

    Returns
    -------
    distributed.LocalCluster
        With :data:`WORKER_SETTINGS` and a dashboard on a free port; close it when done.
    """
    with dask.config.set(WORKER_SETTINGS):
        return LocalCluster(n_workers=cores() if n_workers is None else n_workers,
                            threads_per_worker=1, processes=True, dashboard_address=":0")


def _start_embedded() -> Client:
    cluster = local_cluster()
    client = Client(cluster, set_as_default=False)
    atexit.register(close_embedded)
    return client


def close_embedded() -> None:
    """Close the embedded cluster, if one was started (at exit, or to free its workers)."""
    global _embedded
    with _lock:
        if _embedded is not None:
            cluster = _embedded.cluster
            _embedded.close()
            cluster.close()
            _embedded = None


def _embedded_client() -> Client:
    global _embedded
    with _lock:
        if _embedded is None or _embedded.status != "running":
            _embedded = _start_embedded()
        return _embedded


def get_client(client: Client | None = None) -> Client:
    """The client that fastprop's distributed functions compute with.

    Parameters
    ----------
    client : distributed.Client, optional
        Any client (of a local cluster, dask-jobqueue's, dask-kubernetes', ...). Without one:
        the current client (``distributed.get_client()``), or else the embedded local cluster's,
        started on first use with one single-threaded worker process per core.

    Returns
    -------
    distributed.Client
        With fastprop's :class:`WarmWorkers` plugin registered on its workers.
    """
    if client is None:
        try:
            client = current_client()
        except ValueError:  # no client anywhere
            client = _embedded_client()
    elif not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    if client.id not in _prepared:
        client.register_plugin(WarmWorkers())
        _prepared.add(client.id)
    return client
