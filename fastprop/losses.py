"""Output activations and losses: per-sample value and output delta, in compiled code.

Every function here works on the raw scores ``z`` of one sample (the last layer's output before the
output activation), so the stable forms are available: cross-entropy through log-sum-exp on the
logits, binary cross-entropy as ``max(z, 0) - y z + log1p(exp(-|z|))``. Logits of +-1000 give finite
losses and gradients.

Per-sample losses, with ``p`` the output activation of ``z``:

- ``squared``: ``1/2 ||p - y||^2``, with any output activation;
- ``cross_entropy``: ``-sum_k y_k log softmax(z)_k`` (output ``softmax``); ``y`` is a row of real
  targets (one-hot or soft; the formula and its gradient ``softmax(z) sum(y) - y`` hold for any
  real row) or an integer label;
- ``binary_cross_entropy``: ``-sum_k [y_k log p_k + (1 - y_k) log(1 - p_k)]`` (output ``sigmoid``);
  exact for any real ``y``;
- ``hinge``: the multiclass SVM loss ``sum_{j != y} max(0, z_j - z_y + 1)`` on raw scores (output
  ``identity``, integer labels); a margin of exactly 0 counts as inactive (subgradient 0).
"""

from __future__ import annotations

import math

from ._jit import jit
from ._kernel_ids import (
    BINARY_CROSS_ENTROPY,
    CROSS_ENTROPY,
    HINGE,
    OUT_SIGMOID,
    OUT_SOFTMAX,
)
from .activations import exp_nonpositive, sigmoid


@jit
def _max(z):
    m = z[0]
    for k in range(1, z.shape[0]):
        m = max(m, z[k])
    return m


@jit
def _sum_exp(z, m):
    s = z[0] * 0
    for k in range(z.shape[0]):
        s += math.exp(z[k] - m)
    return s


@jit
def output_activation(out_id, z, p):
    """Write the output activation of the scores ``z`` into ``p`` (``p`` may be ``z`` itself)."""
    if out_id == OUT_SOFTMAX:
        m = _max(z)
        s = _sum_exp(z, m)
        for k in range(z.shape[0]):
            p[k] = math.exp(z[k] - m) / s
    elif out_id == OUT_SIGMOID:
        for k in range(z.shape[0]):
            p[k] = sigmoid(z[k])
    else:
        for k in range(z.shape[0]):
            p[k] = z[k]


@jit(inline="always")
def loss_and_delta(loss_id, out_id, z, Y, labels, i, scale, delta):
    """Loss of sample ``i`` and ``scale * dloss/dz`` written into ``delta``.

    ``z`` is the sample's score row; ``delta`` may be the same array (every ``z[k]`` is read before
    ``delta[k]`` is written). The target is ``labels[i]`` when ``labels`` is not empty, else the
    row ``Y[i]``.
    """
    if loss_id == CROSS_ENTROPY:
        return _cross_entropy_and_delta(z, Y, labels, i, scale, delta)
    if loss_id == BINARY_CROSS_ENTROPY:
        return _binary_cross_entropy_and_delta(z, Y, i, scale, delta)
    if loss_id == HINGE:
        return _hinge_and_delta(z, labels, i, scale, delta)
    return _squared_loss_and_delta(out_id, z, Y, i, scale, delta)


@jit
def batch_loss_and_delta(loss_id, out_id, Z, Y, labels, sample_weights, scale, row_losses):
    """:func:`loss_and_delta` for every row of the scores ``Z``, in place: ``row_losses[i]`` is
    sample ``i``'s loss times its weight ``sample_weights[i]``, and ``Z[i]`` becomes its delta,
    scaled by ``sample_weights[i] * scale``.

    The loss is chosen once for the whole batch, not per row inside the row loop, where the
    choice costs more than the arithmetic of a narrow output layer.
    """
    if loss_id == CROSS_ENTROPY:
        for i in range(Z.shape[0]):
            row_losses[i] = sample_weights[i] * _cross_entropy_and_delta(
                Z[i], Y, labels, i, sample_weights[i] * scale, Z[i])
    elif loss_id == BINARY_CROSS_ENTROPY:
        for i in range(Z.shape[0]):
            row_losses[i] = sample_weights[i] * _binary_cross_entropy_and_delta(
                Z[i], Y, i, sample_weights[i] * scale, Z[i])
    elif loss_id == HINGE:
        for i in range(Z.shape[0]):
            row_losses[i] = sample_weights[i] * _hinge_and_delta(
                Z[i], labels, i, sample_weights[i] * scale, Z[i])
    else:
        for i in range(Z.shape[0]):
            row_losses[i] = sample_weights[i] * _squared_loss_and_delta(
                out_id, Z[i], Y, i, sample_weights[i] * scale, Z[i])


