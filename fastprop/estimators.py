"""scikit-learn estimators: :class:`MLPRegressor` and :class:`MLPClassifier`, trained by
:func:`fastprop.train`.

Their parameters are scikit-learn's ``MLPRegressor`` and ``MLPClassifier`` ones (same names,
defaults and meaning) where fastprop has the feature, plus ``backend`` and ``dtype``. The
differences:

- ``solver``: ``"adam"`` or ``"sgd"``; no ``"lbfgs"``. ``learning_rate``: ``"constant"`` or
  ``"invscaling"`` (used by ``"sgd"`` only, as in scikit-learn); no ``"adaptive"``. No
  ``warm_start``, ``max_fun``, ``sample_weight`` or sparse input.
- ``alpha``: scikit-learn adds ``alpha / (2 n) ||W||^2`` to the loss of a minibatch of ``n``
  samples; here the network's L2 penalty is ``alpha / batch_size`` for every minibatch (the last,
  smaller one of an epoch included).
- The regressor's loss is ``1/2 ||p - y||^2`` per sample, averaged over samples (scikit-learn
  also averages over the outputs: the same for one output, ``n_outputs`` times smaller
  otherwise).
- Training stops early, with a ``RuntimeWarning``, if the loss becomes NaN or infinite.

scikit-learn is an optional dependency (``pip install "fastprop[sklearn]"``); ``import fastprop``
works without it and imports this module on first use of the estimators.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
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
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _validate as v
from .network import MLP
from .optimizers import SGD, Adam, Constant, InverseScaling, Optimizer
from .training import EarlyStopping, History, train

#: scikit-learn's activation names (and fastprop's own) -> fastprop's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "sigmoid": "sigmoid", "leaky_relu": "leaky_relu", "softplus": "softplus"}
#: fastprop's output activations -> scikit-learn's ``out_activation_`` names.
_OUT_NAMES = {"identity": "identity", "sigmoid": "logistic", "softmax": "softmax"}


def _real(name: str, value: object, low: float, high: float = math.inf, *,
          low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and (value > low if low_open else value >= low)
            and (value < high if high_open else value <= high)):
        raise ValueError(f"{name} must lie in {'(' if low_open else '['}{low}, {high}"
                         f"{')' if high_open else ']'}, got {value!r}")
    return float(value)


def _integer(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _choice(name: str, value: object, choices: Sequence[str], unsupported: str = "") -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}{unsupported}")
    return value


class _BaseMLP(BaseEstimator):
    """What both estimators share: parameters, checks, training, the forward pass."""

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: str = "relu", *, solver: str = "adam", alpha: float = 0.0001,
                 batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: bool = False, early_stopping: bool = False,
                 validation_fraction: float = 0.1, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, backend: str = "matrix",
                 dtype: Any = "float64") -> None:
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
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
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

    def _optimizer(self) -> Optimizer:
        solver = _choice("solver", self.solver, ("adam", "sgd"),
                         " (fastprop trains by minibatches: no 'lbfgs')")
        learning_rate_init = _real("learning_rate_init", self.learning_rate_init, 0.0,
                                   low_open=True)
        if solver == "adam":
            return Adam(learning_rate_init, _real("beta_1", self.beta_1, 0.0, 1.0, high_open=True),
                        _real("beta_2", self.beta_2, 0.0, 1.0, high_open=True),
                        _real("epsilon", self.epsilon, 0.0, low_open=True))
        schedule = _choice("learning_rate", self.learning_rate, ("constant", "invscaling"),
                           " (no 'adaptive' in fastprop)")
        momentum = _real("momentum", self.momentum, 0.0, 1.0)
        return SGD(learning_rate_init, momentum, bool(self.nesterovs_momentum) and momentum > 0,
                   InverseScaling(_real("power_t", self.power_t, 0.0))
                   if schedule == "invscaling" else Constant())

    def _batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        size = _integer("batch_size", self.batch_size, 1)
        if size > n_samples:
            warnings.warn("Got `batch_size` larger than the sample size. It is going to be "
                          "clipped", UserWarning, stacklevel=3)
        return min(size, n_samples)

    # -- training -----------------------------------------------------------------------------

    def _targets(self, y: np.ndarray, first: bool,
                 classes: Any) -> tuple[np.ndarray, int, str, str]:
        """``(Y, n_outputs, output, loss)``: the targets for :func:`fastprop.train` (float rows,
        or integer class indices), the network's output count, output and loss; sets the target
        encoding on the ``first`` call (from ``classes`` when given)."""
        raise NotImplementedError

    def _fit(self, X: Any, y: Any, incremental: bool, classes: Any = None) -> _BaseMLP:
        dtype = v.check_dtype(self.dtype)
        optimizer = self._optimizer()
        hidden = self._hidden_sizes()
        activation = _choice("activation", self.activation, list(ACTIVATIONS))
        alpha = _real("alpha", self.alpha, 0.0)
        epochs = _integer("max_iter", self.max_iter, 1)
        patience = _integer("n_iter_no_change", self.n_iter_no_change, 1)
        tol = _real("tol", self.tol, 0.0)
        first = not (incremental and hasattr(self, "net_"))
        X, y = validate_data(self, X, y, reset=first, multi_output=True, dtype=dtype,
                             order="C", y_numeric=is_regressor(self))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y, n_outputs, output, loss = self._targets(y, first, classes)
        if not first and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs, but this estimator was trained with "
                             f"{self.n_outputs_}")
        generator = np.random.default_rng(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)) \
            if first else None
        early = bool(self.early_stopping) and not incremental
        validation = None
        if early:
            X, Y, validation = self._hold_out(X, Y, y, generator)
        batch_size = self._batch_size(X.shape[0])
        self.net_ = MLP([X.shape[1], *hidden, n_outputs], ACTIVATIONS[activation], output, loss,
                        l2=alpha / batch_size, dtype=dtype)
        if first:
            self.params_ = self.net_.init(seed=generator)
            self.n_layers_ = len(hidden) + 2
            self.n_outputs_ = n_outputs
            self.out_activation_ = _OUT_NAMES[output]
            self.loss_curve_: list[float] = []
            self.t_ = 0
            self._state = None
        history = train(
            self.net_, self.params_, X, Y, optimizer=optimizer,
            epochs=1 if incremental else epochs, batch_size=batch_size,
            shuffle=bool(self.shuffle), seed=generator, validation=validation,
            early_stopping=None if incremental else EarlyStopping(
                patience, tol, "val_score" if early else "loss", restore_best=early),
            progress=bool(self.verbose), backend=self.backend, check_finite=False,
            resume=self._state)
        self._record(history, X.shape[0], early)
        if not incremental and history.stopped == "epochs":
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({epochs}) reached and the "
                          f"optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _hold_out(self, X: np.ndarray, Y: np.ndarray, y: np.ndarray,
                  generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple]:
        """``(X_train, Y_train, (X_val, Y_val))``: the early-stopping split, as scikit-learn's."""
        fraction = _real("validation_fraction", self.validation_fraction, 0.0, 1.0,
                         low_open=True, high_open=True)
        X, X_val, Y, Y_val = train_test_split(
            X, Y, test_size=fraction, random_state=int(generator.integers(2**31)),
            stratify=y if self._stratify(Y) else None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        return X, Y, (X_val, Y_val)

    def _record(self, history: History, n_samples: int, early: bool) -> None:
        """The fitted attributes after training (``loss_curve_`` grows with each call)."""
        self._state = history.state
        self.loss_curve_ = [*self.loss_curve_, *history.loss]
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ = history.epochs
        self.t_ += history.epochs * n_samples
        self.validation_scores_ = history.val_score if early else None
        self.best_validation_score_ = max(history.val_score) if early else None
        self.best_loss_ = None if early else min(self.loss_curve_)

    def _stratify(self, Y: np.ndarray) -> bool:
        """Whether the early-stopping split is stratified (as scikit-learn: for one output)."""
        return False

    def fit(self, X: Any, y: Any) -> _BaseMLP:
        """Train a new network on ``X``, ``y`` for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

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
        The network (its ``l2`` is ``alpha / batch_size``).
    params_ : numpy.ndarray
        Its flat parameters.
    coefs_, intercepts_ : list of numpy.ndarray
        Weights ``(n_in, n_out)`` and biases per layer, as scikit-learn's (views of
        ``params_``).
    loss_, loss_curve_ : float, list of float
        The last epoch's training loss, and every epoch's (partial_fit calls append).
    best_loss_ : float or None
        The lowest training loss (None with early stopping).
    validation_scores_, best_validation_score_ : list of float, float or None
        With early stopping: the validation score after every epoch, and the best one.
    n_iter_ : int
        Epochs run by the last fit (1 after partial_fit).
    t_ : int
        Training samples seen, over all calls.
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
    solver : {"adam", "sgd"}, default "adam"
    alpha : float, default 0.0001
        L2 penalty; the network's ``l2`` is ``alpha / batch_size``.
    batch_size : int or "auto", default "auto"
        ``min(200, n_samples)`` for "auto"; clipped to ``n_samples`` with a warning.
    learning_rate : {"constant", "invscaling"}, default "constant"
        The schedule of ``"sgd"``: ``learning_rate_init / (t + 1) ** power_t`` with ``t`` the
        samples seen, for "invscaling".
    learning_rate_init : float, default 0.001
    power_t : float, default 0.5
    max_iter : int, default 200
        Epochs.
    shuffle : bool, default True
    random_state : int, RandomState or None
        Seeds the initial weights, the validation split and the shuffles.
    tol : float, default 1e-4
    verbose : bool, default False
        Show a progress bar over the epochs.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data and stop when the validation score stops
        improving (then restore the best epoch's weights); otherwise stop when the training loss
        stops improving. Either by more than ``tol`` for more than ``n_iter_no_change`` epochs.
    validation_fraction : float, default 0.1
    momentum : float, default 0.9
        For ``"sgd"``, in ``[0, 1]``.
    nesterovs_momentum : bool, default True
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        For ``"adam"``.
    n_iter_no_change : int, default 10
    backend : str, default "matrix"
        fastprop's CPU backend: ``"matrix"`` or ``"naive"``.
    dtype : str or numpy dtype, default "float64"
        ``"float32"`` or ``"float64"``: the network's dtype; inputs are converted to it.
"""


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""A multilayer perceptron regressor (squared loss, identity output), trained by
    :func:`fastprop.train`; scikit-learn's ``MLPRegressor`` with fastprop's compiled training.
    See :mod:`fastprop.estimators` for the differences.
    """ + _PARAMS_DOC + _FITTED_DOC)

    def _targets(self, y: np.ndarray, first: bool,
                 classes: Any) -> tuple[np.ndarray, int, str, str]:
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        Y = np.ascontiguousarray(Y, dtype=v.check_dtype(self.dtype))
        return Y, Y.shape[1], "identity", "squared"

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch on ``X``, ``y``, from the current weights (new ones on the first call).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """The network's outputs: shape ``(n_samples,)`` for one output, else
        ``(n_samples, n_outputs)``."""
        outputs = self._forward(X)
        return outputs.ravel() if outputs.shape[1] == 1 else outputs


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""A multilayer perceptron classifier, trained by :func:`fastprop.train`;
    scikit-learn's ``MLPClassifier`` with fastprop's compiled training.

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

    def _targets(self, y: np.ndarray, first: bool,
                 classes: Any) -> tuple[np.ndarray, int, str, str]:
        """Multiclass targets go to training as class indices (cheaper than one-hot rows: no
        target row to copy into each minibatch or to read in the loss); binary and multilabel
        ones as indicator rows."""
        check_classification_targets(y)
        if first:
            multilabel = type_of_target(y).startswith("multilabel")
            self._label_binarizer = LabelBinarizer().fit(
                y if classes is None or multilabel else unique_labels(classes))
            self.classes_ = self._label_binarizer.classes_
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y has classes {unknown} not in classes_ {self.classes_}")
        if self._label_binarizer.y_type_ == "multiclass":
            return (np.searchsorted(self.classes_, y).astype(np.int64), len(self.classes_),
                    "softmax", "cross_entropy")
        Y = self._label_binarizer.transform(y).astype(v.check_dtype(self.dtype), order="C")
        return Y, Y.shape[1], "sigmoid", "binary_cross_entropy"

    def _stratify(self, Y: np.ndarray) -> bool:
        return Y.ndim == 2 and Y.shape[1] == 1

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch on ``X``, ``y``, from the current weights (new ones on the first call).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
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
        return self._fit(X, y, incremental=True, classes=classes)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (an indicator matrix for multilabel targets)."""
        outputs = self._forward(X)
        return self._label_binarizer.inverse_transform(
            outputs.ravel() if outputs.shape[1] == 1 else outputs)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_samples, n_classes)`` (two columns for binary
        targets; per-label probabilities for multilabel ones)."""
        outputs = self._forward(X)
        if outputs.shape[1] == 1:
            return np.hstack([1 - outputs, outputs])
        return outputs

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))
