"""scikit-learn estimators: :class:`MLPRegressor` and :class:`MLPClassifier`, trained by
:func:`fastprop.train` (``"sgd"``, ``"adam"``) or by SciPy's L-BFGS-B on the compiled
full-batch loss and gradient (``"lbfgs"``).

Their parameters are scikit-learn's ``MLPRegressor`` and ``MLPClassifier`` ones (same names,
defaults and meaning), plus ``backend`` and ``dtype``. The differences (docs/training.md gives
the reasons):

- No sparse input. The regressor has no ``loss`` parameter (squared error only).
- ``alpha``: scikit-learn adds ``alpha / (2 s) ||W||^2`` to the loss of a minibatch whose sample
  weights sum to ``s`` (its size when unweighted); here the network's L2 penalty is one number
  for every minibatch: ``alpha / (batch_size * mean weight)`` (the last, smaller one of an epoch
  included); ``alpha / sum(sample_weight)`` (``alpha / n_samples``) for ``"lbfgs"``, as
  scikit-learn's.
- Sample weights must be non-negative with a positive sum (scikit-learn accepts negative weights
  and an all-zero vector, and returns a negative or NaN loss for them).
- The regressor's loss is ``1/2 ||p - y||^2`` per sample, averaged over samples (scikit-learn
  also averages over the outputs: the same for one output, ``n_outputs`` times smaller
  otherwise).
- ``random_state`` drives NumPy's ``Generator`` and fastprop's initialisation (He's range after
  relu), so the numbers differ from scikit-learn's.
- Training by ``"sgd"`` or ``"adam"`` stops early, with a ``RuntimeWarning``, if the loss becomes
  NaN or infinite.
- ``verbose`` prints scikit-learn's lines, and with ``"lbfgs"`` one ``Iteration n, loss = ...``
  line per L-BFGS-B iteration (scikit-learn prints nothing there with SciPy 1.15 or later).
- ``"lbfgs"`` also records ``loss_curve_`` (the loss after each iteration) and ``best_loss_``.
- ``partial_fit`` is missing for ``"lbfgs"`` in both estimators (scikit-learn's regressor runs a
  whole L-BFGS fit there).
- A warm start renews the ``"invscaling"`` schedule's sample count with the optimizer state.

scikit-learn is an optional dependency (``pip install "fastprop[sklearn]"``, which also installs
SciPy for ``"lbfgs"``); ``import fastprop`` works without it and imports this module on first
use of the estimators.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_regressor
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("fastprop.MLPRegressor and fastprop.MLPClassifier need scikit-learn: "
                      "pip install 'fastprop[sklearn]'") from error
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _validate as v
from .network import MLP
from .optimizers import SGD, Adam, Constant, InverseScaling, Optimizer
from .training import History, TrainState, train

#: scikit-learn's activation names (and fastprop's own) -> fastprop's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "sigmoid": "sigmoid", "leaky_relu": "leaky_relu", "softplus": "softplus"}
#: fastprop's output activations -> scikit-learn's ``out_activation_`` names.
_OUT_NAMES = {"identity": "identity", "sigmoid": "logistic", "softmax": "softmax"}
#: The solvers, the minibatch ones first.
SOLVERS = ("adam", "sgd", "lbfgs")
_STOCHASTIC = ("adam", "sgd")
#: The ``"adaptive"`` schedule stops instead of lowering a learning rate at or below this.
_MIN_LEARNING_RATE = 1e-6
_LBFGS_INSTALL = 'pip install "fastprop[sklearn]"'


def _patience(value: object) -> float:
    """``n_iter_no_change``: an integer >= 1, or ``numpy.inf`` (never stop on a plateau)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"n_iter_no_change must be an integer >= 1 or numpy.inf, got {value!r}")
    return int(value)


def _is_dask(*arrays: object) -> bool:
    """Whether any of ``arrays`` is a Dask collection (told by its type: Dask is imported only
    when one is)."""
    return any(type(array).__module__.partition(".")[0] == "dask" for array in arrays)


