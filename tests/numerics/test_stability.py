"""Logits of +-1000: finite losses and gradients, equal to the stable float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS, DTYPES, rel_diff
from reference import reference_loss_and_grad

import fastprop as fp

EXTREME = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [0.0, 0.0, -1000.0]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("output", "loss", "Y"), [
    ("softmax", "cross_entropy", np.array([1, 0, 2])),
    ("softmax", "cross_entropy", np.eye(3)[[1, 2, 0]]),
    ("sigmoid", "binary_cross_entropy", np.array([[1.0, 1, 0], [0, 1, 1], [1, 0, 1]])),
    ("softmax", "squared", np.eye(3)[[1, 2, 0]]),
    ("sigmoid", "squared", np.eye(3)[[1, 2, 0]]),
])
def test_extreme_logits(backend, dtype, output, loss, Y):
    net = fp.MLP([3, 3], (), output=output, loss=loss, dtype=dtype)
    params = net.pack([(np.eye(3), np.zeros(3))])  # the scores are the inputs
    X = EXTREME.astype(dtype)
    Y = Y.astype(dtype) if Y.dtype.kind == "f" else Y
    value, grad = net.value_and_grad(params, X, Y, backend=backend)
    assert np.isfinite(value) and np.isfinite(grad).all()
    ref_value, ref_grad = reference_loss_and_grad(net.sizes, (), output, loss, 0.0, params, X, Y)
    assert rel_diff(value, ref_value) < 1e-6
    assert rel_diff(grad, ref_grad) < 1e-6


def test_known_cross_entropy_value():
    """Label 1 on scores (1000, -1000, 0): loss 2000, gradient (1, -1, 0) per score."""
    net = fp.MLP([3, 3], (), output="softmax", loss="cross_entropy")
    params = net.pack([(np.eye(3), np.zeros(3))])
    value, grad = net.value_and_grad(params, EXTREME[:1].copy(), np.array([1]))
    assert value == 2000.0
    (_, db), = net.unpack(grad)
    assert (db == [1.0, -1.0, 0.0]).all()


@pytest.mark.parametrize("activation", ["sigmoid", "softplus", "tanh"])
def test_saturated_hidden_units_stay_finite(activation):
    net = fp.MLP([3, 3, 3], activation, output="softmax", loss="cross_entropy")
    params = net.pack([(np.eye(3), np.zeros(3)), (np.eye(3), np.zeros(3))])
    value, grad = net.value_and_grad(params, EXTREME.copy(), np.array([0, 1, 2]))
    assert np.isfinite(value) and np.isfinite(grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_certain_correct_labels_give_exactly_zero_gradient(backend, dtype):
    """One class: p = 1, so p - 1 must be exactly 0 for any batch size (found by hypothesis)."""
    net = fp.MLP([1, 1], (), output="softmax", loss="cross_entropy", dtype=dtype)
    params = net.pack([(np.array([[0.7]]), np.array([0.2]))])
    X = np.array([[0.3], [-1.2], [2.0]], dtype=dtype)
    value, grad = net.value_and_grad(params, X, np.zeros(3, dtype=np.int64), backend=backend)
    assert value == 0.0
    assert (grad == 0.0).all()
