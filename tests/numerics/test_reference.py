"""Tests of the float64 test oracle in ``tests/reference.py`` itself.

The oracle checks fastprop's kernels, so it must not be silently wrong: its analytic
gradient is compared with central finite differences of its own forward pass and with
an independent PyTorch-autograd implementation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from reference import (
    VALID_OUTPUT_LOSS,
    param_count,
    reference_forward,
    reference_loss,
    reference_loss_and_grad,
    torch_loss_and_grad,
)


@dataclass(frozen=True)
class Case:
    """One small network + loss configuration."""

    name: str
    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    output: str
    loss: str
    l2: float
    batch: int
    targets: str  # "float", "unit" (in [0, 1]), "labels", "onehot", "soft"
    seed: int


CASES = [
    Case("d1-identity-squared-b1", (3, 2), (), "identity", "squared", 0.0, 1, "float", 0),
    Case("d3-sig-tanh-sigmoid-squared", (4, 5, 3, 2), ("sigmoid", "tanh"), "sigmoid",
         "squared", 0.1, 7, "unit", 1),
    Case("d3-relu-leaky-softmax-squared", (3, 6, 5, 4), ("relu", "leaky_relu"), "softmax",
         "squared", 0.01, 5, "onehot", 2),
    Case("d2-identity-hidden-squared", (2, 3, 2), ("identity",), "identity", "squared", 0.3,
         3, "float", 3),
    Case("d1-softmax-squared-b1", (3, 4), (), "softmax", "squared", 0.0, 1, "soft", 4),
    Case("d3-softplus-identity-ce-labels", (4, 5, 4, 3), ("softplus", "identity"), "softmax",
         "cross_entropy", 0.0, 7, "labels", 5),
    Case("d3-tanh-relu-ce-onehot", (3, 4, 5, 4), ("tanh", "relu"), "softmax",
         "cross_entropy", 0.05, 5, "onehot", 6),
    Case("d2-tanh-ce-onehot-b1", (3, 4, 3), ("tanh",), "softmax", "cross_entropy", 0.05, 1,
         "onehot", 7),
    Case("d1-ce-labels-b1", (4, 3), (), "softmax", "cross_entropy", 0.2, 1, "labels", 8),
    Case("d2-relu-ce-soft", (3, 5, 4), ("relu",), "softmax", "cross_entropy", 0.0, 5, "soft",
         9),
    Case("d3-leaky-softplus-bce", (4, 3, 5, 3), ("leaky_relu", "softplus"), "sigmoid",
         "binary_cross_entropy", 0.1, 7, "unit", 10),
    Case("d1-bce-real-targets-b1", (3, 2), (), "sigmoid", "binary_cross_entropy", 0.0, 1,
         "float", 11),
    Case("d2-sigmoid-bce-onehot", (2, 4, 3), ("sigmoid",), "sigmoid", "binary_cross_entropy",
         0.02, 3, "onehot", 12),
    Case("d3-tanh-relu-hinge", (3, 5, 4, 4), ("tanh", "relu"), "identity", "hinge", 0.02, 7,
         "labels", 13),
    Case("d1-hinge-b1", (4, 3), (), "identity", "hinge", 0.0, 1, "labels", 14),
    Case("d2-softplus-hinge", (3, 4, 5), ("softplus",), "identity", "hinge", 0.1, 5, "labels",
         15),
]


def make_problem(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``(params, X, Y)`` for a case, from a fixed seed."""
    rng = np.random.default_rng(case.seed)
    n_out = case.sizes[-1]
    params = rng.normal(0.0, 0.7, size=param_count(case.sizes))
    X = rng.normal(0.0, 1.0, size=(case.batch, case.sizes[0]))
    if case.targets == "float":
        Y = rng.normal(0.0, 1.5, size=(case.batch, n_out))
    elif case.targets == "unit":
        Y = rng.uniform(0.0, 1.0, size=(case.batch, n_out))
    elif case.targets == "labels":
        Y = rng.integers(0, n_out, size=case.batch)
    elif case.targets == "onehot":
        Y = np.eye(n_out)[rng.integers(0, n_out, size=case.batch)]
    elif case.targets == "soft":
        # arbitrary real rows, deliberately not summing to 1
        Y = rng.normal(0.3, 1.0, size=(case.batch, n_out))
    else:  # pragma: no cover
        raise AssertionError(case.targets)
    return params, X, Y