def _dask_estimators() -> Any:
    """:mod:`fastprop.dask.estimators`, imported on the first Dask input."""
    try:
        from .dask import estimators
    except ImportError as error:
        raise ImportError('Dask input needs fastprop.dask: pip install "fastprop[dask]"') \
            from error
    return estimators


def _minimize() -> Callable[..., Any]:
    """SciPy's ``scipy.optimize.minimize``, imported on first use of ``solver="lbfgs"``."""
    try:
        from scipy.optimize import minimize
    except ImportError as error:
        raise ImportError(f'solver="lbfgs" needs SciPy: {_LBFGS_INSTALL}') from error
    return minimize


@dataclass
class _Plateau:
    """scikit-learn's no-improvement bookkeeping of the minibatch solvers.

    Kept between ``partial_fit`` calls and warm starts, as scikit-learn keeps its count and best
    values; a new fit (without ``warm_start``) starts a new one.

    Attributes
    ----------
    learning_rate : float
        The current rate (``"adaptive"`` divides it by 5 on each plateau).
    best_loss, best_score : float
        The lowest training loss, the highest validation score.
    count : int
        Epochs in a row without an improvement by more than ``tol``.
    best_params : numpy.ndarray or None
        With early stopping: the parameters of the best validation score.
    val_scores : list of float
        Every epoch's validation score (``validation_scores_``).
    """

    learning_rate: float
    best_loss: float = math.inf
    best_score: float = -math.inf
    count: int = 0
    best_params: np.ndarray | None = None
    val_scores: list[float] = field(default_factory=list)


class _EpochEnd:
    """The ``callback`` of :func:`fastprop.train` for the minibatch solvers: what scikit-learn
    does at the end of each epoch.

    It prints the verbose lines, counts the epochs without improvement (of the training loss, or
    of the validation score with early stopping, by more than ``tol``), keeps the best
    parameters for early stopping, and past ``patience`` such epochs asks :func:`train` to stop:
    for good (``stop``), or, with the ``"adaptive"`` schedule, to go on at a fifth of the
    learning rate (``lowered``; the estimator then resumes training with the new rate).
    """

    def __init__(self, plateau: _Plateau, params: np.ndarray, *, early: bool, tol: float,
                 patience: float, adaptive: bool, verbose: bool) -> None:
        self.plateau = plateau
        self.params = params
        self.early = early
        self.tol = tol
        self.patience = patience
        self.adaptive = adaptive
        self.verbose = verbose
        self.n_iter = 0
        self.stop = False
        self.lowered = False

    def _say(self, line: str) -> None:
        if self.verbose:
            print(line)

    def _count(self, history: History) -> None:
        plateau = self.plateau
        if self.early:
            score = history.val_score[-1]
            plateau.val_scores.append(score)
            self._say(f"Validation score: {score:f}")
            plateau.count = plateau.count + 1 if score < plateau.best_score + self.tol else 0
            if score > plateau.best_score:
                plateau.best_score = score
                if plateau.best_params is None:
                    plateau.best_params = self.params.copy()
                else:
                    plateau.best_params[:] = self.params
        else:
            loss = history.loss[-1]
            plateau.count = plateau.count + 1 if loss > plateau.best_loss - self.tol else 0
            plateau.best_loss = min(plateau.best_loss, loss)

    def __call__(self, history: History) -> bool:
        self.n_iter += 1
        self.lowered = False
        self._say(f"Iteration {self.n_iter}, loss = {history.loss[-1]:.8f}")
        self._count(history)
        plateau = self.plateau
        if plateau.count <= self.patience:
            return False
        message = (f"{'Validation score' if self.early else 'Training loss'} did not improve "
                   f"more than tol={self.tol:f} for {self.patience:d} consecutive epochs.")
        if not self.adaptive or plateau.learning_rate <= _MIN_LEARNING_RATE:
            self._say(message + (" Learning rate too small. Stopping." if self.adaptive
                                 else " Stopping."))
            self.stop = True
            return True
        plateau.learning_rate /= 5.0
        plateau.count = 0
        self._say(f"{message} Setting learning rate to {plateau.learning_rate:f}")
        self.lowered = True
        return True


