"""Minibatch training of an :class:`~fastprop.MLP`: :func:`train`, one compiled call per epoch.

On the CPU backends, a whole epoch runs in one compiled call (:func:`_epoch`): for each minibatch
it gathers the samples into a batch buffer, calls the backend's compiled gradient (the same
entry point as :meth:`MLP.value_and_grad`) and the optimizer's compiled update
(:func:`fastprop.optimizers.step`). Python runs once per epoch: the shuffle, the schedule's
learning rate, the validation pass, early stopping, the callback and the progress bar.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FunctionType

import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from . import _validate as v
from ._jit import jit
from ._kernel_ids import OK
from .backends import BACKENDS, DEFAULT_BACKEND, get_backend
from .cpu.common import check_values
from .cpu.views import borrowed
from .network import MLP
from .optimizers import Optimizer, get_optimizer, step
from .shuffling import permutation

#: What :class:`EarlyStopping` can watch.
MONITORS = ("loss", "val_loss", "val_score")


def _epoch(layout, loss_id, l2, params, X, Y, labels, sample_weights, order, kind, hyper, lr,
           steps, state, grad, work, n_threads, X_batch, Y_batch, label_batch, weight_batch):
    """One epoch: minibatches of ``X_batch.shape[0]`` samples taken in ``order``, the last one
    smaller when the batch size does not divide the sample count.

    Runs compiled, as a copy made by :func:`_compiled_epoch`, in which :func:`_gradient` is a
    backend's compiled entry point (:mod:`fastprop.cpu.common`), called without the finiteness
    check (:func:`train` checks the data once, up front). ``Y`` (float targets) or ``labels``
    (integer labels) is empty, and so is its batch buffer; ``sample_weights`` has one weight per
    sample (ones when unweighted). Returns ``(status, loss, steps)``: the first nonzero status of
    a gradient call (the epoch stops there), the mean over samples of their minibatch's loss (each
    taken before its update), and the updated count of optimizer steps.
    """
    layout, params, X, Y = borrowed(layout), borrowed(params), borrowed(X), borrowed(Y)
    labels, sample_weights = borrowed(labels), borrowed(sample_weights)
    order, hyper = borrowed(order), borrowed(hyper)
    state, grad, work = borrowed(state), borrowed(grad), borrowed(work)
    X_batch, Y_batch, label_batch = borrowed(X_batch), borrowed(Y_batch), borrowed(label_batch)
    weight_batch = borrowed(weight_batch)
    n = order.shape[0]
    batch_size = X_batch.shape[0]
    total = 0.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        Xb = X_batch[:m]
        Yb = Y_batch[:m]
        lb = label_batch[:m]
        wb = weight_batch[:m]
        for i in range(m):
            source = order[start + i]
            wb[i] = sample_weights[source]
            for j in range(X.shape[1]):
                Xb[i, j] = X[source, j]
            for j in range(Yb.shape[1] if Yb.shape[0] > 0 else 0):
                Yb[i, j] = Y[source, j]
            if lb.shape[0] > 0:
                lb[i] = labels[source]
        status, loss = _gradient(layout, loss_id, params, Xb, Yb, lb, wb, l2, False, grad, work,
                                 n_threads)
        if status != OK:
            return status, total / n, steps
        total += float(loss) * m
        steps += 1
        step(kind, hyper, lr, steps, params, grad, state)
    return OK, total / n, steps


def _gradient(*args: object) -> tuple[int, float]:
    """Stands for the backend entry point that a compiled copy of :func:`_epoch` calls: each copy
    binds this name to its own (see :func:`_compiled_epoch`). Never called."""
    raise NotImplementedError("_epoch runs as a compiled copy from _compiled_epoch")


@functools.cache
def _compiled_epoch(value_and_grad: Callable) -> Callable:
    """:func:`_epoch` compiled to call ``value_and_grad``, a backend's compiled entry point, and
    cached on disk.

    A copy of the function whose global :func:`_gradient` is ``value_and_grad``, under a name
    of its own (numba keys its disk cache by the function's name). The entry point is a global
    of the copy, not an argument: an argument's type would be the entry point's dispatcher, a new
    type in every process, and the epoch could not be cached. An epoch that calls parallel code
    (a batch split among threads) is loaded only after the backend has started numba's parallel
    runtime (:func:`fastprop._jit.start_parallel_runtime`).
    """
    module = value_and_grad.py_func.__module__.rsplit(".", 1)[-1]
    name = f"_epoch_{module}_{value_and_grad.__name__}"
    copy = FunctionType(_epoch.__code__, {**_epoch.__globals__, "_gradient": value_and_grad},
                        name)
    copy.__qualname__ = name
    copy.__doc__ = _epoch.__doc__
    return jit(copy)


@dataclass(frozen=True)
class EarlyStopping:
    """When to stop before the last epoch, by scikit-learn's rule.

    An epoch "improves" when the watched value beats the best so far by more than ``tol``
    (a loss lower than ``best - tol``, a score higher than ``best + tol``); training stops at the
    first epoch that makes more than ``patience`` epochs in a row without improvement
    (scikit-learn's ``n_iter_no_change=patience``).

    Parameters
    ----------
    patience : int, default 10
        Epochs without improvement that are tolerated, ``>= 1``.
    tol : float, default 1e-4
        The improvement that counts, ``>= 0``.
    monitor : {"val_loss", "val_score", "loss"}, default "val_loss"
        The validation loss, the validation score (both need ``validation=``; see
        :class:`History`), or the training loss.
    restore_best : bool, default True
        At the end, put back the parameters of the best epoch (the one with the best watched
        value; kept as a copy whenever the value improves at all).
    """

    patience: int = 10
    tol: float = 1e-4
    monitor: str = "val_loss"
    restore_best: bool = True

    def __post_init__(self) -> None:
        v.check_integer("patience", self.patience, 1)
        v.check_real("tol", self.tol, 0.0)
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {list(MONITORS)}, got {self.monitor!r}")


@dataclass
class TrainState:
    """Where training stands: pass it as ``train(..., resume=state)`` to go on from there.

    Attributes
    ----------
    optimizer_state : numpy.ndarray
        The optimizer's velocities or moments, the parameters' dtype.
    steps : int
        Optimizer steps taken (Adam's ``t``).
    epochs : int
        Epochs done (the schedules' epoch count).
    samples : int
        Samples seen (the inverse-scaling schedule's ``t``).
    rng : numpy.random.Generator
        The generator of the shuffles.
    """

    optimizer_state: np.ndarray
    steps: int
    epochs: int
    samples: int
    rng: np.random.Generator


@dataclass
class History:
    """What :func:`train` did, epoch by epoch.

    Attributes
    ----------
    loss : list of float
        Training loss per epoch: the mean over samples of the loss of their minibatch, each
        taken with the parameters before that minibatch's update (scikit-learn's
        ``loss_curve_``); includes the network's L2 penalty.
    val_loss : list of float
        Loss on the validation data after each epoch (empty without ``validation=``).
    val_score : list of float
        Score on the validation data after each epoch (empty without ``validation=``): the
        accuracy for classification losses (for ``binary_cross_entropy``, the fraction of
        samples whose every output is on the right side of 0.5), the coefficient of
        determination R^2 (averaged over outputs) for ``squared``.
    learning_rate : list of float
        The schedule's learning rate in each epoch.
    best_epoch : int or None
        With early stopping: the epoch (from 1) with the best watched value.
    stopped : str
        Why training ended: ``"epochs"`` (all done), ``"early_stopping"``, ``"callback"``, or
        ``"diverged"`` (the training loss became NaN or infinite).
    seconds : float
        Wall time of the training.
    state : TrainState
        For ``train(..., resume=history.state)``.
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped: str = "epochs"
    seconds: float = 0.0
    state: TrainState | None = None

    @property
    def epochs(self) -> int:
        """Epochs run."""
        return len(self.loss)


def score(net: MLP, params: np.ndarray, X: np.ndarray, Y_rows: np.ndarray, labels: np.ndarray,
          backend: str = DEFAULT_BACKEND, sample_weights: np.ndarray | None = None) -> float:
    """The validation score of :class:`History` (accuracy or R^2, weighted by
    ``sample_weights`` when given, as scikit-learn's ``score``), for checked arrays.

    ``Y_rows`` and ``labels`` are as :func:`fastprop._validate.check_targets` returns them.
    """
    outputs = net.forward(params, X, backend=backend, check_finite=False)
    w = np.ones(X.shape[0]) if sample_weights is None else sample_weights.astype(np.float64)
    if net.loss_name == "squared":
        residual = w @ ((outputs - Y_rows) ** 2).astype(np.float64)
        spread = w @ ((Y_rows - np.average(Y_rows, axis=0, weights=w)) ** 2).astype(np.float64)
        # A constant target: 1 when predicted exactly, else 0 (scikit-learn's r2_score).
        r2 = np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1),
                      np.where(residual == 0, 1.0, 0.0))
        return float(r2.mean())
    if net.loss_name == "binary_cross_entropy":
        return float(np.average(((outputs >= 0.5) == (Y_rows >= 0.5)).all(axis=1), weights=w))
    truth = labels if labels.shape[0] else Y_rows.argmax(axis=1)
    return float(np.average(outputs.argmax(axis=1) == truth, weights=w))


class _Watch:
    """The early-stopping rule's bookkeeping (see :class:`EarlyStopping`)."""

    def __init__(self, rule: EarlyStopping) -> None:
        self.rule = rule
        self.sign = -1.0 if rule.monitor == "val_score" else 1.0
        self.best = math.inf
        self.count = 0
        self.best_params: np.ndarray | None = None

    def should_stop(self, history: History, params: np.ndarray) -> bool:
        value = self.sign * getattr(history, self.rule.monitor)[-1]
        self.count = self.count + 1 if value > self.best - self.rule.tol else 0
        if value < self.best:
            self.best = value
            history.best_epoch = history.epochs
            if self.rule.restore_best:
                self.best_params = params.copy()
        return self.count > self.rule.patience


class _NoProgressBar:
    """What :func:`train` updates when ``progress`` is off: a disabled tqdm bar still costs tens of
    microseconds per call, a noticeable part of a short epoch's call."""

    def __enter__(self) -> _NoProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def set_postfix(self, postfix: dict, refresh: bool = True) -> None:
        """Nothing to show."""

    def update(self) -> None:
        """Nothing to show."""


def _check_data(net: MLP, params: np.ndarray, X: object, Y: object, check_finite: bool,
                prefix: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, Y_rows, labels)``, checked as :meth:`MLP.value_and_grad` checks them, as the
    compiled epochs take them (:func:`fastprop._validate.for_kernels`)."""
    try:
        X = v.for_kernels(v.check_array("X", X, net.dtype, None, net.n_inputs))
        Y_rows, labels = v.check_targets(Y, net.loss_name, net.dtype, X.shape[0], net.n_outputs)
        v.raise_for_status(check_values(net.spec.layout, params, X, Y_rows, labels, check_finite),
                           net.n_outputs)
    except (TypeError, ValueError) as error:
        if not prefix:
            raise
        raise type(error)(f"{prefix}{error}") from None
    return X, Y_rows, labels


def _check_validation(net: MLP, params: np.ndarray, validation: object, check_finite: bool
                      ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    """``(X_val, (Y_rows, labels), weights or None)`` of ``train``'s ``validation``."""
    if not isinstance(validation, tuple) or len(validation) not in (2, 3):
        raise TypeError("validation must be a tuple (X_val, Y_val) or (X_val, Y_val, "
                        "sample_weight_val)")
    X_val, *targets = _check_data(net, params, *validation[:2], check_finite,
                                  prefix="validation: ")
    weights = None
    if len(validation) == 3 and validation[2] is not None:
        try:
            weights = v.check_sample_weight(validation[2], net.dtype, X_val.shape[0])
        except (TypeError, ValueError) as error:
            raise type(error)(f"validation: {error}") from None
    return X_val, tuple(targets), weights


def _check_resume(resume: object, optimizer: Optimizer, net: MLP, seed: object) -> None:
    if not isinstance(resume, TrainState):
        raise TypeError(f"resume must be a TrainState (history.state), got {resume!r}")
    size = optimizer.state_size(net.n_params)
    state = resume.optimizer_state
    if state.dtype != net.dtype or state.shape != (size,):
        raise ValueError(f"resume holds an optimizer state of shape {state.shape} and dtype "
                         f"{state.dtype}; {optimizer!r} on this network needs ({size},) "
                         f"{net.dtype}")
    if seed is not None:
        raise ValueError("pass seed or resume, not both: resume goes on with its own shuffles")


def _check_stopping(early_stopping: object, validation: bool, callback: object) -> None:
    """The arguments that can end training early (``validation``: whether there is some)."""
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError(f"early_stopping must be an EarlyStopping, got {early_stopping!r}")
        if early_stopping.monitor != "loss" and not validation:
            raise ValueError(f"early stopping on {early_stopping.monitor!r} needs validation=")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")


def _stop_reason(history: History, params: np.ndarray, watch: _Watch | None,
                 callback: Callable[[History], bool | None] | None) -> str | None:
    """Why training stops after the epoch just recorded in ``history``, or None."""
    loss = history.loss[-1]
    if not math.isfinite(loss):
        warnings.warn(f"training diverged in epoch {history.epochs} (loss {loss}): try a lower "
                      f"learning rate", RuntimeWarning, stacklevel=3)
        return "diverged"
    if watch is not None and watch.should_stop(history, params):
        return "early_stopping"
    if callback is not None and callback(history):
        return "callback"
    return None


def train(net: MLP, params: np.ndarray, X: np.ndarray, Y: np.ndarray, *,
          optimizer: str | Optimizer = "adam", epochs: int = 10, batch_size: int | None = None,
          shuffle: bool = True, seed: int | np.random.Generator | None = None,
          sample_weight: ArrayLike | None = None,
          validation: tuple[np.ndarray, np.ndarray] | None = None,
          early_stopping: EarlyStopping | None = None,
          callback: Callable[[History], bool | None] | None = None, progress: bool = True,
          backend: str = DEFAULT_BACKEND, check_finite: bool = True,
          resume: TrainState | None = None) -> History:
    """Train ``net`` by minibatch gradient descent, updating ``params`` in place.

    Each epoch visits every sample once, in a new random order when ``shuffle`` (epoch ``e`` uses
    the ``e``-th :func:`fastprop.shuffling.permutation` ``(rng, n)`` of
    ``rng = numpy.random.default_rng(seed)``), in
    minibatches of ``batch_size`` samples; when ``batch_size`` does not divide the number of
    samples, the last minibatch of each epoch is smaller (its loss is the mean over its own
    samples, as for every minibatch, and it takes a full optimizer step). On the CPU backends a
    whole epoch runs in one compiled call.

    Parameters
    ----------
    net : MLP
        The network (its loss, L2 penalty and dtype are the ones trained).
    params : numpy.ndarray
        Flat parameters, shape ``(n_params,)``, the network's dtype, writable: trained in place.
    X, Y : numpy.ndarray
        Training inputs and targets, as for :meth:`MLP.value_and_grad` (the whole data set).
    optimizer : str, SGD or Adam, default "adam"
        ``"sgd"`` or ``"adam"`` (default hyperparameters), or a :class:`~fastprop.SGD` or
        :class:`~fastprop.Adam` with its learning rate, schedule and so on.
    epochs : int, default 10
        Passes over the data, ``>= 1``.
    batch_size : int, optional
        Samples per minibatch, from 1 to the number of samples; by default 32, or all the
        samples when there are fewer (as scikit-learn does).
    shuffle : bool, default True
        Shuffle the samples before every epoch; in the given order otherwise.
    seed : int, numpy.random.Generator or None
        Seed of the shuffles.
    sample_weight : array-like, optional
        One weight per sample of ``X``, as for :meth:`MLP.value_and_grad`: each minibatch's
        loss is its samples' weighted mean (plus the L2 term). The epoch's loss in
        :class:`History` stays the mean over samples of their minibatch's loss, as
        scikit-learn's ``loss_curve_``.
    validation : (X_val, Y_val) or (X_val, Y_val, sample_weight_val), optional
        Data on which :class:`History` records the loss and the score after every epoch
        (both weighted by ``sample_weight_val`` when given).
    early_stopping : EarlyStopping, optional
        Stop when the watched value stops improving (see :class:`EarlyStopping`).
    callback : callable, optional
        ``callback(history)`` after every epoch (after early stopping's check); return ``True``
        to stop training.
    progress : bool, default True
        Show a tqdm progress bar over the epochs.
    backend : str, default "matrix"
        ``"matrix"`` or ``"naive"``: a backend whose compiled gradient runs on the CPU.
    check_finite : bool, default True
        Raise ``ValueError`` on NaN or infinity in ``params``, ``X``, ``Y`` or the validation
        data. With ``False`` they propagate (and training stops as diverged).
    resume : TrainState, optional
        ``history.state`` of an earlier call, to go on with the same optimizer state, step and
        epoch counts and shuffle generator (then ``seed`` must be None).

    Returns
    -------
    History
        Losses, scores, learning rates, why training stopped, its time, and its state.

    Raises
    ------
    TypeError, ValueError
        Bad input, named in the message; checked before anything is trained.

    Warns
    -----
    RuntimeWarning
        When the training loss becomes NaN or infinite (training stops; lower the learning
        rate).
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a fastprop.MLP, got {type(net).__name__}")
    known = BACKENDS.get(backend) if isinstance(backend, str) else None
    if known is not None and known.device:  # before get_backend, which asks for CUDA
        raise ValueError(f"train runs on the CPU backends, not on {backend!r}: its epochs are "
                         f"compiled CPU code")
    chosen = get_backend(backend)
    v.check_array("params", params, net.dtype, net.n_params)
    if not params.flags.writeable:
        raise ValueError("params is read-only: train updates it in place")
    check_finite = v.check_flag("check_finite", check_finite)
    X, Y_rows, labels = _check_data(net, params, X, Y, check_finite)
    n = X.shape[0]
    sample_weights = (np.ones(n, net.dtype) if sample_weight is None
                      else v.check_sample_weight(sample_weight, net.dtype, n))
    epochs = v.check_integer("epochs", epochs, 1)
    if batch_size is None:
        batch_size = min(32, n)
    batch_size = v.check_integer("batch_size", batch_size, 1, n, high_name="the number of samples")
    optimizer = get_optimizer(optimizer)
    if validation is not None:
        X_val, val_targets, val_weights = _check_validation(net, params, validation,
                                                            check_finite)
    _check_stopping(early_stopping, validation is not None, callback)
    if resume is None:
        resume = TrainState(np.zeros(optimizer.state_size(net.n_params), net.dtype), 0, 0, 0,
                            v.check_seed(seed))
    else:
        _check_resume(resume, optimizer, net, seed)

    history = History(state=resume)
    watch = _Watch(early_stopping) if early_stopping is not None else None
    order = np.arange(n)
    grad = np.empty(net.n_params, net.dtype)
    X_batch = np.empty((batch_size, net.n_inputs), net.dtype)
    Y_batch = np.empty((batch_size if Y_rows.shape[0] else 0, net.n_outputs), net.dtype)
    label_batch = np.empty(batch_size if labels.shape[0] else 0, np.int64)
    weight_batch = np.empty(batch_size, net.dtype)
    hyper = optimizer.hyperparameters()
    spec = net.spec
    start = time.perf_counter()
    bar = tqdm(total=epochs, unit="epoch", desc="train") if progress else _NoProgressBar()
    with bar:
        for _ in range(epochs):
            if shuffle:
                order = permutation(resume.rng, n)
            lr = optimizer.schedule(optimizer.learning_rate, resume.epochs, resume.samples)
            kernel, work, n_threads = chosen.gradient_kernel(spec, batch_size)
            epoch = chosen.guard(_compiled_epoch(kernel))
            status, loss, resume.steps = epoch(
                spec.layout, spec.loss_id, spec.l2, params, X,
                Y_rows, labels, sample_weights, order, optimizer.kind, hyper, lr, resume.steps,
                resume.optimizer_state, grad, work, n_threads, X_batch, Y_batch, label_batch,
                weight_batch)
            v.raise_for_status(status, net.n_outputs)
            resume.epochs += 1
            resume.samples += n
            history.loss.append(loss)
            history.learning_rate.append(lr)
            postfix = {"loss": f"{loss:.4g}"}
            if validation is not None:
                history.val_loss.append(net.loss(params, X_val, validation[1],
                                                 sample_weight=val_weights, backend=backend,
                                                 check_finite=False))
                history.val_score.append(score(net, params, X_val, *val_targets, backend,
                                               val_weights))
                postfix["val_score"] = f"{history.val_score[-1]:.4g}"
            bar.set_postfix(postfix, refresh=False)
            bar.update()
            reason = _stop_reason(history, params, watch, callback)
            if reason is not None:
                history.stopped = reason
                break
    if watch is not None and watch.best_params is not None:
        params[:] = watch.best_params
    history.seconds = time.perf_counter() - start
    return history