def call_args(case: Case) -> tuple:
    params, X, Y = make_problem(case)
    return (list(case.sizes), list(case.activations), case.output, case.loss, case.l2,
            params, X, Y)


def central_differences(args: tuple, step: float = 1e-6) -> np.ndarray:
    sizes, activations, output, loss, l2, params, X, Y = args
    grad = np.empty_like(params)
    for i in range(params.size):
        plus = params.copy()
        minus = params.copy()
        plus[i] += step
        minus[i] -= step
        f_plus = reference_loss(sizes, activations, output, loss, l2, plus, X, Y)
        f_minus = reference_loss(sizes, activations, output, loss, l2, minus, X, Y)
        grad[i] = (f_plus - f_minus) / (2.0 * step)
    return grad


def max_rel_err(a: np.ndarray, b: np.ndarray, floor: float = 1e-8) -> float:
    """Max over entries of ``|a - b| / max(|a|, |b|, floor)``."""
    denom = np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
    return float(np.max(np.abs(a - b) / denom))


def test_cases_cover_contract() -> None:
    pairs = {(c.output, c.loss) for c in CASES}
    assert pairs == set(VALID_OUTPUT_LOSS)
    acts = {a for c in CASES for a in c.activations}
    assert acts == {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus"}
    ce_targets = {c.targets for c in CASES if c.loss == "cross_entropy"}
    assert {"labels", "onehot", "soft"} <= ce_targets
    assert {len(c.sizes) - 1 for c in CASES} >= {1, 3}
    assert {c.batch for c in CASES} >= {1, 7}
    assert {c.l2 == 0.0 for c in CASES} == {True, False}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_grad_matches_finite_differences(case: Case) -> None:
    args = call_args(case)
    value, grad = reference_loss_and_grad(*args)
    assert isinstance(value, float)
    assert grad.dtype == np.float64
    assert grad.shape == (param_count(case.sizes),)
    assert value == pytest.approx(reference_loss(*args), rel=1e-14, abs=1e-14)
    fd = central_differences(args)
    # Central differences with step 1e-6 carry ~1e-9 absolute round-off, so entries far
    # below the gradient's scale are compared against 1% of its largest entry instead.
    floor = max(1e-2 * float(np.max(np.abs(grad))), 1e-8)
    assert max_rel_err(grad, fd, floor=floor) < 1e-6
    assert np.linalg.norm(grad - fd) <= 1e-7 * max(np.linalg.norm(grad), 1e-8)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_torch_autograd(case: Case) -> None:
    pytest.importorskip("torch")
    args = call_args(case)
    value, grad = reference_loss_and_grad(*args)
    t_value, t_grad = torch_loss_and_grad(*args)
    assert isinstance(t_value, float)
    assert t_grad.dtype == np.float64
    assert value == pytest.approx(t_value, rel=1e-12, abs=1e-12)
    assert max_rel_err(grad, t_grad, floor=1e-8) < 1e-9


def test_labels_equal_onehot_for_cross_entropy() -> None:
    rng = np.random.default_rng(20)
    sizes, acts = [3, 4, 5], ["tanh"]
    params = rng.normal(size=param_count(sizes))
    X = rng.normal(size=(6, 3))
    labels = rng.integers(0, 5, size=6)
    onehot = np.eye(5)[labels]
    v1, g1 = reference_loss_and_grad(sizes, acts, "softmax", "cross_entropy", 0.1, params, X,
                                     labels)
    v2, g2 = reference_loss_and_grad(sizes, acts, "softmax", "cross_entropy", 0.1, params, X,
                                     onehot)
    assert v1 == pytest.approx(v2, rel=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-13, atol=1e-15)


def test_l2_penalises_weights_only() -> None:
    rng = np.random.default_rng(21)
    sizes, acts = [2, 3, 2], ["sigmoid"]
    params = rng.normal(size=param_count(sizes))
    X = rng.normal(size=(4, 2))
    Y = rng.normal(size=(4, 2))
    l2 = 0.37
    v0, g0 = reference_loss_and_grad(sizes, acts, "identity", "squared", 0.0, params, X, Y)
    v1, g1 = reference_loss_and_grad(sizes, acts, "identity", "squared", l2, params, X, Y)
    W1, W2 = params[0:6], params[9:15]
    assert v1 - v0 == pytest.approx(0.5 * l2 * (W1 @ W1 + W2 @ W2), rel=1e-12)
    expected = np.zeros_like(params)
    expected[0:6] = l2 * W1
    expected[9:15] = l2 * W2
    np.testing.assert_allclose(g1 - g0, expected, rtol=1e-12, atol=1e-15)


def test_forward_layout_and_output_activations() -> None:
    # Hand-built network: checks the flat layout (W row-major, then b) and z = a W^T + b.
    sizes = [2, 3]
    W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = np.array([0.5, -0.5, 1.0])
    params = np.concatenate([W.ravel(), b])
    X = np.array([[1.0, -1.0], [0.5, 2.0]])
    z = X @ W.T + b
    np.testing.assert_allclose(reference_forward(sizes, [], "identity", params, X), z)
    np.testing.assert_allclose(
        reference_forward(sizes, [], "sigmoid", params, X), 1.0 / (1.0 + np.exp(-z))
    )
    sm = reference_forward(sizes, [], "softmax", params, X)
    np.testing.assert_allclose(sm, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(sm.sum(axis=1), 1.0)


def test_hidden_activation_values() -> None:
    # One hidden unit per activation: W1 = 1, b1 = 0, so the hidden value is act(x);
    # W2 = 1, b2 = 0 passes it through unchanged.
    x = np.array([[-2.0], [-0.3], [0.0], [0.7], [3.0]])
    params = np.array([1.0, 0.0, 1.0, 0.0])
    expected = {
        "identity": x,
        "sigmoid": 1.0 / (1.0 + np.exp(-x)),
        "tanh": np.tanh(x),
        "relu": np.maximum(x, 0.0),
        "leaky_relu": np.where(x > 0, x, 0.01 * x),
        "softplus": np.log1p(np.exp(x)),
    }
    for name, want in expected.items():
        got = reference_forward([1, 1, 1], [name], "identity", params, x)
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15, err_msg=name)


@pytest.mark.parametrize(("act", "slope"), [("relu", 0.0), ("leaky_relu", 0.01)])
def test_relu_derivative_at_zero(act: str, slope: float) -> None:
    # Hidden pre-activation exactly 0 (W1 = 0, b1 = 0): derivative must be 0 / 0.01.
    sizes = [1, 1, 1]
    params = np.array([0.0, 0.0, 2.0, 0.0])  # W1, b1, W2, b2
    X = np.array([[1.5]])
    Y = np.array([[1.0]])
    _, grad = reference_loss_and_grad(sizes, [act], "identity", "squared", 0.0, params, X, Y)
    # p = 0, dL/dz2 = -1, dL/dz1 = -1 * W2 * slope = -2 slope.
    np.testing.assert_allclose(grad, [-2.0 * slope * 1.5, -2.0 * slope, 0.0, -1.0])


def test_hinge_subgradient_is_strict_at_zero_margin() -> None:
    # z = b = [0, 1, -5], label 1: margin of class 0 is exactly 0 -> no contribution.
    sizes = [1, 3]
    params = np.array([0.0, 0.0, 0.0, 0.0, 1.0, -5.0])
    X = np.array([[1.0]])
    value, grad = reference_loss_and_grad(sizes, [], "identity", "hinge", 0.0, params, X,
                                          np.array([1]))
    assert value == 0.0
    np.testing.assert_array_equal(grad, np.zeros(6))
    # label 0: margins 1 - 0 + 1 = 2 (class 1) and -5 + 1 = -4 (class 2, inactive).
    value, grad = reference_loss_and_grad(sizes, [], "identity", "hinge", 0.0, params, X,
                                          np.array([0]))
    assert value == 2.0
    np.testing.assert_array_equal(grad, [-1.0, 1.0, 0.0, -1.0, 1.0, 0.0])


EXTREME_SIZES = [1, 3]
# W = [1000, -1000, 0], b = 0 and X = +-1: logits rows [1000, -1000, 0] and [-1000, 1000, 0].
EXTREME_PARAMS = np.array([1000.0, -1000.0, 0.0, 0.0, 0.0, 0.0])
EXTREME_X = np.array([[1.0], [-1.0], [1.0]])


@pytest.mark.parametrize(
    ("output", "loss", "Y"),
    [
        ("softmax", "cross_entropy", np.array([1, 0, 2])),
        ("softmax", "cross_entropy", np.eye(3)[[1, 0, 2]]),
        ("softmax", "cross_entropy", np.array([[0.2, 0.7, -0.4]] * 3)),
        ("sigmoid", "binary_cross_entropy", np.array([[0.0, 1.0, 0.5]] * 3)),
        ("sigmoid", "binary_cross_entropy", np.array([[1.0, 0.0, 0.3]] * 3)),
    ],
    ids=["ce-labels", "ce-onehot", "ce-soft", "bce-right", "bce-wrong"],
)
def test_extreme_logits_are_finite(output: str, loss: str, Y: np.ndarray) -> None:
    args = (EXTREME_SIZES, [], output, loss, 0.0, EXTREME_PARAMS, EXTREME_X, Y)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        value, grad = reference_loss_and_grad(*args)
        assert reference_loss(*args) == value
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad))
    assert value > 100.0  # the wrong-class logit differences of 1000 / 2000 are paid for
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    t_value, t_grad = torch_loss_and_grad(*args)
    assert value == pytest.approx(t_value, rel=1e-12)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-12, atol=1e-12)


