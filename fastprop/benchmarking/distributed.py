"""The distributed contender of ``fastprop compare --dask``: :func:`fastprop.dask.value_and_grad`
on the embedded local cluster.

The case's batch is split into one chunk per worker and persisted on the workers once per case
(not timed); each timed call passes the parameters and computes one distributed gradient, so its
time is what a user pays per gradient: the graph, the scheduler, the parameters' trip to the
workers, the chunks' gradients and their sum. It is checked against the float64 reference like
every other contender. It is never one of the default peers: it starts a cluster.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .cases import NETWORK
from .results import TIMED, Result, rows

__all__ = ["DASK", "make_dask", "overhead_lines", "unavailable_reason"]

#: The contender's name in the table.
DASK = "dask"


def unavailable_reason() -> str | None:
    """Why the Dask contender cannot run here (Dask or distributed missing), or None."""
    try:
        importlib.import_module("fastprop.dask")
    except ImportError as error:
        return f"needs Dask and distributed: pip install \"fastprop[dask]\" ({error})"
    return None


def make_dask(sizes: Sequence[int], dtype: DTypeLike = np.float64) -> Any:
    """:func:`fastprop.dask.value_and_grad` on the embedded cluster, as a peer-like callable.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, ..., nM]``.
    dtype : dtype-like
        Floating dtype of params, X and Y.

    Returns
    -------
    callable
        ``f(params, X, Y) -> (loss, grad)``. The first call with given ``X`` and ``Y`` splits
        them into one chunk per worker and persists them on the workers (the same arrays again
        reuse them); every call sends ``params`` and computes one distributed gradient.
    """
    import dask.array as da
    from distributed import futures_of

    import fastprop.dask as fpd

    from ..network import MLP

    net = MLP(sizes, dtype=dtype, **NETWORK)
    client = fpd.get_client()
    state: dict[str, Any] = {"key": None}

    def load(X: NDArray, Y: NDArray) -> None:
        key = (id(X), id(Y))
        if state["key"] != key:
            workers = max(1, len(client.scheduler_info()["workers"]))
            rows_per_chunk = math.ceil(X.shape[0] / workers)
            held = client.persist([da.from_array(a, chunks=(rows_per_chunk, -1))
                                   for a in (X, Y)])
            client.submit(len, futures_of(held), pure=False).result()  # all held
            state["key"], state["X"], state["Y"] = key, held[0], held[1]

    def value_and_grad(params: NDArray, X: NDArray, Y: NDArray) -> tuple[float, NDArray]:
        load(X, Y)
        return fpd.value_and_grad(net, params, state["X"], state["Y"], client=client)

    return value_and_grad


def overhead_lines(results: Sequence[Result], baseline: str) -> list[str]:
    """One line per case where both the Dask contender and ``baseline`` were timed: the
    distributed call's time and its overhead over the baseline's call on one process."""
    lines = []
    for case, row, base in rows(results, baseline):
        if DASK in row and row[DASK].status in TIMED and baseline != DASK \
                and not math.isnan(base):
            seconds = row[DASK].seconds
            lines.append(f"dask at {case.label}: {seconds * 1e6:.1f} us per distributed "
                         f"gradient, {(seconds - base) * 1e6:.1f} us over {baseline}'s")
    return lines
