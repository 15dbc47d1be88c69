"""The loss and exact gradient of a network over Dask arrays, chunk by chunk on the workers.

Each chunk of samples is one task: the compiled backend computes that chunk's loss and gradient
(:meth:`fastprop.MLP.value_and_grad` on it) with the network's L2 penalty left out, and returns
them multiplied by the chunk's weight (its sample count, or the sum of its sample weights). A
tree of :func:`fastprop.dask.tasks.add` tasks, ``split_every`` parts per node, sums those up on
the workers up to the root, whose parts the driver adds; it divides by the total weight and adds
the L2 term once. The parameters
are one key of the graph (:func:`shared`), which every chunk's task depends on: they travel to
each worker once per call, not in each task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np
from distributed import Client

from ..network import MLP
from . import checks, tasks
from .cluster import get_client

#: Parts added up by one node of the reduction tree, unless the call says otherwise.
SPLIT_EVERY = 4


def l2_term(net: MLP, params: np.ndarray) -> tuple[float, np.ndarray]:
    """``l2 / 2 * sum ||W||^2`` (summed in float64) and its gradient ``l2 * W`` (zero for the
    biases, in the network's dtype): what the backends add to a batch's loss and gradient."""
    grad = np.zeros_like(params)
    penalty = 0.0
    if net.l2:
        l2 = net.dtype.type(net.l2)
        for (W, _), (dW, _) in zip(net.unpack(params), net.unpack(grad), strict=True):
            penalty += float(np.dot(W.ravel().astype(np.float64), W.ravel()))
            dW += l2 * W
        penalty *= 0.5 * net.l2
    return penalty, grad


def shared(params: np.ndarray) -> Any:
    """``params`` as one key of a task graph. Each worker fetches it once, from a worker that
    holds it; and, like any key, Dask computes it again if every worker that held it is lost (a
    scattered array would be lost with them). The key is random, not a hash of the values, as
    are the tasks' keys: hashing every task's arguments cost more than a small chunk's task."""
    return dask.delayed(params, pure=False)


def _parts(task: Callable[..., tasks.Part], net: MLP, params: Any,
           samples: checks.Samples, backend: str) -> list[Any]:
    """One delayed part per chunk of ``samples``, computed by ``task`` on the network without
    L2."""
    local = net.replace(l2=0.0)
    n_chunks = len(samples.bounds)
    X = samples.X.to_delayed().ravel()
    Y = samples.Y.to_delayed().ravel()
    weights = ([None] * n_chunks if samples.sample_weight is None
               else samples.sample_weight.to_delayed().ravel())
    call = dask.delayed(task, pure=False)
    return [call(local, params, x, y, w, backend, tasks.Where(index, n_chunks, start, stop))
            for index, (x, y, w, (start, stop)) in enumerate(
                zip(X, Y, weights, samples.bounds, strict=True))]


def _tree(parts: list[Any], split_every: int) -> list[Any]:
    """``parts`` summed as a tree of :func:`fastprop.dask.tasks.add` nodes of at most
    ``split_every`` parts each, in the parts' order (so the sum does not depend on which worker
    computes what), up to the root's at most ``split_every`` parts, which the driver adds: a
    task there would cost one more round trip through the scheduler."""
    add = dask.delayed(tasks.add, pure=False)
    while len(parts) > split_every:
        parts = [add(*parts[start:start + split_every])
                 for start in range(0, len(parts), split_every)]
    return parts


def _reduce(task: Callable[..., tasks.Part], net: MLP, params: np.ndarray, samples: checks.Samples,
            backend: str, client: Client, split_every: int) -> tasks.Part:
    """The sum of ``task``'s parts over every chunk, computed on ``client``'s workers."""
    roots = _tree(_parts(task, net, shared(params), samples, backend), split_every)
    total = tasks.add(*client.gather(client.compute(roots)))
    if not total.weight > 0:
        raise ValueError("sample_weight sums to 0: at least one weight must be positive")
    return total


def _checked(net: MLP, params: np.ndarray, X: Any, Y: Any, sample_weight: Any, backend: str,
             client: Client | None, split_every: int | None
             ) -> tuple[MLP, np.ndarray, checks.Samples, str, Client, int]:
    """The arguments of :func:`value_and_grad` and :func:`loss`, checked, with the client."""
    net = checks.check_network(net)
    params = checks.check_params(net, params)
    samples = checks.check_samples(net, X, Y, sample_weight)
    backend = checks.check_backend(backend)
    split_every = checks.check_split_every(SPLIT_EVERY if split_every is None else split_every)
    return net, params, samples, backend, get_client(client), split_every


def value_and_grad(net: MLP, params: np.ndarray, X: da.Array, Y: da.Array,
                   sample_weight: da.Array | None = None, backend: str = "matrix",
                   client: Client | None = None,
                   split_every: int | None = None) -> tuple[float, np.ndarray]:
    """The loss of ``net`` over all of ``X`` and its exact gradient, computed chunk by chunk.

    The result is :meth:`fastprop.MLP.value_and_grad` on the whole batch (up to rounding: the
    chunks' sums are added in another order): the mean of the samples' losses, weighted by
    ``sample_weight`` when given, plus the L2 term once.

    Parameters
    ----------
    net : fastprop.MLP
        The network.
    params : numpy.ndarray
        Flat parameters, shape ``(n_params,)``, the network's dtype.
    X : dask.array.Array
        Inputs, shape ``(n, n_inputs)``, the network's dtype, chunked along the samples only
        (chunks of any sizes).
    Y : dask.array.Array
        Targets as :meth:`fastprop.MLP.value_and_grad` takes them (rows, or integer class
        labels for ``cross_entropy`` and ``hinge``), chunked along the samples as ``X`` is.
    sample_weight : dask.array.Array, optional
        One non-negative weight per sample, chunked as ``X``. A chunk whose weights are all zero
        adds nothing (its samples are not read).
    backend : str, default "matrix"
        The backend that computes each chunk on its worker.
    client : distributed.Client, optional
        The cluster to compute on; by default the current client or the embedded local cluster
        (see :func:`fastprop.dask.get_client`).
    split_every : int, optional
        Parts added up by one node of the reduction tree (default 4), from 2 up.

    Returns
    -------
    loss : float
    grad : numpy.ndarray
        Shape ``(n_params,)``, the network's dtype.

    Raises
    ------
    TypeError, ValueError
        Bad arguments, named in the message, before anything is computed; a chunk that fastprop
        refuses (NaN in it, say) raises fastprop's error prefixed with the chunk's index and
        samples.
    """
    return checked_value_and_grad(*_checked(net, params, X, Y, sample_weight, backend, client,
                                            split_every))


def checked_value_and_grad(net: MLP, params: np.ndarray, samples: checks.Samples, backend: str,
                           client: Client, split_every: int) -> tuple[float, np.ndarray]:
    """:func:`value_and_grad` on arguments already checked (and a client already chosen)."""
    total = _reduce(tasks.chunk_value_and_grad, net, params, samples, backend, client,
                    split_every)
    penalty, grad = l2_term(net, params)
    grad += total.grad / net.dtype.type(total.weight)
    return total.loss / total.weight + penalty, grad


def loss(net: MLP, params: np.ndarray, X: da.Array, Y: da.Array,
         sample_weight: da.Array | None = None, backend: str = "matrix",
         client: Client | None = None, split_every: int | None = None) -> float:
    """The loss of ``net`` over all of ``X`` (forward passes only); arguments as in
    :func:`value_and_grad`."""
    net, params, samples, backend, client, split_every = _checked(
        net, params, X, Y, sample_weight, backend, client, split_every)
    total = _reduce(tasks.chunk_loss, net, params, samples, backend, client, split_every)
    return total.loss / total.weight + l2_term(net, params)[0]


def forward(net: MLP, params: np.ndarray, X: da.Array, backend: str = "matrix") -> da.Array:
    """The network's outputs on ``X``, as a Dask array with ``X``'s chunks along the samples.

    Nothing is computed here: each chunk's outputs are one task (:meth:`fastprop.MLP.forward`
    on the chunk), run by whatever computes the result. ``params`` is copied into the graph
    once, as one key that the chunks' tasks share (:func:`shared`).

    Parameters
    ----------
    net : fastprop.MLP
        The network.
    params : numpy.ndarray
        Flat parameters, the network's dtype.
    X : dask.array.Array
        Inputs, as for :func:`value_and_grad`.
    backend : str, default "matrix"
        The backend that computes each chunk.

    Returns
    -------
    dask.array.Array
        Shape ``(n, n_outputs)``, the network's dtype.
    """
    net = checks.check_network(net)
    params = checks.check_params(net, params)
    samples = checks.check_samples(net, X, targets=False)
    backend = checks.check_backend(backend)
    n_chunks = len(samples.bounds)
    return samples.X.map_blocks(
        tasks.chunk_forward, net, shared(params.copy()), backend, n_chunks,
        chunks=(samples.X.chunks[0], (net.n_outputs,)), dtype=net.dtype,
        meta=np.empty((0, net.n_outputs), net.dtype))