@jit(inline="always")
def _cross_entropy_and_delta(z, Y, labels, i, scale, delta):
    """Cross-entropy of softmax(z) against ``labels[i]`` (when ``labels`` is not empty) or the
    row ``Y[i]``. One exp per score: ``delta`` first holds ``exp(z - max z)``; what the loss
    needs of ``z`` is read before (``delta`` may be ``z``)."""
    use_labels = labels.shape[0] > 0
    n = z.shape[0]
    t = type(scale)
    m = _max(z)
    if use_labels:
        loss = m - z[labels[i]]
        y_sum = t(1)
    else:
        loss = t(0)
        y_sum = t(0)
        for k in range(n):
            yk = Y[i, k]
            y_sum += yk
            loss += yk * (m - z[k])
    for k in range(n):  # (no sum here: a sum in order would keep this loop out of SIMD)
        delta[k] = exp_nonpositive(z[k] - m)
    s = t(0)
    for k in range(n):
        s += delta[k]
    loss += y_sum * math.log(s)
    if use_labels:
        y = labels[i]
        for k in range(n):  # one expression: p - 1 is exactly 0 when p rounds to 1
            delta[k] = (delta[k] / s - (t(1) if k == y else t(0))) * scale
    else:
        for k in range(n):
            delta[k] = (delta[k] / s * y_sum - Y[i, k]) * scale
    return loss


@jit(inline="always")
def _binary_cross_entropy_and_delta(z, Y, i, scale, delta):
    """Binary cross-entropy of sigmoid(z) against the row ``Y[i]``, in the stable form."""
    t = type(scale)
    loss = t(0)
    for k in range(z.shape[0]):
        zk = z[k]
        yk = Y[i, k]
        loss += (max(zk, t(0)) - yk * zk) + math.log1p(math.exp(-abs(zk)))
        delta[k] = (sigmoid(zk) - yk) * scale
    return loss


@jit(inline="always")
def _hinge_and_delta(z, labels, i, scale, delta):
    """Multiclass hinge loss of the raw scores ``z`` against ``labels[i]``."""
    t = type(scale)
    loss = t(0)
    y = labels[i]
    zy = z[y]
    active = 0
    for k in range(z.shape[0]):
        margin = z[k] - zy + t(1)
        if k != y and margin > 0:
            loss += margin
            active += 1
            delta[k] = scale
        else:
            delta[k] = t(0)
    delta[y] = -t(active) * scale
    return loss


@jit(inline="always")
def _squared_loss_and_delta(out_id, z, Y, i, scale, delta):
    """``1/2 ||p - y||^2`` for ``p`` the output activation of ``z``, and its scaled delta."""
    n = z.shape[0]
    t = type(scale)
    loss = t(0)
    if out_id == OUT_SOFTMAX:
        # delta = J^T g with J the softmax Jacobian: p * (g - <p, g>), g = p - y.
        m = _max(z)
        s = _sum_exp(z, m)
        p_dot_g = t(0)
        for k in range(n):
            p = math.exp(z[k] - m) / s
            g = p - Y[i, k]
            loss += g * g
            p_dot_g += p * g
        for k in range(n):
            p = math.exp(z[k] - m) / s
            delta[k] = p * ((p - Y[i, k]) - p_dot_g) * scale
    else:
        for k in range(n):
            if out_id == OUT_SIGMOID:
                p = sigmoid(z[k])
                slope = p * (t(1) - p)
            else:
                p = z[k]
                slope = t(1)
            g = p - Y[i, k]
            loss += g * g
            delta[k] = g * slope * scale
    return loss * t(0.5)
