"""Float64 reference implementation of an MLP's loss and gradient (test oracle only).

This module exists purely so that the test suite can check fastprop's compiled kernels.
It is written for clarity, not speed: plain numpy, explicit per-layer matrix operations
and textbook backpropagation.  It deliberately shares no code with the ``fastprop``
package.  :func:`torch_loss_and_grad` is a second, independent oracle that uses PyTorch
autograd (torch is imported lazily so that this module imports without it).

Contract
--------
* ``sizes = [n0, n1, ..., nL]``; ``L >= 1`` layers.
* ``params`` is one flat vector, layer by layer: ``W1`` (shape ``(n1, n0)``, C order),
  ``b1`` (``n1``), ``W2`` (``(n2, n1)``), ``b2``, ...
* Forward pass for a batch ``X`` of shape ``(B, n0)``: ``a0 = X``,
  ``z_l = a_{l-1} @ W_l.T + b_l``, ``a_l = act_l(z_l)``; hidden activations come from
  ``activations`` (``L - 1`` names), the last one from ``output``.
* Batch loss = mean over samples of the per-sample loss + ``l2 / 2 * sum_l ||W_l||^2``
  (weights only, not biases); with sample weights ``w``, the mean is ``sum_i w_i loss_i /
  sum_i w_i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "HIDDEN_ACTIVATIONS",
    "OUTPUT_ACTIVATIONS",
    "VALID_OUTPUT_LOSS",
    "param_count",
    "reference_forward",
    "reference_loss",
    "reference_loss_and_grad",
    "torch_loss_and_grad",
]

HIDDEN_ACTIVATIONS: tuple[str, ...] = (
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "softplus",
)
OUTPUT_ACTIVATIONS: tuple[str, ...] = ("identity", "sigmoid", "softmax")

#: Every valid ``(output, loss)`` pair.
VALID_OUTPUT_LOSS: tuple[tuple[str, str], ...] = (
    ("identity", "squared"),
    ("sigmoid", "squared"),
    ("softmax", "squared"),
    ("softmax", "cross_entropy"),
    ("sigmoid", "binary_cross_entropy"),
    ("identity", "hinge"),
)

LEAKY_SLOPE = 0.01

Array = NDArray[np.float64]


# ---------------------------------------------------------------------------
# Validation and parameter unpacking
# ---------------------------------------------------------------------------


def param_count(sizes: Sequence[int]) -> int:
    """Return the length of the flat parameter vector for a network.

    Parameters
    ----------
    sizes : sequence of int
        ``[n0, n1, ..., nL]``: input width, then the width of each layer.

    Returns
    -------
    int
        ``sum_l n_l * n_{l-1} + n_l``.
    """
    return sum(int(sizes[i]) * int(sizes[i - 1]) + int(sizes[i]) for i in range(1, len(sizes)))


def _check_architecture(
    sizes: Sequence[int], activations: Sequence[str], output: str
) -> None:
    if len(sizes) < 2:
        raise ValueError(f"sizes must have at least 2 entries (L >= 1), got {list(sizes)}")
    if any(int(n) < 1 for n in sizes):
        raise ValueError(f"all sizes must be >= 1, got {list(sizes)}")
    if len(activations) != len(sizes) - 2:
        raise ValueError(
            f"need {len(sizes) - 2} hidden activations for sizes {list(sizes)}, "
            f"got {len(activations)}"
        )
    for name in activations:
        if name not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"unknown hidden activation {name!r}")
    if output not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output activation {output!r}")


def _check_loss(output: str, loss: str) -> None:
    if (output, loss) not in VALID_OUTPUT_LOSS:
        raise ValueError(f"loss {loss!r} is not valid with output activation {output!r}")


def _as_params(sizes: Sequence[int], params: ArrayLike) -> Array:
    flat = np.asarray(params, dtype=np.float64).reshape(-1)
    expected = param_count(sizes)
    if flat.size != expected:
        raise ValueError(f"params has {flat.size} entries, expected {expected}")
    return flat


def _as_inputs(sizes: Sequence[int], X: ArrayLike) -> Array:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != int(sizes[0]):
        raise ValueError(f"X must have shape (B, {sizes[0]}), got {x.shape}")
    if x.shape[0] < 1:
        raise ValueError("X must contain at least one sample")
    return x


def _unpack(sizes: Sequence[int], flat: Array) -> list[tuple[Array, Array]]:
    """Split the flat parameter vector into a list of ``(W_l, b_l)`` (copies)."""
    layers = []
    offset = 0
    for i in range(1, len(sizes)):
        n_in, n_out = int(sizes[i - 1]), int(sizes[i])
        W = flat[offset : offset + n_out * n_in].reshape(n_out, n_in).copy()
        offset += n_out * n_in
        b = flat[offset : offset + n_out].copy()
        offset += n_out
        layers.append((W, b))
    return layers


def _pack(grads: list[tuple[Array, Array]]) -> Array:
    """Inverse of :func:`_unpack`: concatenate ``[(dW_l, db_l), ...]`` in the flat layout."""
    pieces = []
    for dW, db in grads:
        pieces.append(dW.reshape(-1))
        pieces.append(db.reshape(-1))
    return np.concatenate(pieces).astype(np.float64)


def _as_targets(loss: str, Y: ArrayLike, batch: int, n_out: int) -> tuple[Array, bool]:
    """Return ``(targets, is_labels)``.

    Integer class labels (a 1-D array) are returned as an int64 array with
    ``is_labels=True``; anything else is returned as a float64 ``(B, nL)`` array.
    """
    y = np.asarray(Y)
    if loss in ("cross_entropy", "hinge") and y.ndim == 1:
        if y.shape[0] != batch:
            raise ValueError(f"labels must have shape ({batch},), got {y.shape}")
        labels = y.astype(np.int64)
        if not np.array_equal(labels, y):
            raise ValueError("class labels must be integers")
        if np.any(labels < 0) or np.any(labels >= n_out):
            raise ValueError(f"class labels must lie in [0, {n_out})")
        return labels, True
    if loss == "hinge":
        raise ValueError("hinge loss needs integer class labels of shape (B,)")
    t = np.asarray(y, dtype=np.float64)
    if t.shape != (batch, n_out):
        raise ValueError(f"Y must have shape ({batch}, {n_out}), got {t.shape}")
    return t, False


# ---------------------------------------------------------------------------
# Activations (elementwise, numerically stable)
# ---------------------------------------------------------------------------


def _sigmoid(z: Array) -> Array:
    # exp(-|z|) never overflows; pick the algebraically equivalent branch by sign.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(z: Array) -> Array:
    return np.logaddexp(0.0, z)


def _log_softmax(z: Array) -> Array:
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return z - lse


def _softmax(z: Array) -> Array:
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def _hidden(name: str, z: Array) -> Array:
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "softplus":
        return _softplus(z)
    raise ValueError(f"unknown hidden activation {name!r}")


def _hidden_derivative(name: str, z: Array) -> Array:
    """Elementwise derivative d act(z) / dz of a hidden activation."""
    if name == "identity":
        return np.ones_like(z)
    if name == "sigmoid":
        s = _sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        t = np.tanh(z)
        return 1.0 - t * t
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY_SLOPE)
    if name == "softplus":
        return _sigmoid(z)
    raise ValueError(f"unknown hidden activation {name!r}")


def _output(name: str, z: Array) -> Array:
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "softmax":
        return _softmax(z)
    raise ValueError(f"unknown output activation {name!r}")


# ---------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------


def _forward_all(
    sizes: Sequence[int],
    activations: Sequence[str],
    layers: list[tuple[Array, Array]],
    X: Array,
) -> tuple[list[Array], list[Array]]:
    """Run the network, keeping every layer's input ``a_{l-1}`` and pre-activation ``z_l``.

    Returns ``(inputs, zs)`` where ``inputs[l]`` is the input of layer ``l + 1``
    (``inputs[0] = X``) and ``zs[l]`` its pre-activation.  The output activation is
    *not* applied here.
    """
    inputs: list[Array] = []
    zs: list[Array] = []
    a = X
    n_layers = len(sizes) - 1
    for k in range(n_layers):  # k = 0 is layer 1 of the math
        W, b = layers[k]
        z = a @ W.T + b
        inputs.append(a)
        zs.append(z)
        if k < n_layers - 1:
            a = _hidden(activations[k], z)
    return inputs, zs


def reference_forward(
    sizes: Sequence[int],
    activations: Sequence[str],
    output: str,
    params: ArrayLike,
    X: ArrayLike,
) -> NDArray[np.float64]:
    """Network output (after the output activation) in float64.

    Parameters
    ----------
    sizes : sequence of int
        ``[n0, n1, ..., nL]``: input width, then the width of each layer.
    activations : sequence of str
        ``L - 1`` hidden activation names, one of ``"identity"``, ``"sigmoid"``,
        ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"softplus"``.
    output : str
        Output activation: ``"identity"``, ``"sigmoid"`` or ``"softmax"`` (row-wise).
    params : array_like
        Flat parameter vector ``[W1 (C order), b1, W2, b2, ...]``.
    X : array_like
        Inputs, shape ``(B, n0)``, one sample per row.

    Returns
    -------
    numpy.ndarray
        Float64 array of shape ``(B, nL)``.
    """
    _check_architecture(sizes, activations, output)
    layers = _unpack(sizes, _as_params(sizes, params))
    x = _as_inputs(sizes, X)
    _, zs = _forward_all(sizes, activations, layers, x)
    return _output(output, zs[-1])


# ---------------------------------------------------------------------------
# Losses: per-sample values and d(per-sample loss)/dz_L
# ---------------------------------------------------------------------------


def _per_sample_loss(
    output: str, loss: str, zL: Array, targets: Array, is_labels: bool
) -> Array:
    """Per-sample loss, shape ``(B,)``, computed from the last pre-activation ``zL``."""
    batch = zL.shape[0]
    rows = np.arange(batch)
    if loss == "squared":
        p = _output(output, zL)
        diff = p - targets
        return 0.5 * np.sum(diff * diff, axis=1)
    if loss == "cross_entropy":
        logp = _log_softmax(zL)
        if is_labels:
            return -logp[rows, targets]
        return -np.sum(targets * logp, axis=1)
    if loss == "binary_cross_entropy":
        # -[y log s(z) + (1 - y) log(1 - s(z))] == softplus(z) - y z, for any real y.
        return np.sum(_softplus(zL) - targets * zL, axis=1)
    if loss == "hinge":
        correct = zL[rows, targets][:, None]
        margins = zL - correct + 1.0
        margins[rows, targets] = 0.0
        return np.sum(np.maximum(margins, 0.0), axis=1)
    raise ValueError(f"unknown loss {loss!r}")


def _per_sample_loss_grad(
    output: str, loss: str, zL: Array, targets: Array, is_labels: bool
) -> Array:
    """Gradient of each sample's loss w.r.t. its own ``zL`` row, shape ``(B, nL)``."""
    batch, n_out = zL.shape
    rows = np.arange(batch)
    if loss == "squared":
        p = _output(output, zL)
        dp = p - targets  # d loss / d p
        if output == "identity":
            return dp
        if output == "sigmoid":
            return dp * p * (1.0 - p)
        if output == "softmax":
            # Full Jacobian: dp_k/dz_j = p_k (delta_kj - p_j), so
            # dz_j = sum_k dp_k p_k (delta_kj - p_j) = p_j (dp_j - sum_k dp_k p_k).
            return p * (dp - np.sum(dp * p, axis=1, keepdims=True))
        raise ValueError(f"unknown output activation {output!r}")
    if loss == "cross_entropy":
        if is_labels:
            y = np.zeros((batch, n_out))
            y[rows, targets] = 1.0
        else:
            y = targets
        # loss = -sum_k y_k z_k + (sum_k y_k) logsumexp(z)
        return -y + np.sum(y, axis=1, keepdims=True) * _softmax(zL)
    if loss == "binary_cross_entropy":
        return _sigmoid(zL) - targets
    if loss == "hinge":
        correct = zL[rows, targets][:, None]
        margins = zL - correct + 1.0
        active = (margins > 0).astype(np.float64)  # strict: margin == 0 contributes 0
        active[rows, targets] = 0.0
        dz = active.copy()
        dz[rows, targets] = -np.sum(active, axis=1)
        return dz
    raise ValueError(f"unknown loss {loss!r}")


