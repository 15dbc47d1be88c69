"""Gradient checking against central differences in float64."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _validate as v
from .backends import DEFAULT_BACKEND
from .network import MLP


def gradient_check(net: MLP, params: np.ndarray, X: np.ndarray, Y: np.ndarray, *,
                   sample_weight: ArrayLike | None = None, backend: str = DEFAULT_BACKEND,
                   max_checks: int = 1000,
                   step: float = 6e-6, seed: int = 0) -> float:
    """Max relative error of the gradient against central differences in float64.

    The analytic gradient comes from ``net.value_and_grad`` with ``backend``, in the network's
    dtype. Each checked component ``k`` is compared with ``(L(p + h e_k) - L(p - h e_k)) / 2h``,
    ``h = step * max(1, |p_k|)``, where ``L`` is the loss of the same network in float64 at the
    parameters converted to float64. The error of component ``k`` is
    ``|g_k - d_k| / max(|g_k|, |d_k|, 1e-3 * max_j |d_j|)``: relative, except that components
    a thousand times smaller than the largest are measured against that scale (where the
    differences' rounding error, about ``1e-10`` absolute, would otherwise dominate).

    Expect about ``1e-7`` or less in float64 and ``1e-3`` or less in float32. A network with
    relu or leaky_relu can show a larger error where a step crosses a kink (a pre-activation
    within ``h`` of 0), and hinge where it crosses a margin of 0.

    Parameters
    ----------
    net : MLP
    params, X, Y : numpy.ndarray
        As for :meth:`MLP.value_and_grad`.
    sample_weight : array-like, optional
        As for :meth:`MLP.value_and_grad` (the float64 loss takes them in float64).
    backend : str, default "matrix"
        The backend whose gradient is checked.
    max_checks : int, default 1000
        Check every component when there are at most this many, else this many components
        drawn at random (without replacement, from ``seed``).
    step : float, default 6e-6
        Relative step of the differences (about the cube root of float64's epsilon).
    seed : int, default 0

    Returns
    -------
    float
        The largest error over the checked components.
    """
    if max_checks < 1:
        raise ValueError(f"max_checks must be >= 1, got {max_checks}")
    _, grad = net.value_and_grad(params, X, Y, sample_weight=sample_weight, backend=backend)
    net64 = net.with_dtype(np.float64)
    p64 = params.astype(np.float64)
    X64 = X.astype(np.float64)
    Y64 = Y.astype(np.float64) if Y.dtype.kind == "f" else Y
    if net.n_params <= max_checks:
        indices = np.arange(net.n_params)
    else:
        indices = v.check_seed(seed).choice(net.n_params, max_checks, replace=False)
    differences = np.empty(len(indices))
    for n, k in enumerate(indices):
        original = p64[k]
        h = step * max(1.0, abs(original))
        p64[k] = original + h
        up = net64.loss(p64, X64, Y64, sample_weight=sample_weight)
        p64[k] = original - h
        down = net64.loss(p64, X64, Y64, sample_weight=sample_weight)
        p64[k] = original
        differences[n] = (up - down) / (2 * h)
    analytic = grad[indices].astype(np.float64)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(differences)),
                       1e-3 * np.abs(differences).max())
    scale[scale == 0] = 1.0
    return float(np.max(np.abs(analytic - differences) / scale))
