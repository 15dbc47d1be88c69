"""Training over Dask arrays: full-batch L-BFGS on the distributed gradient, or local SGD.

``method="lbfgs"``
    SciPy's L-BFGS-B (``scipy.optimize.minimize(method="L-BFGS-B", jac=True)``) on
    :func:`fastprop.dask.value_and_grad` over all the samples: one distributed gradient per
    evaluation, and the same iterates as on one machine, up to rounding.
``method="local-sgd"``
    The samples are split into ``groups`` contiguous parts (one per worker by default), each
    held by one worker. Every round, each group runs ``average_every`` epochs of
    :func:`fastprop.train` (its compiled epochs) from the current parameters, and the driver
    averages the groups' parameter vectors, weighted by their sample counts. Each group keeps
    its own optimizer state (Adam's moments and step count, SGD's velocity) and shuffle
    generator from round to round on its worker: the moments describe the gradients of the
    group's own samples, and starting them again every round would restart Adam's bias
    correction, whose first steps are the largest.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from distributed import Client
from tqdm.auto import tqdm

from .. import _validate as v
from ..backends import BACKENDS
from ..network import MLP
from ..optimizers import Optimizer, get_optimizer
from ..training import History as TrainHistory
from . import checks, tasks
from .cluster import get_client
from .gradient import SPLIT_EVERY, checked_value_and_grad

METHODS = ("lbfgs", "local-sgd")
#: Each method's own options, and their defaults.
OPTIONS = {
    "lbfgs": {"max_iter": 200, "max_fun": 15000, "tol": 1e-5},
    "local-sgd": {"optimizer": "adam", "epochs": 10, "batch_size": None, "shuffle": True,
                  "seed": None, "average_every": 1, "groups": None},
}


@dataclass
class History(TrainHistory):
    """What :func:`fastprop.dask.train` did: :class:`fastprop.History`'s record, and more.

    ``loss`` has one entry per L-BFGS iteration (the loss at the new point) or per local-SGD
    epoch (the mean over samples of their minibatch's loss, over all groups); ``learning_rate``
    is the first group's per epoch (empty for L-BFGS). ``stopped`` is ``"epochs"``,
    ``"callback"`` or ``"diverged"`` as for :func:`fastprop.train`, and for L-BFGS also
    ``"converged"``, ``"max_iter"``, ``"max_fun"`` or ``"abnormal"`` (SciPy's ``message``
    says why). ``state`` is None: local SGD's states stay on the workers.

    Attributes
    ----------
    method : str
        ``"lbfgs"`` or ``"local-sgd"``.
    evaluations : int
        Distributed loss-and-gradient evaluations (L-BFGS).
    groups : int
        Groups of samples trained apart (local SGD).
    message : str
        SciPy's message (L-BFGS).
    """

    method: str = "lbfgs"
    evaluations: int = 0
    groups: int = 0
    message: str = ""


class Objective:
    """``x -> (loss, gradient)`` for SciPy: :func:`fastprop.dask.value_and_grad` at the float64
    vector ``x`` (converted to the network's dtype), the gradient back in float64.

    The arguments are checked and the client chosen once, when the objective is made; each call
    computes one distributed gradient and counts it in ``evaluations``.

    Parameters
    ----------
    net : fastprop.MLP
        The network.
    X, Y, sample_weight, backend, client, split_every
        As for :func:`fastprop.dask.value_and_grad`.
    """

    def __init__(self, net: MLP, X: da.Array, Y: da.Array, sample_weight: da.Array | None = None,
                 backend: str = "matrix", client: Client | None = None,
                 split_every: int | None = None) -> None:
        self.net = checks.check_network(net)
        self.samples = checks.check_samples(net, X, Y, sample_weight)
        self.backend = checks.check_backend(backend)
        self.split_every = checks.check_split_every(
            SPLIT_EVERY if split_every is None else split_every)
        self.client = get_client(client)
        self.evaluations = 0

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.ascontiguousarray(x, dtype=self.net.dtype)
        loss, grad = checked_value_and_grad(self.net, params, self.samples, self.backend,
                                            self.client, self.split_every)
        self.evaluations += 1
        return loss, grad.astype(np.float64)


def _options(method: object, given: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The method's options: those given, the defaults for the rest; an option of the other
    method is refused rather than ignored."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    for other, names in OPTIONS.items():
        stray = [name for name in names if other != method and given[name] is not None]
        if stray:
            raise ValueError(f"{', '.join(stray)}: option(s) of method={other!r}, not of "
                             f"method={method!r}")
    return method, {name: default if given[name] is None else given[name]
                    for name, default in OPTIONS[method].items()}


def _lbfgs(objective: Objective, params: np.ndarray, options: dict[str, Any],
           callback: Callable[[History], bool | None] | None, progress: bool) -> History:
    """L-BFGS-B from ``params`` (updated to the result)."""
    from scipy.optimize import minimize

    max_iter = options["max_iter"]
    history = History(method="lbfgs")
    with tqdm(total=max_iter, disable=not progress, unit="iteration", desc="lbfgs") as bar:

        def iteration_ends(intermediate_result: Any) -> None:
            history.loss.append(float(intermediate_result.fun))
            bar.set_postfix({"loss": f"{history.loss[-1]:.4g}"}, refresh=False)
            bar.update()
            if callback is not None and callback(history):
                raise StopIteration

        result = minimize(objective, params.astype(np.float64), method="L-BFGS-B", jac=True,
                          callback=iteration_ends,
                          options={"maxiter": max_iter, "maxfun": options["max_fun"],
                                   "gtol": options["tol"]})
    params[:] = result.x
    history.evaluations = objective.evaluations
    history.message = str(result.message)
    if result.status == 0:
        history.stopped = "converged"
    elif result.status == 1:
        history.stopped = "max_iter" if result.nit >= max_iter else "max_fun"
    elif result.status == 99:
        history.stopped = "callback"
    else:
        history.stopped = "abnormal"
    return history


def _check_lbfgs(options: dict[str, Any]) -> dict[str, Any]:
    """L-BFGS's options, checked."""
    return {"max_iter": v.check_integer("max_iter", options["max_iter"], 1),
            "max_fun": v.check_integer("max_fun", options["max_fun"], 1),
            "tol": v.check_real("tol", options["tol"], 0.0)}


def _check_local_sgd(options: dict[str, Any], n: int, backend: str) -> dict[str, Any]:
    """Local SGD's options, checked (the groups' sizes against the batch size later, when the
    number of groups is known)."""
    if BACKENDS[backend].device:
        raise ValueError(f"method='local-sgd' trains with fastprop.train, on the CPU backends, "
                         f"not on {backend!r}")
    checked = {
        "optimizer": get_optimizer(options["optimizer"]),
        "epochs": v.check_integer("epochs", options["epochs"], 1),
        "shuffle": v.check_flag("shuffle", options["shuffle"]),
        "seed": v.check_seed(options["seed"]),
        "average_every": v.check_integer("average_every", options["average_every"], 1),
        "groups": options["groups"],
        "batch_size": options["batch_size"],
    }
    if checked["groups"] is not None:
        v.check_integer("groups", checked["groups"], 1, n, high_name="the number of samples")
    if checked["batch_size"] is not None:
        v.check_integer("batch_size", checked["batch_size"], 1)
    return checked


def _group_sizes(n: int, groups: int, batch_size: int | None) -> list[int]:
    """Contiguous groups of samples, as even as can be, each with a batch's samples at least."""
    groups = v.check_integer("groups", groups, 1, n, high_name="the number of samples")
    sizes = [len(part) for part in np.array_split(np.arange(n), groups)]
    if batch_size is not None:
        v.check_integer("batch_size", batch_size, 1, sizes[-1],
                        high_name=f"the samples of the smallest of {groups} groups")
    return sizes


class _LocalSGD:
    """Local SGD's rounds: the groups' data and states on the workers, the average here."""

    def __init__(self, net: MLP, samples: checks.Samples, options: dict[str, Any],
                 backend: str, client: Client) -> None:
        self.net, self.client = net, client
        self.epochs, self.average_every = options["epochs"], options["average_every"]
        groups = options["groups"] or len(client.scheduler_info()["workers"])
        self.sizes = _group_sizes(samples.X.shape[0], groups, options["batch_size"])
        self.settings = {"optimizer": options["optimizer"], "batch_size": options["batch_size"],
                         "shuffle": options["shuffle"], "backend": backend}
        # One block per group, held on the workers for the whole training.
        arrays = [samples.X, samples.Y]
        if samples.sample_weight is not None:
            arrays.append(samples.sample_weight)
        blocks = [array.rechunk({0: tuple(self.sizes)}).to_delayed().ravel() for array in arrays]
        held = client.compute([block for group in blocks for block in group])
        n = len(self.sizes)
        self.X, self.Y = held[:n], held[n:2 * n]
        self.weights: list[Any] = held[2 * n:] or [None] * n
        # The groups' shares in the average: their sample counts, or their weight sums.
        self.shares = (client.gather(client.map(np.sum, self.weights)) if len(held) > 2 * n
                       else self.sizes)
        stops = np.cumsum(self.sizes).tolist()
        self.where = [tasks.Where(g, len(self.sizes), stop - size, stop, "group")
                      for g, (size, stop) in enumerate(zip(self.sizes, stops, strict=True))]
        self.states: list[Any] = options["seed"].spawn(len(self.sizes))

    def round(self, params: np.ndarray, epochs: int) -> list[tasks.Round]:
        """``epochs`` local epochs in every group from ``params``; the groups' results."""
        client = self.client
        # One task holds the parameters (computed again if its worker is lost).
        shared = client.submit(np.copy, params, pure=False)
        settings = {**self.settings, "epochs": epochs}
        results = [client.submit(tasks.local_epochs, self.net, shared, x, y, w, state,
                                 settings, where, pure=False)
                   for x, y, w, state, where in zip(self.X, self.Y, self.weights, self.states,
                                                    self.where, strict=True)]
        rounds = client.gather([client.submit(tasks.round_result, result, pure=False)
                                for result in results])
        self.states = [client.submit(tasks.round_state, result, pure=False)
                       for result in results]
        shared.release()
        return rounds

    def average(self, rounds: list[tasks.Round], params: np.ndarray) -> None:
        """Write the groups' parameters, weighted by their sample counts (or weight sums),
        into ``params``."""
        total = np.zeros(params.shape, np.float64)
        for share, result in zip(self.shares, rounds, strict=True):
            total += share * result.params.astype(np.float64)
        params[:] = total / sum(self.shares)

    def record(self, history: History, rounds: list[tasks.Round], epochs: int) -> None:
        """Each epoch's loss over all groups (NaN from a group's divergence on)."""
        for epoch in range(epochs):
            losses = [result.loss[epoch] if epoch < len(result.loss) else math.nan
                      for result in rounds]
            history.loss.append(float(np.dot(self.sizes, losses)) / sum(self.sizes))
            first = rounds[0].learning_rate
            history.learning_rate.append(first[epoch] if epoch < len(first) else math.nan)

    def close(self) -> None:
        """Let the workers drop the groups' data and states."""
        for held in (*self.X, *self.Y, *self.weights, *self.states):
            if hasattr(held, "release"):  # (the first round's states are generators)
                held.release()


def _local_sgd(net: MLP, params: np.ndarray, samples: checks.Samples, options: dict[str, Any],
               callback: Callable[[History], bool | None] | None, progress: bool, backend: str,
               client: Client) -> History:
    """Local SGD from ``params`` (updated to each round's average)."""
    rounds = _LocalSGD(net, samples, options, backend, client)
    history = History(method="local-sgd", groups=len(rounds.sizes))
    done = 0
    try:
        with tqdm(total=rounds.epochs, disable=not progress, unit="epoch",
                  desc="local-sgd") as bar:
            while done < rounds.epochs:
                epochs = min(rounds.average_every, rounds.epochs - done)
                results = rounds.round(params, epochs)
                rounds.record(history, results, epochs)
                done += epochs
                bar.set_postfix({"loss": f"{history.loss[-1]:.4g}"}, refresh=False)
                bar.update(epochs)
                if any(result.stopped == "diverged" for result in results):
                    warnings.warn(f"training diverged by epoch {done} (loss "
                                  f"{history.loss[-1]}): try a lower learning rate",
                                  RuntimeWarning, stacklevel=3)
                    history.stopped = "diverged"
                    break
                rounds.average(results, params)
                if callback is not None and callback(history):
                    history.stopped = "callback"
                    break
    finally:
        rounds.close()
    return history


def train(net: MLP, params: np.ndarray, X: da.Array, Y: da.Array, *, method: str = "lbfgs",
          sample_weight: da.Array | None = None, max_iter: int | None = None,
          max_fun: int | None = None, tol: float | None = None,
          optimizer: str | Optimizer | None = None, epochs: int | None = None,
          batch_size: int | None = None, shuffle: bool | None = None,
          seed: int | np.random.Generator | None = None, average_every: int | None = None,
          groups: int | None = None, callback: Callable[[History], bool | None] | None = None,
          progress: bool = True, backend: str = "matrix", client: Client | None = None,
          split_every: int | None = None) -> History:
    """Train ``net`` on Dask arrays, updating ``params`` in place.

    Parameters
    ----------
    net : fastprop.MLP
        The network.
    params : numpy.ndarray
        Flat parameters, the network's dtype, writable: trained in place.
    X, Y : dask.array.Array
        The training data, as for :func:`fastprop.dask.value_and_grad`.
    method : {"lbfgs", "local-sgd"}, default "lbfgs"
        Full-batch L-BFGS-B on the distributed gradient, or local SGD with parameter averaging
        (see :mod:`fastprop.dask.training`).
    sample_weight : dask.array.Array, optional
        One weight per sample, as for :func:`fastprop.dask.value_and_grad`. With
        ``"local-sgd"`` each group trains on its weighted samples, and the average weighs the
        groups by their weight sums (every group needs a positive one).
    max_iter, max_fun, tol : optional
        ``"lbfgs"`` only: SciPy's ``maxiter`` (default 200), ``maxfun`` (15000) and ``gtol``
        (1e-5).
    optimizer, epochs, batch_size, shuffle : optional
        ``"local-sgd"`` only: as for :func:`fastprop.train` (``"adam"``, 10 epochs, batch size
        ``min(32, group's samples)``, shuffled), in every group.
    seed : int, numpy.random.Generator or None
        ``"local-sgd"`` only: group ``g`` shuffles with the generator
        ``numpy.random.default_rng(seed).spawn(groups)[g]``, so training is reproducible for a
        given seed and number of groups, whatever the chunks and the workers.
    average_every : int, optional
        ``"local-sgd"`` only: epochs between two averages (default 1).
    groups : int, optional
        ``"local-sgd"`` only: parts that the samples are split into, each trained on one
        worker (default: the cluster's worker count when training starts).
    callback : callable, optional
        ``callback(history)`` after every L-BFGS iteration or every average; return ``True``
        to stop. ``params`` holds the current point then.
    progress : bool, default True
        Show a tqdm progress bar over the iterations or epochs.
    backend : str, default "matrix"
        The backend on the workers (a CPU backend for ``"local-sgd"``).
    client : distributed.Client, optional
        As for :func:`fastprop.dask.value_and_grad`.
    split_every : int, optional
        ``"lbfgs"``: the fan-in of the gradient's reduction tree (default 4).

    Returns
    -------
    History
        The losses, why training stopped, its time, and the method's counts.

    Raises
    ------
    TypeError, ValueError
        Bad arguments, named in the message, before anything is trained.
    """
    given = {"max_iter": max_iter, "max_fun": max_fun, "tol": tol, "optimizer": optimizer,
             "epochs": epochs, "batch_size": batch_size, "shuffle": shuffle, "seed": seed,
             "average_every": average_every, "groups": groups}
    method, options = _options(method, given)
    net = checks.check_network(net)
    params = checks.check_params(net, params)
    if not params.flags.writeable:
        raise ValueError("params is read-only: train updates it in place")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    progress = v.check_flag("progress", progress)
    start = time.perf_counter()
    if method == "lbfgs":
        options = _check_lbfgs(options)
        objective = Objective(net, X, Y, sample_weight, backend, client, split_every)
        history = _lbfgs(objective, params, options, callback, progress)
    else:
        if split_every is not None:
            raise ValueError("split_every: an option of method='lbfgs', not of "
                             "method='local-sgd'")
        samples = checks.check_samples(net, X, Y, sample_weight)
        backend = checks.check_backend(backend)
        options = _check_local_sgd(options, samples.X.shape[0], backend)
        history = _local_sgd(net, params, samples, options, callback, progress, backend,
                             get_client(client))
    history.seconds = time.perf_counter() - start
    return history
