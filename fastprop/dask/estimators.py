"""fastprop's scikit-learn estimators on Dask arrays: ``fit`` trains with
:func:`fastprop.dask.train` (L-BFGS-B for ``solver="lbfgs"``, local SGD for ``"sgd"`` and
``"adam"``), and the predictions map over the chunks, as Dask arrays.

:class:`fastprop.MLPRegressor` and :class:`fastprop.MLPClassifier` call :func:`fit` when ``X``,
``y`` or ``sample_weight`` is a Dask array, and :func:`over_chunks` for their predictions.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import is_classifier

from .. import _validate as v
from ..estimators import _OUT_NAMES, _BaseMLP
from ..network import MLP
from .cluster import get_client
from .training import train


def _inputs(X: object, dtype: np.dtype) -> da.Array:
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError(f"X must be a 2-D dask array when y or sample_weight is one, got "
                        f"{type(X).__name__}")
    if X.dtype.kind not in "iuf":
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    return X.astype(dtype).rechunk({1: -1})


def _targets(estimator: _BaseMLP, y: object, X: da.Array) -> tuple[da.Array, int, str, str]:
    """``(Y, n_outputs, output, loss)`` as the estimator's ``_targets`` makes them, block by
    block, chunked as ``X``; a classifier's classes come from one pass over ``y``."""
    if not isinstance(y, da.Array) or y.shape[:1] != X.shape[:1]:
        raise TypeError(f"y must be a dask array of {X.shape[0]} samples when X is one, got "
                        f"{type(y).__name__} of shape {getattr(y, 'shape', None)}")
    y = y.rechunk({0: X.chunks[0]})
    if is_classifier(estimator):
        if y.ndim != 1:
            raise ValueError("y on Dask must be 1-D class labels (no multilabel indicator "
                             "matrix)")
        classes = da.unique(y).compute()
        _, n_outputs, output, loss = estimator._targets(classes, True, None, False)
    else:
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        output, loss = "identity", "squared"

    def encode(block: np.ndarray) -> np.ndarray:
        return estimator._targets(block, False, None, False)[0]

    if output == "softmax":
        return y.map_blocks(encode, dtype=np.int64), n_outputs, output, loss
    dtype = v.check_dtype(estimator.dtype)
    Y = y.map_blocks(encode, dtype=dtype, chunks=(y.chunks[0], (n_outputs,)),
                     **({"new_axis": 1} if y.ndim == 1 else {}))
    return Y, n_outputs, output, loss


def _weights(sample_weight: object, X: da.Array) -> tuple[da.Array | None, float]:
    """``(weights chunked as X, their sum)``: the sample count for None."""
    if sample_weight is None:
        return None, float(X.shape[0])
    if not isinstance(sample_weight, da.Array):
        sample_weight = da.from_array(np.asarray(sample_weight), chunks=(X.chunks[0],))
    weights = sample_weight.rechunk({0: X.chunks[0]})
    return weights, float(weights.sum(dtype=np.float64).compute())


def fit(estimator: _BaseMLP, X: object, y: object, sample_weight: object) -> _BaseMLP:
    """Fit ``estimator`` on Dask data with :func:`fastprop.dask.train` (a new network each time:
    no warm start on Dask)."""
    dtype, solver, hidden, activation, alpha, max_iter = estimator._settings()
    X = _inputs(X, dtype)
    Y, n_outputs, output, loss = _targets(estimator, y, X)
    weights, weight_sum = _weights(sample_weight, X)
    sizes = [X.shape[1], *hidden, n_outputs]
    client = get_client()
    if solver == "lbfgs":
        net = MLP(sizes, activation, output, loss, l2=alpha / weight_sum, dtype=dtype)
        params = net.init(seed=estimator._generator())
        history = train(net, params, X, Y, method="lbfgs", sample_weight=weights,
                        max_iter=max_iter, max_fun=estimator.max_fun, tol=estimator.tol,
                        progress=False, backend=estimator.backend, client=client)
    else:
        groups = len(client.scheduler_info()["workers"])
        batch_size = estimator._batch_size(X.shape[0] // groups)
        net = MLP(sizes, activation, output, loss,
                  l2=alpha / (batch_size * weight_sum / X.shape[0]), dtype=dtype)
        params = net.init(seed=estimator._generator())
        history = train(net, params, X, Y, method="local-sgd", sample_weight=weights,
                        optimizer=estimator._optimizer(float(estimator.learning_rate_init)),
                        epochs=max_iter, batch_size=batch_size, shuffle=bool(estimator.shuffle),
                        seed=estimator._generator(), groups=groups, progress=False,
                        backend=estimator.backend, client=client)
    estimator.net_, estimator.params_ = net, params
    estimator.n_features_in_ = X.shape[1]
    estimator.n_layers_, estimator.n_outputs_ = len(sizes), n_outputs
    estimator.out_activation_ = _OUT_NAMES[output]
    estimator.n_iter_ = len(history.loss)
    estimator.loss_curve_ = list(history.loss)
    estimator.loss_ = estimator.loss_curve_[-1]
    estimator.best_loss_ = min(estimator.loss_curve_)
    estimator.t_ = estimator.n_iter_ * X.shape[0] if solver != "lbfgs" else 0
    estimator.validation_scores_ = estimator.best_validation_score_ = None
    estimator._state = estimator._plateau = None
    return estimator


def over_chunks(method: Any, X: da.Array, columns: int | None, dtype: Any) -> da.Array:
    """``method`` (a fitted estimator's prediction on NumPy rows) mapped over the row chunks of
    ``X``: a Dask array of ``columns`` columns, or 1-D for None."""
    X = X.rechunk({1: -1})
    if columns is None:
        return X.map_blocks(method, drop_axis=1, dtype=dtype)
    return X.map_blocks(method, chunks=(X.chunks[0], (columns,)), dtype=dtype)
