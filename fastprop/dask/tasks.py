"""What runs on the workers: one chunk's loss and gradient, their sums, one group's local epochs.

Every function here is a task of :mod:`fastprop.dask`'s graphs. Each chunk is computed by the
compiled backend (:meth:`fastprop.MLP.value_and_grad` on the chunk), and partial results are
sums, not means, so that adding them up in any tree gives the batch's weighted mean at the end.
A worker keeps one network object per architecture (:func:`network`), and with it the backend's
buffers and the direct path of repeated calls, from one task to the next.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

import fastprop as fp


class Part(NamedTuple):
    """A sum over some chunks: their weight (samples, or the sum of their sample weights), the sum
    of their weighted losses, and the sum of their weighted gradients (None for losses alone)."""

    weight: float
    loss: float
    grad: np.ndarray | None


class Where(NamedTuple):
    """Which chunk (or group of samples, in local SGD) a task computes, for its errors."""

    index: int
    count: int
    start: int
    stop: int
    kind: str = "chunk"

    def __str__(self) -> str:
        return (f"{self.kind} {self.index} of {self.count} (samples {self.start} to "
                f"{self.stop - 1})")


@functools.lru_cache(maxsize=16)
def network(net: fp.MLP) -> fp.MLP:
    """This worker's copy of ``net``: the same object for every task on an equal network, so the
    backend's buffers and the direct path of repeated calls carry over between tasks."""
    return net


@contextmanager
def naming(where: Where) -> Iterator[None]:
    """Re-raise fastprop's ``TypeError`` or ``ValueError`` with the chunk named first."""
    try:
        yield
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None


def _rows(array: np.ndarray) -> np.ndarray:
    """A chunk as the kernels take it: C-contiguous (a view when it already is)."""
    return np.ascontiguousarray(array)


def _chunk(net: fp.MLP, params: np.ndarray, X: np.ndarray, Y: np.ndarray,
           sample_weight: np.ndarray | None, backend: str, where: Where, with_grad: bool) -> Part:
    """One chunk's weight (its sample count, or its weights' sum), weighted loss sum and, with
    ``with_grad``, weighted gradient sum (``net`` without L2); a chunk of zero weights adds
    nothing and is not computed."""
    net = network(net)
    X, Y = _rows(X), _rows(Y)
    weights = None if sample_weight is None else _rows(sample_weight)
    with naming(where):
        if weights is not None and not np.any(weights):
            return Part(0.0, 0.0, np.zeros(net.n_params, net.dtype) if with_grad else None)
        weight = (float(X.shape[0]) if weights is None
                  else float(weights.astype(net.dtype).sum(dtype=np.float64)))
        if not with_grad:
            loss = net.loss(params, X, Y, sample_weight=weights, backend=backend)
            return Part(weight, loss * weight, None)
        loss, grad = net.value_and_grad(params, X, Y, sample_weight=weights, backend=backend)
    grad *= net.dtype.type(weight)
    return Part(weight, loss * weight, grad)


def chunk_value_and_grad(net: fp.MLP, params: np.ndarray, X: np.ndarray, Y: np.ndarray,
                         sample_weight: np.ndarray | None, backend: str, where: Where) -> Part:
    """One chunk's weight, weighted loss sum and weighted gradient sum (``net`` without L2)."""
    return _chunk(net, params, X, Y, sample_weight, backend, where, True)


def chunk_loss(net: fp.MLP, params: np.ndarray, X: np.ndarray, Y: np.ndarray,
               sample_weight: np.ndarray | None, backend: str, where: Where) -> Part:
    """One chunk's weight and weighted loss sum (``net`` without L2)."""
    return _chunk(net, params, X, Y, sample_weight, backend, where, False)


def chunk_forward(X: np.ndarray, net: fp.MLP, params: np.ndarray, backend: str, n_chunks: int,
                  block_info: dict | None = None) -> np.ndarray:
    """One chunk's outputs after the output activation (``block_info``: where the chunk is, as
    ``dask.array.map_blocks`` passes it)."""
    net = network(net)
    (index, _), ((start, stop), _) = (block_info[0]["chunk-location"],
                                      block_info[0]["array-location"])
    with naming(Where(index, n_chunks, start, stop)):
        return net.forward(params, _rows(X), backend=backend)


def add(*parts: Part) -> Part:
    """The sum of some parts: one node of the reduction tree."""
    grads = [part.grad for part in parts]
    total = None
    if grads[0] is not None:
        total = grads[0].copy()
        for grad in grads[1:]:
            total += grad
    return Part(sum(part.weight for part in parts), sum(part.loss for part in parts), total)


class Round(NamedTuple):
    """What one group's local epochs give the driver: the parameters they reached, the training
    loss of each epoch, each epoch's learning rate, and why they stopped."""

    params: np.ndarray
    loss: list[float]
    learning_rate: list[float]
    stopped: str


def local_epochs(net: fp.MLP, params: np.ndarray, X: np.ndarray, Y: np.ndarray,
                 sample_weight: np.ndarray | None, start: fp.TrainState | np.random.Generator,
                 settings: dict[str, Any], where: Where) -> tuple[Round, fp.TrainState]:
    """``fp.train`` on one group's samples (and their weights) from ``params`` (a copy), for
    ``settings["epochs"]`` epochs; ``start`` is the group's state from its last round, or its
    shuffle generator in the first (whose data is then checked, as ``fp.train`` checks it)."""
    net = network(net)
    mine = params.copy()
    first = isinstance(start, np.random.Generator)
    resume = {"seed": start, "resume": None} if first else {"seed": None, "resume": start}
    with naming(where), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence: the driver warns
        history = fp.train(net, mine, _rows(X), _rows(Y), sample_weight=sample_weight,
                           progress=False, check_finite=first, **resume, **settings)
    return Round(mine, history.loss, history.learning_rate, history.stopped), history.state


def round_result(result: tuple[Round, fp.TrainState]) -> Round:
    """The part of :func:`local_epochs`' result that goes to the driver (the state stays)."""
    return result[0]


def round_state(result: tuple[Round, fp.TrainState]) -> fp.TrainState:
    """The group's training state, for its next round."""
    return result[1]


def warm_up() -> None:
    """Set up a worker for fastprop's tasks: one thread per task (the worker runs one task per
    thread it has) and fastprop's training loaded, so a task compiles nothing but its kernels'
    first signatures."""
    import fastprop.training  # noqa: F401  (numba and the compiled epoch's module)

    fp.set_num_threads(1)