class _Objective:
    """``x -> (loss, gradient)`` for L-BFGS-B: the network's full-batch loss and gradient at the
    float64 vector ``x``, computed by the compiled ``value_and_grad`` in the network's dtype.

    ``x`` is written into ``params`` (converted to float32 for a float32 network) and the
    gradient into one buffer, so that every call repeats the first one's arrays (``out=``'s
    fast path); the gradient goes back to SciPy as a new float64 array, which SciPy may keep.
    Read-only data is aliased as writable once (:func:`fastprop._validate.for_kernels`), so
    that every call takes the direct path of writable arrays and the entry point compiled for
    them, without a copy of the data.
    """

    def __init__(self, net: MLP, params: np.ndarray, X: np.ndarray, Y: np.ndarray,
                 sample_weights: np.ndarray | None, backend: str) -> None:
        self.net = net
        self.sample_weights = sample_weights
        self.params = params
        self.X = v.for_kernels(X)
        self.Y = v.for_kernels(Y)
        self.backend = backend
        self.grad = np.empty_like(params)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.params[:] = x
        loss, grad = self.net.value_and_grad(self.params, self.X, self.Y,
                                             sample_weight=self.sample_weights,
                                             backend=self.backend, out=self.grad,
                                             check_finite=False)
        return float(loss), grad.astype(np.float64)