def test_extreme_logits_exact_values() -> None:
    # Label 1 on row [1000, -1000, 0]: -log softmax = 2000 + log(1 + e^-1000 + e^-2000).
    args = (EXTREME_SIZES, [], "softmax", "cross_entropy", 0.0, EXTREME_PARAMS,
            EXTREME_X[:1], np.array([1]))
    value, grad = reference_loss_and_grad(*args)
    assert value == 2000.0
    # dL/dz = softmax - onehot = [1, -1, 0]; dW = dz * x, db = dz.
    np.testing.assert_allclose(grad, [1.0, -1.0, 0.0, 1.0, -1.0, 0.0], atol=1e-300)


def test_float32_inputs_are_promoted() -> None:
    case = CASES[6]
    sizes, acts, output, loss, l2, params, X, Y = call_args(case)
    p32, x32 = params.astype(np.float32), X.astype(np.float32)
    v32, g32 = reference_loss_and_grad(sizes, acts, output, loss, l2, p32, x32, Y)
    v64, g64 = reference_loss_and_grad(sizes, acts, output, loss, l2, p32.astype(np.float64),
                                       x32.astype(np.float64), Y)
    assert g32.dtype == np.float64
    assert v32 == v64
    np.testing.assert_array_equal(g32, g64)


@pytest.mark.parametrize(
    ("sizes", "acts", "output", "loss", "Y"),
    [
        ([2, 3], [], "identity", "cross_entropy", np.array([0])),
        ([2, 3], [], "softmax", "binary_cross_entropy", np.zeros((1, 3))),
        ([2, 3], [], "sigmoid", "hinge", np.array([0])),
        ([2, 3], [], "softmax", "hinge", np.array([0])),
        ([2, 3], [], "identity", "hinge", np.zeros((1, 3))),
        ([2, 3], ["relu"], "identity", "squared", np.zeros((1, 3))),
        ([2, 4, 3], [], "identity", "squared", np.zeros((1, 3))),
        ([2, 4, 3], ["swish"], "identity", "squared", np.zeros((1, 3))),
        ([2, 3], [], "tanh", "squared", np.zeros((1, 3))),
        ([2, 3], [], "softmax", "cross_entropy", np.array([3])),
    ],
)
def test_invalid_configurations_raise(sizes, acts, output, loss, Y) -> None:
    params = np.zeros(param_count(sizes))
    X = np.zeros((1, 2))
    with pytest.raises(ValueError):
        reference_loss_and_grad(sizes, acts, output, loss, 0.0, params, X, Y)
    with pytest.raises(ValueError):
        reference_loss(sizes, acts, output, loss, 0.0, params, X, Y)


def test_wrong_param_length_raises() -> None:
    with pytest.raises(ValueError):
        reference_forward([2, 3], [], "identity", np.zeros(8), np.zeros((1, 2)))
