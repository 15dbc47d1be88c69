"""The compiled activations against NumPy, and their derivatives against the definitions."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from fastprop._kernel_ids import ACTIVATIONS
from fastprop.activations import activate, derivative, exp_nonpositive, tanh


@njit(error_model="numpy")
def _tanh_all(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


@njit(error_model="numpy")
def _exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = exp_nonpositive(x[i])


@njit(error_model="numpy")
def _activate_all(kind, x, a, slope):
    for i in range(x.shape[0]):
        a[i] = activate(kind, x[i])
        slope[i] = derivative(kind, a[i])


def test_tanh_within_two_ulp_of_numpy():
    x = np.concatenate([np.linspace(-25, 25, 1_000_001), np.geomspace(1e-300, 25, 300_000),
                        -np.geomspace(1e-300, 25, 300_000), [0.625, -0.625, 20.0, 5e-324]])
    out = np.empty_like(x)
    _tanh_all(x, out)
    expected = np.tanh(x)
    ulps = np.abs(out - expected) / np.spacing(np.maximum(np.abs(expected), 1e-300))
    assert ulps.max() <= 2.0


def test_tanh_float32_within_one_ulp_of_correctly_rounded():
    x = np.concatenate([np.linspace(-12, 12, 1_000_001), np.geomspace(1e-38, 12, 300_000),
                        -np.geomspace(1e-38, 12, 300_000), [0.625, -0.625, 10.0]])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    _tanh_all(x, out)
    expected = np.tanh(x.astype(np.float64)).astype(np.float32)
    ulps = (np.abs(out.astype(np.float64) - expected)
            / np.spacing(np.maximum(np.abs(expected), np.float32(1e-37))))
    assert ulps.max() <= 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e3, -1e3], dtype=dtype)
    out = np.empty_like(x)
    _tanh_all(x, out)
    assert np.isnan(out[0])
    assert (out[1:] == [1, -1, 0, 0, 1, -1]).all() and np.signbit(out[4])
    assert out.dtype == dtype


@pytest.mark.parametrize("dtype, low, ulp_limit", [(np.float64, -708.39, 2.0),
                                                   (np.float32, -87.33, 1.0)])
def test_exp_nonpositive_against_float64_exp(dtype, low, ulp_limit):
    x = np.concatenate([np.linspace(low, 0, 1_000_001), -np.geomspace(1e-30, -low, 300_000),
                        [0.0, -0.0, low]]).astype(dtype)
    out = np.empty_like(x)
    _exp_all(x, out)
    expected = np.exp(x.astype(np.float64)).astype(dtype)
    ulps = (np.abs(out.astype(np.float64) - expected)
            / np.spacing(np.maximum(expected, np.finfo(dtype).tiny)))
    assert ulps.max() <= ulp_limit and out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_nonpositive_special_values(dtype):
    x = np.array([np.nan, -np.inf, -1e4, -800.0, -100.0], dtype=dtype)
    out = np.empty_like(x)
    _exp_all(x, out)
    assert np.isnan(out[0]) and (out[1:3] == 0).all()
    # Below the smallest normal number: 0 (no subnormals), never garbage.
    expected = np.exp(x[3:].astype(np.float64))
    assert np.allclose(out[3:], expected, rtol=1e-6, atol=np.finfo(dtype).tiny)


def _numpy_activation(name, z):
    return {"identity": z, "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z),
            "relu": np.maximum(z, 0), "leaky_relu": np.where(z > 0, z, 0.01 * z),
            "softplus": np.logaddexp(0, z)}[name]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_and_derivative(name):
    z = np.concatenate([np.linspace(-30, 30, 20_001), [0.0]])
    a, slope = np.empty_like(z), np.empty_like(z)
    _activate_all(ACTIVATIONS[name], z, a, slope)
    np.testing.assert_allclose(a, _numpy_activation(name, z), rtol=1e-14, atol=1e-300)
    h = 1e-6  # central differences of the NumPy definition, away from the kinks at 0
    smooth = np.abs(z) > 1e-3
    numeric = (_numpy_activation(name, z + h) - _numpy_activation(name, z - h)) / (2 * h)
    np.testing.assert_allclose(slope[smooth], numeric[smooth], rtol=1e-6, atol=1e-9)
    if name in ("relu", "leaky_relu"):
        assert slope[-1] == (0.0 if name == "relu" else 0.01)  # the documented value at 0


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_propagate_nan(name):
    z = np.array([np.nan])
    a, slope = np.empty_like(z), np.empty_like(z)
    _activate_all(ACTIVATIONS[name], z, a, slope)
    assert np.isnan(a[0])