def _l2_penalty(layers: list[tuple[Array, Array]], l2: float) -> float:
    total = 0.0
    for W, _ in layers:
        total += float(np.sum(W * W))
    return 0.5 * float(l2) * total


def reference_loss(
    sizes: Sequence[int],
    activations: Sequence[str],
    output: str,
    loss: str,
    l2: float,
    params: ArrayLike,
    X: ArrayLike,
    Y: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Batch loss (forward pass only), in float64.

    Parameters are as for :func:`reference_loss_and_grad`.

    Returns
    -------
    float
        ``mean_i loss_i + l2 / 2 * sum_l ||W_l||_F^2``.
    """
    _check_architecture(sizes, activations, output)
    _check_loss(output, loss)
    layers = _unpack(sizes, _as_params(sizes, params))
    x = _as_inputs(sizes, X)
    targets, is_labels = _as_targets(loss, Y, x.shape[0], int(sizes[-1]))
    _, zs = _forward_all(sizes, activations, layers, x)
    per_sample = _per_sample_loss(output, loss, zs[-1], targets, is_labels)
    return float(np.average(per_sample, weights=sample_weight)) + _l2_penalty(layers, l2)


def reference_loss_and_grad(
    sizes: Sequence[int],
    activations: Sequence[str],
    output: str,
    loss: str,
    l2: float,
    params: ArrayLike,
    X: ArrayLike,
    Y: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> tuple[float, NDArray[np.float64]]:
    """Batch loss and its gradient w.r.t. the flat parameters, by textbook backprop.

    Parameters
    ----------
    sizes : sequence of int
        ``[n0, n1, ..., nL]``: input width, then the width of each layer (``L >= 1``).
    activations : sequence of str
        ``L - 1`` hidden activation names, one of ``"identity"``, ``"sigmoid"``,
        ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"softplus"``.
    output : str
        Output activation: ``"identity"``, ``"sigmoid"`` or ``"softmax"``.
    loss : str
        ``"squared"`` (any output), ``"cross_entropy"`` (output ``"softmax"``),
        ``"binary_cross_entropy"`` (output ``"sigmoid"``) or ``"hinge"``
        (output ``"identity"``, integer labels).
    l2 : float
        L2 coefficient; the penalty ``l2 / 2 * sum_l ||W_l||^2`` covers weights only.
    params : array_like
        Flat parameter vector ``[W1 (C order), b1, W2, b2, ...]``; cast to float64.
    X : array_like
        Inputs, shape ``(B, n0)``; cast to float64.
    Y : array_like
        Targets: float ``(B, nL)``, or integer class labels ``(B,)`` for
        ``"cross_entropy"`` and ``"hinge"``.
    sample_weight : array_like, optional
        One weight per sample: the mean over samples becomes a weighted mean.

    Returns
    -------
    loss : float
        ``mean_i loss_i + l2 / 2 * sum_l ||W_l||^2``.
    grad : numpy.ndarray
        Float64 gradient, same flat layout and length as ``params``.
    """
    _check_architecture(sizes, activations, output)
    _check_loss(output, loss)
    layers = _unpack(sizes, _as_params(sizes, params))
    x = _as_inputs(sizes, X)
    batch = x.shape[0]
    targets, is_labels = _as_targets(loss, Y, batch, int(sizes[-1]))

    # Forward.
    inputs, zs = _forward_all(sizes, activations, layers, x)
    per_sample = _per_sample_loss(output, loss, zs[-1], targets, is_labels)
    w = np.ones(batch) if sample_weight is None else np.asarray(sample_weight, np.float64)
    value = float(np.average(per_sample, weights=w)) + _l2_penalty(layers, l2)

    # Backward.  delta = d(batch loss) / d z_l, shape (B, n_l); w_i / sum(w) is the mean.
    n_layers = len(sizes) - 1
    delta = (_per_sample_loss_grad(output, loss, zs[-1], targets, is_labels)
             * (w / w.sum())[:, None])
    grads: list[tuple[Array, Array]] = [None] * n_layers  # type: ignore[list-item]
    for k in reversed(range(n_layers)):  # k = 0 is layer 1 of the math
        W, _ = layers[k]
        a_prev = inputs[k]
        dW = delta.T @ a_prev + float(l2) * W  # (n_l, n_{l-1})
        db = np.sum(delta, axis=0)  # (n_l,)
        grads[k] = (dW, db)
        if k > 0:
            # z_l = a_{l-1} W_l^T + b_l  =>  d/da_{l-1} = delta W_l; then through act'.
            delta = (delta @ W) * _hidden_derivative(activations[k - 1], zs[k - 1])
    return value, _pack(grads)


# ---------------------------------------------------------------------------
# Independent oracle: PyTorch autograd
# ---------------------------------------------------------------------------


def torch_loss_and_grad(
    sizes: Sequence[int],
    activations: Sequence[str],
    output: str,
    loss: str,
    l2: float,
    params: ArrayLike,
    X: ArrayLike,
    Y: ArrayLike,
) -> tuple[float, NDArray[np.float64]]:
    """Compute what :func:`reference_loss_and_grad` does, with torch autograd in float64.

    Parameters
    ----------
    sizes, activations, output, loss, l2, params, X, Y
        Exactly as for :func:`reference_loss_and_grad`.

    Returns
    -------
    loss : float
        The batch loss.
    grad : numpy.ndarray
        Float64 gradient, same flat layout as ``params``.

    Raises
    ------
    ImportError
        If torch is not installed.
    """
    import torch
    import torch.nn.functional as F

    _check_architecture(sizes, activations, output)
    _check_loss(output, loss)
    flat_np = _as_params(sizes, params)
    x_np = _as_inputs(sizes, X)
    batch = x_np.shape[0]
    targets_np, is_labels = _as_targets(loss, Y, batch, int(sizes[-1]))

    dt = torch.float64
    theta = torch.tensor(flat_np, dtype=dt, requires_grad=True)
    x = torch.tensor(x_np, dtype=dt)

    hidden_fns: dict[str, Any] = {
        "identity": lambda t: t,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda t: F.leaky_relu(t, negative_slope=LEAKY_SLOPE),
        # threshold large enough that torch never switches to its linear shortcut
        # before float64 rounding would make it exact anyway.
        "softplus": lambda t: F.softplus(t, beta=1.0, threshold=40.0),
    }

    weights = []
    a = x
    z = x
    offset = 0
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        n_in, n_out = int(sizes[i]), int(sizes[i + 1])
        W = theta[offset : offset + n_out * n_in].view(n_out, n_in)
        offset += n_out * n_in
        b = theta[offset : offset + n_out]
        offset += n_out
        weights.append(W)
        z = F.linear(a, W, b)
        if i < n_layers - 1:
            a = hidden_fns[activations[i]](z)

    if loss == "squared":
        if output == "identity":
            p = z
        elif output == "sigmoid":
            p = torch.sigmoid(z)
        else:
            p = F.softmax(z, dim=1)
        y = torch.tensor(targets_np, dtype=dt)
        per_sample = 0.5 * ((p - y) ** 2).sum(dim=1)
    elif loss == "cross_entropy":
        logp = F.log_softmax(z, dim=1)
        if is_labels:
            labels = torch.tensor(targets_np, dtype=torch.int64)
            per_sample = -logp.gather(1, labels[:, None]).squeeze(1)
        else:
            y = torch.tensor(targets_np, dtype=dt)
            per_sample = -(y * logp).sum(dim=1)
    elif loss == "binary_cross_entropy":
        y = torch.tensor(targets_np, dtype=dt)
        per_sample = F.binary_cross_entropy_with_logits(z, y, reduction="none").sum(dim=1)
    elif loss == "hinge":
        labels = torch.tensor(targets_np, dtype=torch.int64)
        correct = z.gather(1, labels[:, None])
        margins = z - correct + 1.0
        mask = torch.ones_like(z)
        mask[torch.arange(batch), labels] = 0.0
        per_sample = (F.relu(margins) * mask).sum(dim=1)  # relu'(0) = 0: strict margin
    else:  # pragma: no cover - rejected by _check_loss
        raise ValueError(f"unknown loss {loss!r}")

    total = per_sample.mean()
    if float(l2) != 0.0:
        total = total + 0.5 * float(l2) * sum((W * W).sum() for W in weights)
    total.backward()
    assert theta.grad is not None
    return float(total.detach()), theta.grad.detach().numpy().astype(np.float64)