class _BaseMLP(BaseEstimator):
    """What both estimators share: parameters, checks, training, the forward pass."""

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: str = "relu", *, solver: str = "adam", alpha: float = 0.0001,
                 batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, early_stopping: bool = False,
                 validation_fraction: float = 0.1, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int | float = 10,
                 max_fun: int = 15000, backend: str = "matrix", dtype: Any = "float64") -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype

    # -- parameters ---------------------------------------------------------------------------

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else sizes
        if isinstance(sizes, str) or not isinstance(sizes, Sequence | np.ndarray) or any(
                isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1
                for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be a positive integer or a sequence of "
                             f"them, got {self.hidden_layer_sizes!r}")
        return [int(n) for n in sizes]

    def _optimizer(self, learning_rate: float) -> Optimizer:
        """The minibatch solver's optimizer at ``learning_rate`` (its other settings checked)."""
        if self.solver == "adam":
            return Adam(learning_rate, v.check_real("beta_1", self.beta_1, 0.0, 1.0),
                        v.check_real("beta_2", self.beta_2, 0.0, 1.0),
                        v.check_real("epsilon", self.epsilon, 0.0, low_open=True))
        schedule = v.check_choice("learning_rate", self.learning_rate,
                           ("constant", "invscaling", "adaptive"))
        momentum = v.check_real("momentum", self.momentum, 0.0, 1.0, high_open=False)
        return SGD(learning_rate, momentum, bool(self.nesterovs_momentum) and momentum > 0,
                   InverseScaling(v.check_real("power_t", self.power_t, 0.0))
                   if schedule == "invscaling" else Constant())

    def _batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        size = v.check_integer("batch_size", self.batch_size, 1)
        if size > n_samples:
            warnings.warn("Got `batch_size` larger than the sample size. It is going to be "
                          "clipped", UserWarning, stacklevel=5)
        return min(size, n_samples)

    def _check_solver(self) -> bool:
        """Whether ``partial_fit`` exists: for the minibatch solvers (scikit-learn's check)."""
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # -- training -----------------------------------------------------------------------------

    def _targets(self, y: np.ndarray, first: bool, classes: Any,
                 warm: bool) -> tuple[np.ndarray, int, str, str]:
        """``(Y, n_outputs, output, loss)``: the targets for :func:`fastprop.train` (float rows,
        or integer class indices), the network's output count, output and loss; sets the target
        encoding on the ``first`` call (from ``classes`` when given); ``warm``: a warm-started
        fit, whose targets must keep the fitted encoding."""
        raise NotImplementedError

    def _generator(self) -> np.random.Generator:
        """The generator of the initial weights, the validation split and the shuffles."""
        return np.random.default_rng(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _settings(self) -> tuple[np.dtype, str, list[int], str, float, int]:
        """``(dtype, solver, hidden sizes, fastprop's activation name, alpha, max_iter)``,
        checked: what every fit reads first."""
        dtype = v.check_dtype(self.dtype)
        solver = v.check_choice("solver", self.solver, SOLVERS)
        hidden = self._hidden_sizes()
        activation = v.check_choice("activation", self.activation, list(ACTIVATIONS))
        alpha = v.check_real("alpha", self.alpha, 0.0)
        max_iter = v.check_integer("max_iter", self.max_iter, 1)
        return dtype, solver, hidden, ACTIVATIONS[activation], alpha, max_iter

    def _fit(self, X: Any, y: Any, incremental: bool, classes: Any = None,
             sample_weight: Any = None) -> _BaseMLP:
        dtype, solver, hidden, activation, alpha, max_iter = self._settings()
        if solver in _STOCHASTIC:
            self._optimizer(v.check_real("learning_rate_init", self.learning_rate_init, 0.0,
                                         low_open=True))
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "net_") or not (incremental or self.warm_start)
        X, y = validate_data(self, X, y, reset=first, multi_output=True, dtype=dtype,
                             order="C", y_numeric=is_regressor(self))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        weights = (None if sample_weight is None
                   else v.check_sample_weight(sample_weight, dtype, X.shape[0]))
        Y, n_outputs, output, loss = self._targets(y, first, classes,
                                                   warm=not (first or incremental))
        sizes = [X.shape[1], *hidden, n_outputs]
        if not first:
            self._check_architecture(sizes, dtype)
        else:
            self.n_layers_ = len(sizes)
            self.n_outputs_ = n_outputs
            self.out_activation_ = _OUT_NAMES[output]
            self.loss_curve_: list[float] = []
            self.t_ = 0
            self._state: TrainState | None = None
            self._plateau: _Plateau | None = None
        network = (activation, output, loss, alpha, dtype)
        if solver == "lbfgs":
            self._fit_lbfgs(X, Y, weights, sizes, network, max_iter, first)
        else:
            self._fit_stochastic(X, Y, y, weights, sizes, network, max_iter, first, incremental)
        return self

    def _check_architecture(self, sizes: list[int], dtype: np.dtype) -> None:
        """A warm start or ``partial_fit`` goes on with the fitted network's shape and dtype."""
        if sizes[-1] != self.n_outputs_:
            raise ValueError(f"y has {sizes[-1]} outputs, but this estimator was trained with "
                             f"{self.n_outputs_}")
        if tuple(sizes) != tuple(self.net_.sizes) or dtype != self.net_.dtype:
            raise ValueError(f"warm_start and partial_fit go on from the fitted network, of "
                             f"layer sizes {list(self.net_.sizes)} and dtype {self.net_.dtype}, "
                             f"but hidden_layer_sizes and dtype now give {sizes} and {dtype}: "
                             f"fit with warm_start=False to start over")

    def _fit_stochastic(self, X: np.ndarray, Y: np.ndarray, y: np.ndarray,
                        weights: np.ndarray | None, sizes: list[int], network: tuple,
                        max_iter: int, first: bool, incremental: bool) -> None:
        """``"sgd"`` or ``"adam"``: :func:`fastprop.train`, with scikit-learn's end of epoch as
        its callback; the ``"adaptive"`` schedule resumes training at each lower rate."""
        activation, output, loss, alpha, dtype = network
        tol = v.check_real("tol", self.tol, 0.0)
        patience = _patience(self.n_iter_no_change)
        early = bool(self.early_stopping)
        state = self._state if incremental else None  # a fit starts a new optimizer
        generator = self._generator() if first or state is None else None
        validation = None
        if early:
            X, Y, weights, validation = self._hold_out(X, Y, y, weights, generator)
        batch_size = self._batch_size(X.shape[0])
        mean_weight = 1.0 if weights is None else float(weights.mean(dtype=np.float64))
        self.net_ = MLP(sizes, activation, output, loss, l2=alpha / (batch_size * mean_weight),
                        dtype=dtype)
        if first:
            self.params_ = self.net_.init(seed=generator)
        if getattr(self, "_plateau", None) is None:
            self._plateau = _Plateau(float(self.learning_rate_init))
        elif not incremental:  # a warm start: a new optimizer, the plateau's count goes on
            self._plateau.learning_rate = float(self.learning_rate_init)
        if early and self._plateau.best_params is None:
            self._plateau.best_params = self.params_.copy()
        on_epoch = _EpochEnd(self._plateau, self.params_, early=early, tol=tol,
                             patience=patience, verbose=bool(self.verbose),
                             adaptive=self.solver == "sgd" and self.learning_rate == "adaptive")
        remaining = 1 if incremental else max_iter
        self.n_iter_ = 0
        while remaining:
            history = train(
                self.net_, self.params_, X, Y,
                optimizer=self._optimizer(self._plateau.learning_rate), epochs=remaining,
                batch_size=batch_size, shuffle=bool(self.shuffle),
                seed=generator if state is None else None, sample_weight=weights,
                validation=validation,
                callback=on_epoch, progress=False, backend=self.backend, check_finite=False,
                resume=state)
            state = history.state
            self._record(history, X.shape[0])
            lowered = history.stopped == "callback" and on_epoch.lowered
            remaining = remaining - history.epochs if lowered else 0
        self._state = state
        if early:
            self.params_[:] = self._plateau.best_params
        self.best_loss_ = None if early else self._plateau.best_loss
        self.validation_scores_ = list(self._plateau.val_scores) if early else None
        self.best_validation_score_ = self._plateau.best_score if early else None
        if not (incremental or on_epoch.stop or history.stopped == "diverged"):
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({max_iter}) reached and "
                          f"the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=4)

    def _fit_lbfgs(self, X: np.ndarray, Y: np.ndarray, weights: np.ndarray | None,
                   sizes: list[int], network: tuple, max_iter: int, first: bool) -> None:
        """``"lbfgs"``: SciPy's L-BFGS-B on the full-batch loss, with scikit-learn's options
        (``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol``, SciPy's default ``ftol``)."""
        activation, output, loss, alpha, dtype = network
        tol = v.check_real("tol", self.tol, 0.0)
        max_fun = v.check_integer("max_fun", self.max_fun, 1)
        minimize = _minimize()
        weight_sum = X.shape[0] if weights is None else float(weights.sum(dtype=np.float64))
        self.net_ = MLP(sizes, activation, output, loss, l2=alpha / weight_sum, dtype=dtype)
        if first:
            self.params_ = self.net_.init(seed=self._generator())
        self._state = None  # the minibatch solvers' optimizer starts again after L-BFGS
        verbose = bool(self.verbose)
        curve: list[float] = []

        def iteration_ends(intermediate_result: Any) -> None:
            curve.append(float(intermediate_result.fun))
            if verbose:
                print(f"Iteration {len(curve)}, loss = {curve[-1]:.8f}")

        result = minimize(_Objective(self.net_, self.params_, X, Y, weights, self.backend),
                          self.params_.astype(np.float64), method="L-BFGS-B", jac=True,
                          callback=iteration_ends,
                          options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol})
        self.params_[:] = result.x
        if not np.isfinite(self.params_).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        self.n_iter_ = min(int(result.nit), max_iter)
        self.loss_ = float(result.fun)
        self.loss_curve_ = [*self.loss_curve_, *curve]
        self.best_loss_ = min(self.loss_curve_, default=self.loss_)
        self.validation_scores_ = self.best_validation_score_ = None
        if result.status != 0:
            message = (f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                       f"(status={result.status}):\n{result.message}\n")
            if self.n_iter_ == max_iter:
                message += (f"\nIncrease the number of iterations to improve the convergence "
                            f"(max_iter={max_iter}).")
            message += ("\nYou might also want to scale the data as shown in:\n"
                        "    https://scikit-learn.org/stable/modules/preprocessing.html")
            warnings.warn(message, ConvergenceWarning, stacklevel=4)

    def _hold_out(self, X: np.ndarray, Y: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
                  generator: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple]:
        """``(X_train, Y_train, weights_train, (X_val, Y_val, weights_val))``: the
        early-stopping split, as scikit-learn's (the sample weights split with the samples)."""
        fraction = v.check_real("validation_fraction", self.validation_fraction, 0.0, 1.0,
                                low_open=True, high_open=True)
        parts = train_test_split(
            X, Y, *([] if weights is None else [weights]), test_size=fraction,
            random_state=int(generator.integers(2**31)),
            stratify=y if self._stratify(Y) else None)
        X, X_val, Y, Y_val = parts[:4]
        weights, weights_val = parts[4:] if weights is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        return X, Y, weights, (X_val, Y_val, weights_val)

    def _record(self, history: History, n_samples: int) -> None:
        """The fitted attributes after one call of :func:`fastprop.train` (``loss_curve_`` grows
        with each call)."""
        self.loss_curve_ = [*self.loss_curve_, *history.loss]
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ += history.epochs
        self.t_ += history.epochs * n_samples

    def _stratify(self, Y: np.ndarray) -> bool:
        """Whether the early-stopping split is stratified (as scikit-learn: for one output)."""
        return False

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _BaseMLP:
        """Train the network on ``X``, ``y``: up to ``max_iter`` epochs of ``"sgd"`` or
        ``"adam"``, or up to ``max_iter`` iterations of ``"lbfgs"``.

        A new network, unless ``warm_start`` and the estimator is fitted: then training goes on
        from the fitted parameters (the layer sizes and dtype must not change).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights with a positive sum: each minibatch's loss is its samples'
            weighted mean (see :meth:`fastprop.MLP.value_and_grad`).

        With Dask arrays (``X`` and ``y``, chunked along the samples), training runs on the
        Dask cluster with :func:`fastprop.dask.train`: L-BFGS-B on the distributed gradient for
        ``"lbfgs"``, local SGD with parameter averaging for ``"sgd"`` and ``"adam"`` (see
        docs/distributed.md); a new network each time.

        Returns
        -------
        self
        """
        if _is_dask(X, y, sample_weight):
            return _dask_estimators().fit(self, X, y, sample_weight)
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    # -- prediction ---------------------------------------------------------------------------

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.net_.dtype, order="C")
        return self.net_.forward(self.params_, X, backend=self.backend, check_finite=False)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices, ``coefs_[i]`` of shape ``(n_in, n_out)`` (views of ``params_``)."""
        return [W.T for W, _ in self.net_.unpack(self.params_)]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors, one per layer (views of ``params_``)."""
        return [b for _, b in self.net_.unpack(self.params_)]


_FITTED_DOC = """
    Attributes
    ----------
    net_ : fastprop.MLP
        The network (its ``l2`` is ``alpha / batch_size``; ``alpha / n_samples`` for
        ``"lbfgs"``).
    params_ : numpy.ndarray
        Its flat parameters.
    coefs_, intercepts_ : list of numpy.ndarray
        Weights ``(n_in, n_out)`` and biases per layer, as scikit-learn's (views of
        ``params_``).
    loss_, loss_curve_ : float, list of float
        The last training loss, and the one of every epoch (of every iteration for
        ``"lbfgs"``); partial_fit calls and warm starts append.
    best_loss_ : float or None
        The lowest training loss (None with early stopping).
    validation_scores_, best_validation_score_ : list of float, float or None
        With early stopping: the validation score after every epoch, and the best one.
    n_iter_ : int
        Epochs (``"lbfgs"``: iterations) run by the last fit (1 after partial_fit).
    t_ : int
        Training samples seen by the minibatch solvers, over all calls.
    n_layers_, n_outputs_ : int
    out_activation_ : str
        ``"identity"``, ``"logistic"`` or ``"softmax"``.
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray
        Only when ``X`` had string column names.
"""

_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Widths of the hidden layers.
    activation : str, default "relu"
        ``"identity"``, ``"logistic"``, ``"tanh"``, ``"relu"`` (scikit-learn's), or fastprop's
        ``"sigmoid"``, ``"leaky_relu"``, ``"softplus"``.
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        Minibatch training by :func:`fastprop.train`, or SciPy's L-BFGS-B
        (``scipy.optimize.minimize``) on the compiled full-batch loss and gradient.
    alpha : float, default 0.0001
        L2 penalty; the network's ``l2`` is ``alpha / batch_size`` (``alpha / n_samples`` for
        ``"lbfgs"``).
    batch_size : int or "auto", default "auto"
        ``min(200, n_samples)`` for "auto"; clipped to ``n_samples`` with a warning. Not used by
        ``"lbfgs"``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of ``"sgd"``: ``learning_rate_init / (t + 1) ** power_t`` with ``t`` the
        samples seen, for "invscaling"; for "adaptive", ``learning_rate_init`` until
        ``n_iter_no_change`` epochs in a row fail to improve by ``tol`` (the training loss, or
        the validation score with early stopping), then a fifth of the rate each time; training
        stops when the rate would go below 1e-6.
    learning_rate_init : float, default 0.001
    power_t : float, default 0.5
    max_iter : int, default 200
        Epochs of ``"sgd"`` and ``"adam"``; iterations of ``"lbfgs"``.
    shuffle : bool, default True
    random_state : int, RandomState or None
        Draws the initial weights, the validation split and the shuffles.
    tol : float, default 1e-4
        The improvement that counts for ``n_iter_no_change``; L-BFGS-B's ``gtol``.
    verbose : bool, default False
        Print scikit-learn's ``Iteration n, loss = ...`` line after every epoch (every
        L-BFGS-B iteration), its validation score and stopping messages.
    warm_start : bool, default False
        ``fit`` goes on from the fitted parameters instead of new ones (with a new optimizer
        state); the layer sizes, dtype and classes must not change.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data and stop when the validation score stops
        improving (then restore the best epoch's weights); otherwise stop when the training loss
        stops improving. Either by more than ``tol`` for more than ``n_iter_no_change`` epochs.
        Not used by ``"lbfgs"``; refused by ``partial_fit``.
    validation_fraction : float, default 0.1
    momentum : float, default 0.9
        For ``"sgd"``, in ``[0, 1]``.
    nesterovs_momentum : bool, default True
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        For ``"adam"``.
    n_iter_no_change : int or numpy.inf, default 10
        ``numpy.inf`` turns the rule off: training runs ``max_iter`` epochs.
    max_fun : int, default 15000
        For ``"lbfgs"``: the most loss and gradient evaluations (checked once per iteration,
        so the last line search may exceed it a little).
    backend : str, default "matrix"
        fastprop's CPU backend: ``"matrix"`` or ``"naive"``.
    dtype : str or numpy dtype, default "float64"
        ``"float32"`` or ``"float64"``: the network's dtype; inputs are converted to it.
        L-BFGS-B works in float64: a float32 network's parameters are converted at each
        evaluation.
"""


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""A multilayer perceptron regressor (squared loss, identity output), trained by
    :func:`fastprop.train` or L-BFGS-B; scikit-learn's ``MLPRegressor`` with fastprop's compiled
    training. See :mod:`fastprop.estimators` for the differences.
    """ + _PARAMS_DOC + _FITTED_DOC)

    def _targets(self, y: np.ndarray, first: bool, classes: Any,
                 warm: bool) -> tuple[np.ndarray, int, str, str]:
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        Y = np.ascontiguousarray(Y, dtype=v.check_dtype(self.dtype))
        return Y, Y.shape[1], "identity", "squared"

    @available_if(lambda estimator: estimator._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch on ``X``, ``y``, from the current weights (new ones on the first call).

        Only for the minibatch solvers (``"sgd"``, ``"adam"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights with a positive sum, as for :meth:`fit`.

        Returns
        -------
        self

        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        """The network's outputs: shape ``(n_samples,)`` for one output, else
        ``(n_samples, n_outputs)``; a Dask array, mapped over the chunks, for a Dask ``X``."""
        if _is_dask(X):
            columns = None if self.n_outputs_ == 1 else self.n_outputs_
            return _dask_estimators().over_chunks(self.predict, X, columns, self.net_.dtype)
        outputs = self._forward(X)
        return outputs.ravel() if outputs.shape[1] == 1 else outputs


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""A multilayer perceptron classifier, trained by :func:`fastprop.train` or
    L-BFGS-B; scikit-learn's ``MLPClassifier`` with fastprop's compiled training.

    Multiclass targets use a softmax output and cross-entropy; binary and multilabel
    (indicator matrix) targets use sigmoid outputs and binary cross-entropy. See
    :mod:`fastprop.estimators` for the differences from scikit-learn.
    """ + _PARAMS_DOC + _FITTED_DOC + """    classes_ : numpy.ndarray
        The class labels.
    """)

    def __sklearn_tags__(self):
        """scikit-learn's tags: also multilabel targets."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _targets(self, y: np.ndarray, first: bool, classes: Any,
                 warm: bool) -> tuple[np.ndarray, int, str, str]:
        """Multiclass targets go to training as class indices (cheaper than one-hot rows: no
        target row to copy into each minibatch or to read in the loss); binary and multilabel
        ones as indicator rows."""
        check_classification_targets(y)
        if first:
            multilabel = type_of_target(y).startswith("multilabel")
            self._label_binarizer = LabelBinarizer().fit(
                y if classes is None or multilabel else unique_labels(classes))
            self.classes_ = self._label_binarizer.classes_
        labels = unique_labels(y)
        if warm and set(labels) != set(self.classes_):
            raise ValueError(f"warm_start can only be used where `y` has the same classes as in "
                             f"the previous call to fit. Previously got {self.classes_}, `y` "
                             f"has {labels}")
        unknown = np.setdiff1d(labels, self.classes_)
        if unknown.size:
            raise ValueError(f"y has classes {unknown} not in classes_ {self.classes_}")
        if self._label_binarizer.y_type_ == "multiclass":
            return (np.searchsorted(self.classes_, y).astype(np.int64), len(self.classes_),
                    "softmax", "cross_entropy")
        Y = self._label_binarizer.transform(y).astype(v.check_dtype(self.dtype), order="C")
        return Y, Y.shape[1], "sigmoid", "binary_cross_entropy"

    def _stratify(self, Y: np.ndarray) -> bool:
        return Y.ndim == 2 and Y.shape[1] == 1

    @available_if(lambda estimator: estimator._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None,
                    classes: Any = None) -> MLPClassifier:
        """One epoch on ``X``, ``y``, from the current weights (new ones on the first call).

        Only for the minibatch solvers (``"sgd"``, ``"adam"``). The arguments are in
        scikit-learn's order: ``partial_fit(X, y, None, classes)`` works.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights with a positive sum, as for :meth:`fit`.
        classes : array-like, optional
            Every class label: needed on the first call (unless ``y`` is a multilabel
            indicator matrix), ignored after.

        Returns
        -------
        self

        """
        if not hasattr(self, "net_") and classes is None and (np.ndim(y) != 2
                                                               or np.shape(y)[1] < 2):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (an indicator matrix for multilabel targets); a Dask array,
        mapped over the chunks, for a Dask ``X``."""
        if _is_dask(X):
            columns = None if self._label_binarizer.y_type_ != "multilabel-indicator" else \
                self.n_outputs_
            return _dask_estimators().over_chunks(self.predict, X, columns, self.classes_.dtype)
        outputs = self._forward(X)
        return self._label_binarizer.inverse_transform(
            outputs.ravel() if outputs.shape[1] == 1 else outputs)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_samples, n_classes)`` (two columns for binary
        targets; per-label probabilities for multilabel ones); a Dask array for a Dask ``X``."""
        if _is_dask(X):
            return _dask_estimators().over_chunks(self.predict_proba, X,
                                                  max(2, self.n_outputs_), self.net_.dtype)
        outputs = self._forward(X)
        if outputs.shape[1] == 1:
            return np.hstack([1 - outputs, outputs])
        return outputs

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))
